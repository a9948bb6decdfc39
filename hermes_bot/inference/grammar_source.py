"""Lark grammars (llguidance dialect) for the call markup of both prompt dialects.

The grammars mirror exactly what ``hermes_bot.prompts.format_calls`` writes:
compact JSON, ``"name"`` first and ``"arguments"`` second, no free
whitespace, strings bounded by the tools' ``maxLength`` and at least one
character long, and only the escapes ``\\n \\t \\" \\\\`` (llguidance would
otherwise allow ``\\uXXXX`` for control characters, which no answer needs).
Plain chat text (``auto`` mode) may not contain any tag spelling of any
:class:`~hermes_bot.call_format.CallFormat` (any case), nor a key that makes
the parser read a JSON object as a call, so any call markup the model opens
is forced to be complete and schema-valid.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from hermes_bot.backend import ConstraintMode, Dialect
from hermes_bot.call_format import CALL_ARGUMENT_KEYS, call_format, markup_names
from hermes_bot.tools import Tool, parameters_schema

# Options of llguidance's JSON compiler: compact JSON, only the escapes a model needs.
JSON_OPTIONS = {"whitespace_flexible": False, "json_allowed_escapes": 'nt"\\'}


def text_terminal() -> str:
    """Chat text: at least one non-space character, and nothing the parser reads as a call:
    no tag name of any call format after ``<`` or ``</`` (any case), no call-argument key."""
    tags = "|".join(re.escape(name) for name in markup_names())
    keys = "|".join(CALL_ARGUMENT_KEYS)
    return (
        r"TEXT: /\s*\S(?s:.*)/"
        rf" & ~/(?s:.*)(?i:<\/?({tags}))(?s:.*)/"
        rf""" & ~/(?s:.*)["']({keys})["']\s*:(?s:.*)/"""
    )


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
    fmt = call_format(dialect)  # ValueError for an unknown dialect
    pad = f" {json.dumps(fmt.padding)}" if fmt.padding else ""
    call_rule = f"call: {literal(fmt.open)}{pad} payload{pad} {literal(fmt.close)}"
    if mode == "forced":
        calls = "call"
    elif fmt.separator:
        calls = f"call ({json.dumps(fmt.separator)} call)*"
    else:
        calls = "call+"
    if fmt.wrapper:
        calls = f"{literal(f'<{fmt.wrapper}>')} {calls} {literal(f'</{fmt.wrapper}>')}"
    start = f"start: {calls}" if mode == "forced" else f"start: TEXT | {calls}"
    lines = [
        "%llguidance {}",
        start,
        call_rule,
        f"payload: %json {json.dumps(call_schema(tools))}",
    ]
    if mode == "auto":
        lines.append(text_terminal())
    return "\n".join(lines) + "\n"
