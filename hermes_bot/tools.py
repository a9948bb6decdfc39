"""The bot's three tools, their registry, schema export and call validation.

The tools are "answer-shaped": a validated call *is* the answer (a joke, a
song, a book), so no second model round-trip is needed to render it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hermes_bot.errors import ToolValidationError

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


class _Recommendation(Tool):
    """A recommendation for the user's interest (fields shared by songs and books)."""

    interest: str = Field(description="User's interest", max_length=SHORT_TEXT)

    @field_validator("interest")
    @classmethod
    def _interest_not_empty(cls, value: str) -> str:
        return _not_empty(value, "interest")


class SongRecommendation(_Recommendation):
    """Recommend a song that matches the user's interest."""

    recommended_song: str = Field(description="Recommended song", max_length=SHORT_TEXT)


class BookRecommendation(_Recommendation):
    """Recommend a book that matches the user's interest."""

    recommended_book: str = Field(description="Recommended book", max_length=SHORT_TEXT)


TOOLS: dict[str, type[Tool]] = {
    tool.__name__: tool for tool in (Joke, SongRecommendation, BookRecommendation)
}


def _normalize_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_NORMALIZED_NAME = {_normalize_name(name): tool for name, tool in TOOLS.items()}


def find_tool(name: str) -> type[Tool] | None:
    """The tool called ``name``, tolerating case and snake_case, or None."""
    return _BY_NORMALIZED_NAME.get(_normalize_name(name))


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
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "arguments"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


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
