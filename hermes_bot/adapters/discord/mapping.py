"""How Discord's objects map onto the shared concepts: conversation keys, gate origins and
the gate itself, and the speaker context of a turn."""

from __future__ import annotations

import discord

from hermes_bot.adapters.gate import Gate, Origin
from hermes_bot.config import DiscordSettings
from hermes_bot.conversation import Context, Speaker


def conversation_key(guild_id: int | None, channel_id: int | None, user_id: int) -> str:
    """One conversation per guild channel or thread; DMs per user."""
    if guild_id is None or channel_id is None:
        return f"discord:dm:{user_id}"
    return f"discord:channel:{channel_id}"


def origin_of(
    user: discord.abc.User, guild_id: int | None, channel: object, channel_id: int | None
) -> Origin:
    """Where a message or interaction comes from, as the gate sees it."""
    channel_ids = [channel_id] if channel_id is not None else []
    parent_id = getattr(channel, "parent_id", None)
    if parent_id is not None:
        channel_ids.append(parent_id)
    roles = tuple(role.id for role in getattr(user, "roles", []))
    return Origin(user.id, guild_id, tuple(channel_ids), roles)


def context_of(user: discord.abc.User, guild_id: int | None, channel: object) -> Context:
    """Platform, kind of conversation, speaker and channel ids (a thread's parent second)."""
    speaker = Speaker(f"discord:{user.id}", user.display_name)
    channel_id = getattr(channel, "id", None)
    if guild_id is None or channel_id is None:
        return Context("discord", "dm", speaker)
    parent_id = getattr(channel, "parent_id", None)
    if parent_id is None:
        return Context("discord", "channel", speaker, (str(channel_id),))
    return Context("discord", "thread", speaker, (str(channel_id), str(parent_id)))


def make_gate(settings: DiscordSettings) -> Gate:
    """The platform-neutral gate, configured from the ``[discord]`` section."""
    return Gate(
        workspaces=settings.allowed_guilds,
        channels=settings.allowed_channels,
        roles=settings.allowed_roles,
        users=settings.allowed_users,
        limit=settings.rate_limit_messages,
        window=settings.rate_limit_seconds,
    )
