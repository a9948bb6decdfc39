"""Lark grammars (llguidance dialect) for the call markup of both prompt dialects.

The grammars mirror exactly what ``hermes_bot.prompts.format_calls`` writes:
compact JSON, ``"name"`` first and ``"arguments"`` second, no free
whitespace, strings bounded by the tools' ``maxLength`` and at least one
character long, and only the escapes ``\\n \\t \\" \\\\`` (llguidance would
otherwise allow ``\\uXXXX`` for control characters, which no answer needs).
Plain chat text (``auto`` mode) may not contain a call tag, so any call
markup the model opens is forced to be complete and schema-valid.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from hermes_bot.backend import ConstraintMode, Dialect
from hermes_bot.tools import Tool, parameters_schema

# Options of llguidance's JSON compiler: compact JSON, only the escapes a model needs.
JSON_OPTIONS = {"whitespace_flexible": False, "json_allowed_escapes": 'nt"\\'}

CALL_TAGS = ("multiplefunctions", "functioncall", "tool_call")

# Chat text: at least one non-space character, and no opening or closing call tag anywhere.
_TEXT_TERMINAL = r"TEXT: /\s*\S(?s:.*)/ & ~/(?s:.*)<\/?(" + "|".join(CALL_TAGS) + r")(?s:.*)/"


def argument_schema(tool: type[Tool]) -> dict[str, Any]:
    """The tool's parameters schema with every string property at least one character long."""
    schema = parameters_schema(tool)  # a fresh copy
    for prop in schema.get("properties", {}).values():
        if prop.get("type") == "string":
            prop.setdefault("minLength", 1)
    return schema


def call_schema(tools: Sequence[type[Tool]]) -> dict[str, Any]:
    """JSON schema of one call ``{"name":…,"arguments":{…}}`` of any of ``tools``."""
    variants = [
        {
            "type": "object",
            "properties": {"name": {"const": tool.__name__}, "arguments": argument_schema(tool)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    body = variants[0] if len(variants) == 1 else {"anyOf": variants}
    return {"x-guidance": JSON_OPTIONS, **body}


def lark_source(
    mode: ConstraintMode,
    dialect: Dialect,
    tools: Sequence[type[Tool]],
    literal: Callable[[str], str] = json.dumps,
) -> str:
    """The Lark grammar for ``mode`` ("forced" or "auto") in ``dialect``.

    ``literal`` renders a fixed string such as ``"<tool_call>"`` as a grammar
    element (a quoted string, or a special-token reference if the tokenizer
    has the tag as one token).
    """
    if mode not in ("forced", "auto"):
        raise ValueError(f"no grammar for constraint mode {mode!r}")
    if dialect == "functioncall":
        wrap_open, wrap_close = literal("<multiplefunctions>"), literal("</multiplefunctions>")
        call_rule = f"call: {literal('<functioncall>')} payload {literal('</functioncall>')}"
        repeat = "" if mode == "forced" else "+"
        calls = f"{wrap_open} call{repeat} {wrap_close}"
    elif dialect == "tool_call":
        call_rule = f'call: {literal("<tool_call>")} "\\n" payload "\\n" {literal("</tool_call>")}'
        calls = "call" if mode == "forced" else 'call ("\\n" call)*'
    else:
        raise ValueError(f"unknown dialect {dialect!r}")
    start = f"start: {calls}" if mode == "forced" else f"start: TEXT | {calls}"
    lines = [
        "%llguidance {}",
        start,
        call_rule,
        f"payload: %json {json.dumps(call_schema(tools))}",
    ]
    if mode == "auto":
        lines.append(_TEXT_TERMINAL)
    return "\n".join(lines) + "\n"
