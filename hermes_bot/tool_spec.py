"""What a tool declares besides its pydantic model: slash command, option, prompt, card,
follow-up button. Platform-neutral: each adapter renders a :class:`CardContent` its own way
(Discord embed, Slack Block Kit, terminal box).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote_plus

from pydantic import BaseModel

QUERY_LIMIT = 200  # characters of the headline a search link sends


@dataclass(frozen=True)
class Option:
    """The one text option of a tool's slash command."""

    name: str
    description: str
    max_length: int = 200


@dataclass(frozen=True)
class Link:
    """A search link on a card; ``url`` holds ``{}`` where the URL-encoded query goes."""

    label: str
    url: str


@dataclass(frozen=True)
class Card:
    """How a validated call is shown, whatever the platform (embed, Block Kit, terminal box).

    ``headline`` and ``secret`` name arguments: the headline is shown first and
    prominently, the secret hidden until revealed (a joke's answer). ``fields``
    are (label, argument) pairs; ``links`` search for the headline.
    """

    title: str
    emoji: str
    headline: str
    secret: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    links_label: str = ""
    links: tuple[Link, ...] = ()


@dataclass(frozen=True)
class FollowUp:
    """A button under a card that asks for another call of the same tool."""

    label: str
    emoji: str
    prompt: str


@dataclass(frozen=True)
class ToolSpec:
    """Everything about one tool besides its model: its slash command and its card.

    ``prompt`` is what the slash command says to the model; ``{option}`` in it
    is replaced by the option's value.
    """

    model: type[BaseModel]
    command: str
    description: str
    prompt: str
    card: Card
    option: Option | None = None
    follow_up: FollowUp | None = None

    @property
    def name(self) -> str:
        """The function name the model calls."""
        return self.model.__name__

    def command_prompt(self, value: str | None = None) -> str:
        """The message the slash command sends, with the option's value filled in."""
        return self.prompt.replace("{option}", value or "")


@dataclass(frozen=True)
class CardContent:
    """A card filled in with one validated call: the text every platform shows."""

    title: str
    emoji: str
    headline: str
    secret: str | None
    fields: list[tuple[str, str]]
    links_label: str
    links: list[tuple[str, str]]  # (label, URL)


def card_content(card: Card, tool: BaseModel) -> CardContent:
    """``card`` filled in with the arguments of ``tool``; search links carry the headline."""
    values = {name: str(value) for name, value in tool.model_dump().items()}
    headline = values[card.headline]
    query = quote_plus(headline[:QUERY_LIMIT])
    return CardContent(
        title=card.title,
        emoji=card.emoji,
        headline=headline,
        secret=values[card.secret] if card.secret is not None else None,
        fields=[(label, values[argument]) for label, argument in card.fields],
        links_label=card.links_label,
        links=[(link.label, link.url.format(query)) for link in card.links],
    )
