"""Discord API payloads for the fake Discord: users, members, guilds, channels, messages."""

from __future__ import annotations

from typing import Any

TIMESTAMP = "2026-01-01T00:00:00.000000+00:00"
Payload = dict[str, Any]


def user(user_id: int, name: str, *, bot: bool = False) -> Payload:
    return {
        "id": str(user_id),
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def member(user_payload: Payload, roles: list[int] | tuple[int, ...] = ()) -> Payload:
    return {
        "user": user_payload,
        "roles": [str(role) for role in roles],
        "joined_at": TIMESTAMP,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "nick": None,
        "pending": False,
    }


def role(role_id: int, name: str, position: int = 0) -> Payload:
    return {
        "id": str(role_id),
        "name": name,
        "permissions": "0",
        "position": position,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": True,
        "flags": 0,
    }


def text_channel(channel_id: int, guild_id: int, name: str) -> Payload:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
    }


def thread(thread_id: int, guild_id: int, parent_id: int, name: str, owner_id: int) -> Payload:
    return {
        "id": str(thread_id),
        "type": 11,
        "guild_id": str(guild_id),
        "parent_id": str(parent_id),
        "owner_id": str(owner_id),
        "name": name,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": TIMESTAMP,
            "locked": False,
        },
    }


def dm_channel(channel_id: int, recipient: Payload) -> Payload:
    return {"id": str(channel_id), "type": 1, "recipients": [recipient], "last_message_id": None}


def guild(
    guild_id: int,
    name: str,
    *,
    owner_id: int,
    channels: list[Payload],
    threads: list[Payload],
    roles: list[Payload],
    members: list[Payload],
) -> Payload:
    return {
        "id": str(guild_id),
        "name": name,
        "unavailable": False,
        "owner_id": str(owner_id),
        "icon": None,
        "large": False,
        "member_count": len(members),
        "joined_at": TIMESTAMP,
        "channels": channels,
        "threads": threads,
        "roles": roles,
        "members": members,
        "emojis": [],
        "stickers": [],
        "features": [],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "premium_tier": 0,
        "mfa_level": 0,
        "verification_level": 0,
        "explicit_content_filter": 0,
        "default_message_notifications": 0,
        "nsfw_level": 0,
        "preferred_locale": "en-US",
        "system_channel_flags": 0,
    }


def message(
    message_id: int,
    channel_id: int,
    author: Payload,
    content: str = "",
    *,
    guild_id: int | None = None,
    author_member: Payload | None = None,
    mentions: list[Payload] | None = None,
    embeds: list[Payload] | None = None,
    components: list[Payload] | None = None,
    referenced: Payload | None = None,
    flags: int = 0,
) -> Payload:
    data: Payload = {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "author": author,
        "content": content,
        "timestamp": TIMESTAMP,
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": mentions or [],
        "mention_roles": [],
        "attachments": [],
        "embeds": embeds or [],
        "components": components or [],
        "pinned": False,
        "type": 19 if referenced else 0,
        "flags": flags,
    }
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    if author_member is not None:
        data["member"] = {key: value for key, value in author_member.items() if key != "user"}
    if referenced is not None:
        data["message_reference"] = {
            "message_id": referenced["id"],
            "channel_id": referenced["channel_id"],
            **({"guild_id": str(guild_id)} if guild_id is not None else {}),
        }
        data["referenced_message"] = referenced
    return data
