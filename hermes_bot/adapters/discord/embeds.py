"""Replies as Discord embeds: joke, song and book cards, the status card, the joke button.

Every string the model wrote is cut to Discord's limits, so a long output can
never make Discord answer 400. Search links are built locally (no network).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote_plus

import discord

from hermes_bot.adapters.status import status_fields
from hermes_bot.adapters.text import truncate
from hermes_bot.backend import BackendStats
from hermes_bot.tools import BookRecommendation, Joke, SongRecommendation, Tool

_log = logging.getLogger(__name__)

COLOUR = discord.Colour(0x6C5CE7)
FOOTER = "hermes-bot · AI-generated, double-check before relying on it"
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
FIELD_COUNT_LIMIT = 25
TOTAL_LIMIT = 6000
JOKE_AGAIN_ID = "hermes:joke:again"

AgainHandler = Callable[[discord.Interaction], Awaitable[None]]


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


def _links(links: list[tuple[str, str]], query: str) -> str:
    encoded = quote_plus(query)
    return " · ".join(f"[{label}]({template.format(encoded)})" for label, template in links)


_SONG_SEARCHES = [
    ("YouTube", "https://www.youtube.com/results?search_query={}"),
    ("Spotify", "https://open.spotify.com/search/{}"),
]
_BOOK_SEARCHES = [
    ("Open Library", "https://openlibrary.org/search?q={}"),
    ("Google Books", "https://www.google.com/search?tbm=bks&q={}"),
]


def joke_embed(joke: Joke) -> discord.Embed:
    """The setup in plain sight, the answer behind a spoiler."""
    answer = truncate(joke.answer, 1500).replace("|", "\\|")
    return make_embed("😄 Here's a joke", f"{_plain(joke.setup)}\n\n||{answer}||")


def _recommendation_embed(
    title: str,
    recommended: str,
    interest: str,
    searches: list[tuple[str, str]],
    links_label: str,
) -> discord.Embed:
    query = truncate(recommended, 200)
    return make_embed(
        title,
        f"**{_plain(recommended)}**",
        [("Because you like", _plain(interest)), (links_label, _links(searches, query))],
    )


def song_embed(song: SongRecommendation) -> discord.Embed:
    """A song card with search links."""
    return _recommendation_embed(
        "🎵 A song for you", song.recommended_song, song.interest, _SONG_SEARCHES, "Listen"
    )


def book_embed(book: BookRecommendation) -> discord.Embed:
    """A book card with search links."""
    return _recommendation_embed(
        "📚 A book for you", book.recommended_book, book.interest, _BOOK_SEARCHES, "Find it"
    )


def tool_embed(tool: Tool) -> discord.Embed:
    """The card for any validated tool."""
    match tool:
        case Joke():
            return joke_embed(tool)
        case SongRecommendation():
            return song_embed(tool)
        case BookRecommendation():
            return book_embed(tool)
    fields = [(name, str(value)) for name, value in tool.model_dump().items()]
    return make_embed(type(tool).__name__, "", fields)


class JokeView(discord.ui.View):
    """The "Another one" button under a joke."""

    def __init__(self, on_again: AgainHandler, *, timeout: float = 3600.0) -> None:
        super().__init__(timeout=timeout)
        self._on_again = on_again

    @discord.ui.button(label="Another one", emoji="🔁", custom_id=JOKE_AGAIN_ID)
    async def again(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        """Ask for another joke in the same conversation."""
        await self._on_again(interaction)


def status_embed(stats: BackendStats, uptime: float, history: int) -> discord.Embed:
    """The /status card."""
    return make_embed("📊 Status", "", status_fields(stats, uptime, history))
