"""The bot's tools: pydantic models, one declaration each, the registry, schemas, validation.

The tools are "answer-shaped": a validated call *is* the answer (a joke, a
song, a book), so no second model round-trip is needed to render it. Each
tool is one model plus one :class:`ToolSpec` (slash command, option, prompt,
card, follow-up button) passed to :func:`register`; the prompts, grammars and
every adapter iterate over the registry, so adding a tool touches nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hermes_bot.errors import ToolValidationError, problem_message
from hermes_bot.tool_spec import Card, CardContent, FollowUp, Link, Option, ToolSpec, card_content

SHORT_TEXT = 300
LONG_TEXT = 1000


@dataclass(frozen=True)
class ToolCall:
    """A function call extracted from model text, not yet validated."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


class Tool(BaseModel):
    """Base of every tool: strict, stripped, no extra keys."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


TOOLS: dict[str, type[Tool]] = {}
SPECS: dict[str, ToolSpec] = {}


def register(spec: ToolSpec) -> ToolSpec:
    """Add a tool: its schema reaches the prompts and grammars, its command and card every
    adapter created afterwards."""
    if find_tool(spec.name) is not None:
        raise ValueError(f"a tool called {spec.name!r} is already registered")
    TOOLS[spec.name] = spec.model
    SPECS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove the tool called ``name`` (exactly)."""
    TOOLS.pop(name, None)
    SPECS.pop(name, None)


def _normalize_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def find_tool(name: str) -> type[Tool] | None:
    """The tool called ``name``, tolerating case and snake_case, or None."""
    wanted = _normalize_name(name)
    return next((tool for known, tool in TOOLS.items() if _normalize_name(known) == wanted), None)


def spec_of(tool: Tool | type[Tool]) -> ToolSpec:
    """The declaration of a registered tool (class or instance)."""
    model = tool if isinstance(tool, type) else type(tool)
    return SPECS[model.__name__]


def card_of(tool: Tool) -> CardContent:
    """The card of a validated call, filled in, for any platform to render."""
    return card_content(spec_of(tool).card, tool)


# -- the tools -----------------------------------------------------------------------------


def _not_empty(value: str, what: str) -> str:
    if not value.strip():
        raise ValueError(f"{what} must not be empty")
    return value


class Joke(Tool):
    """Tell the user a joke."""

    setup: str = Field(description="Question to set up a joke", max_length=SHORT_TEXT)
    answer: str = Field(description="Answer to the joke", max_length=LONG_TEXT)

    @field_validator("setup")
    @classmethod
    def _setup_not_empty(cls, value: str) -> str:
        return _not_empty(value, "setup")


register(
    ToolSpec(
        Joke,
        command="joke",
        description="Tell me a joke",
        prompt="Tell me a joke.",
        card=Card("Here's a joke", "😄", headline="setup", secret="answer"),
        follow_up=FollowUp("Another one", "🔁", "Tell me another joke, a different one."),
    )
)


class _Recommendation(Tool):
    """A recommendation for the user's interest (fields shared by songs and books)."""

    interest: str = Field(description="User's interest", max_length=SHORT_TEXT)

    @field_validator("interest")
    @classmethod
    def _interest_not_empty(cls, value: str) -> str:
        return _not_empty(value, "interest")


def _recommending(
    model: type[_Recommendation], noun: str, emoji: str, hint: str, label: str, *links: Link
) -> ToolSpec:
    """The declaration of ``/<noun> <interest>`` with a card linking searches for the pick."""
    return ToolSpec(
        model,
        command=noun,
        description=f"Recommend a {noun}",
        prompt=f"Recommend me a {noun}. My interest: {{option}}",
        option=Option("interest", hint),
        card=Card(
            f"A {noun} for you",
            emoji,
            headline=f"recommended_{noun}",
            fields=(("Because you like", "interest"),),
            links_label=label,
            links=links,
        ),
    )


class SongRecommendation(_Recommendation):
    """Recommend a song that matches the user's interest."""

    recommended_song: str = Field(description="Recommended song", max_length=SHORT_TEXT)


register(
    _recommending(
        SongRecommendation,
        "song",
        "🎵",
        "What you're into: a mood, a genre, an artist…",
        "Listen",
        Link("YouTube", "https://www.youtube.com/results?search_query={}"),
        Link("Spotify", "https://open.spotify.com/search/{}"),
    )
)


class BookRecommendation(_Recommendation):
    """Recommend a book that matches the user's interest."""

    recommended_book: str = Field(description="Recommended book", max_length=SHORT_TEXT)


register(
    _recommending(
        BookRecommendation,
        "book",
        "📚",
        "What you're into: a topic, a genre, an author…",
        "Find it",
        Link("Open Library", "https://openlibrary.org/search?q={}"),
        Link("Google Books", "https://www.google.com/search?tbm=bks&q={}"),
    )
)


def tool_for_arguments(arguments: Iterable[str]) -> type[Tool] | None:
    """The one tool that takes every argument named and needs no other; None if not exactly one."""
    names = set(arguments)
    fits = [
        tool
        for tool in TOOLS.values()
        if {key for key, field in tool.model_fields.items() if field.is_required()}
        <= names
        <= set(tool.model_fields)
    ]
    return fits[0] if len(fits) == 1 else None


def _strip_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {
            key: _strip_titles(value)
            for key, value in schema.items()
            if not (key == "title" and isinstance(value, str))
        }
    if isinstance(schema, list):
        return [_strip_titles(item) for item in schema]
    return schema


def parameters_schema(tool: type[Tool]) -> dict[str, Any]:
    """The JSON schema of a tool's arguments, titles stripped."""
    schema = _strip_titles(tool.model_json_schema())
    schema.pop("description", None)
    return schema


def function_schema(tool: type[Tool]) -> dict[str, Any]:
    """One tool in OpenAI function format: name, description, parameters."""
    return {
        "name": tool.__name__,
        "description": (tool.__doc__ or "").strip(),
        "parameters": parameters_schema(tool),
    }


def function_schemas(tools: list[type[Tool]] | None = None) -> list[dict[str, Any]]:
    """Schemas of the given tools (all tools by default), in registry order."""
    return [function_schema(tool) for tool in (tools or list(TOOLS.values()))]


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'arguments'}: {problem_message(item)}"
        for item in error.errors()
    )


def validate_call(call: ToolCall) -> Tool:
    """The validated tool instance for ``call``, or ToolValidationError."""
    tool = find_tool(call.name)
    if tool is None:
        known = ", ".join(TOOLS)
        raise ToolValidationError(
            f"unknown function {call.name!r}",
            user_message=f"Unknown function {call.name!r}; known functions: {known}.",
        )
    if not isinstance(call.arguments, dict):
        raise ToolValidationError(
            f"{tool.__name__}: arguments are not an object",
            user_message=f"{tool.__name__}: arguments must be a JSON object.",
        )
    try:
        return tool.model_validate(call.arguments)
    except ValidationError as error:
        detail = f"{tool.__name__}: {_describe(error)}"
        raise ToolValidationError(detail, user_message=detail) from None
