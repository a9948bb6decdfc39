"""Replies as Discord embeds: tool cards (from each tool's Card), the status card, and the
follow-up button under a card.

Every string the model wrote is cut to Discord's limits, so a long output can
never make Discord answer 400.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord

from hermes_bot.adapters.status import status_fields
from hermes_bot.adapters.text import truncate
from hermes_bot.backend import BackendStats
from hermes_bot.tools import Tool, ToolSpec, card_of

COLOUR = discord.Colour(0x6C5CE7)
FOOTER = "hermes-bot · AI-generated, double-check before relying on it"
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
FIELD_COUNT_LIMIT = 25
TOTAL_LIMIT = 6000
SECRET_LIMIT = 1500

AgainHandler = Callable[[discord.Interaction, ToolSpec], Awaitable[None]]


def make_embed(
    title: str, description: str = "", fields: list[tuple[str, str]] | None = None
) -> discord.Embed:
    """An embed in the bot's style with every part cut to Discord's limits."""
    embed = discord.Embed(
        title=truncate(title, TITLE_LIMIT),
        description=truncate(description, DESCRIPTION_LIMIT) or None,
        colour=COLOUR,
    )
    for name, value in (fields or [])[:FIELD_COUNT_LIMIT]:
        embed.add_field(
            name=truncate(name, FIELD_NAME_LIMIT) or "\u200b",
            value=truncate(value, FIELD_VALUE_LIMIT) or "\u200b",
            inline=False,
        )
    embed.set_footer(text=truncate(FOOTER, FOOTER_LIMIT))
    overflow = len(embed) - TOTAL_LIMIT
    if overflow > 0 and embed.description:
        embed.description = truncate(embed.description, max(1, len(embed.description) - overflow))
    while len(embed) > TOTAL_LIMIT and embed.fields:
        embed.remove_field(-1)
    return embed


def _plain(text: str) -> str:
    """Model text shown literally: markdown and mentions escaped."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def tool_embed(tool: Tool) -> discord.Embed:
    """The card of a validated tool: headline in bold, secret behind a spoiler, then the
    fields and search links."""
    card = card_of(tool)
    description = f"**{_plain(card.headline)}**"
    if card.secret is not None:
        secret = truncate(card.secret, SECRET_LIMIT).replace("|", "\\|")
        description += f"\n\n||{secret}||"
    fields = [(label, _plain(value)) for label, value in card.fields]
    if card.links:
        links = " · ".join(f"[{label}]({url})" for label, url in card.links)
        fields.append((card.links_label, links))
    return make_embed(f"{card.emoji} {card.title}", description, fields)


def follow_up_id(spec: ToolSpec) -> str:
    """The custom id of a tool's follow-up button (stable across restarts)."""
    return f"hermes:{spec.command}:again"


class FollowUpView(discord.ui.View):
    """The follow-up button under a card, e.g. "Another one" under a joke."""

    def __init__(
        self, spec: ToolSpec, on_again: AgainHandler, *, timeout: float | None = 3600.0
    ) -> None:
        super().__init__(timeout=timeout)
        if spec.follow_up is None:
            raise ValueError(f"{spec.name} has no follow-up button")
        button: discord.ui.Button[FollowUpView] = discord.ui.Button(
            label=spec.follow_up.label, emoji=spec.follow_up.emoji, custom_id=follow_up_id(spec)
        )

        async def clicked(interaction: discord.Interaction) -> None:
            await on_again(interaction, spec)

        button.callback = clicked  # type: ignore[method-assign]
        self.add_item(button)


def status_embed(
    stats: BackendStats, uptime: float, history: int, turns: str = ""
) -> discord.Embed:
    """The /status card."""
    return make_embed("📊 Status", "", status_fields(stats, uptime, history, turns))
