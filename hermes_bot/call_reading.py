"""Call payloads → calls: what one call tag, fence or bare JSON value holds.

``read_tag_block`` is lenient (inside a call tag the model meant a call: Python
literals, ``Name(...)`` calls, several values, forgotten closing braces, a
missing name that the arguments imply); ``read_json_call`` is strict (outside
tags, only an unmistakable call is one, and anything else stays chat).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hermes_bot.call_format import ARGUMENT_KEYS, CALL_ARGUMENT_KEYS, NAME_KEYS
from hermes_bot.payloads import decode_payload, decode_python_call, scan_brackets
from hermes_bot.tools import ToolCall, tool_for_arguments

FENCE_INFO = re.compile(r"[\w+.-]*")
_NAME_HINT = re.compile(rf"""["'](?:{"|".join(NAME_KEYS)})["']\s*:""")
_ARGS_HINT = re.compile(rf"""["'](?:{"|".join(CALL_ARGUMENT_KEYS)})["']\s*:""")
_CALL_START = re.compile(rf"""[\[{{]\s*\{{?\s*["'](?:{"|".join(NAME_KEYS)})["']\s*:""")
_WRAPPERS = ("function", "function_call", "tool_call")
_IDENTIFIER = re.compile(r"[A-Za-z_][\w.-]{0,99}")


@dataclass
class Found:
    """What one piece of call markup held: calls, and notes on what could not be read."""

    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def starts_like_call(text: str) -> bool:
    """True when ``text`` opens with a call's name key: unreadable, it is still reported."""
    return _CALL_START.match(text) is not None


def looks_like_call(text: str) -> bool:
    """Cheap pre-check: ``text`` mentions both a name key and an arguments key."""
    return bool(_NAME_HINT.search(text) and _ARGS_HINT.search(text))


@dataclass(frozen=True)
class _Read:
    """What one call-shaped item held: a call, or a note on why it is not one."""

    call: ToolCall | None = None
    error: str | None = None


def read_tag_block(payload: str, label: str) -> Found:
    """The calls in a call tag's payload, with notes on what could not be read."""
    payload = unfence(payload)
    if not payload:
        return Found(errors=[f"{label} is empty"])
    value, error = decode_payload(payload)
    if error is not None:
        python_call = decode_python_call(payload)
        if python_call is not None:
            value, error = python_call, None
    values = [value]
    if error is not None:
        spans, unclosed = scan_brackets(payload)
        if spans and not unclosed and spans[0] != (0, len(payload)):  # several values
            values, error = _decode_each(payload, spans)
        elif unclosed:  # the model often forgets the last brace(s) before the closing tag
            closers = "".join("}" if payload[pos] == "{" else "]" for pos in reversed(unclosed))
            repaired, _ = decode_payload(payload + closers)
            if repaired is not None:
                error, values = None, [repaired]
    if error is not None:
        return Found(errors=[f"{label} is not valid JSON: {error}"])
    found = Found()
    for item in _items(values):
        read = _to_call(item, strict=False)
        if read.call is not None:
            found.calls.append(read.call)
        elif read.error is not None:
            found.errors.append(f"{label}: {read.error}")
        else:
            found.errors.append(f'{label} is not a function call (it has no "name")')
    if not found.calls and not found.errors:
        found.errors.append(f"{label} holds no function call")
    return found


def read_json_call(payload: str, label: str, report: bool) -> Found | None:
    """The calls in a fenced block or bare JSON value; None when it is not a call, or is
    unreadable and ``report`` is off (then it stays chat)."""
    payload = unfence(payload)
    if not looks_like_call(payload):
        return None
    value, error = decode_payload(payload)
    values = [value]
    if error is not None:
        spans, unclosed = scan_brackets(payload)
        if (
            spans
            and not unclosed
            and spans[0] != (0, len(payload))
            and not _has_text_around(payload, spans)
        ):
            values, error = _decode_each(payload, spans)
    if error is not None:
        return Found(errors=[f"{label} is not valid JSON: {error}"]) if report else None
    found = Found()
    for item in _items(values):
        read = _to_call(item, strict=True)
        if read.call is None and read.error is None:
            return None
        if read.call is not None:
            found.calls.append(read.call)
        else:
            found.errors.append(f"{label}: {read.error}")
    return found if found.calls or found.errors else None


def unfence(payload: str) -> str:
    """``payload`` without a surrounding code fence (and its info string), stripped."""
    payload = payload.strip()
    if payload.startswith("```"):
        payload = payload[FENCE_INFO.match(payload, 3).end() :].removesuffix("```").strip()
    return payload


def _decode_each(payload: str, spans: list[tuple[int, int]]) -> tuple[list[Any], str | None]:
    decoded = [decode_payload(payload[start:end]) for start, end in spans]
    return [item for item, _ in decoded], next((error for _, error in decoded if error), None)


def _items(values: list[Any]) -> Iterator[Any]:
    for value in values:
        yield from (value if isinstance(value, list | tuple) else [value])


def _has_text_around(payload: str, spans: list[tuple[int, int]]) -> bool:
    ends = [0] + [end for _, end in spans]
    starts = [start for start, _ in spans] + [len(payload)]
    return any(
        payload[end:start].strip(" \t\r\n,") for end, start in zip(ends, starts, strict=True)
    )


def _to_call(item: Any, strict: bool) -> _Read:
    """``item`` read as a call; neither call nor error when it is not call-shaped.

    Strict (fences, bare JSON): a name that is an identifier and an arguments
    key are required. Otherwise a call without a name whose argument names fit
    exactly one tool is a call of that tool.
    """
    if isinstance(item, str) and not strict:  # a call encoded twice
        item = decode_payload(item.strip())[0]
    if not isinstance(item, dict):
        return _Read()
    wrapper = next((key for key in _WRAPPERS if isinstance(item.get(key), dict)), None)
    if wrapper is not None:  # OpenAI style {"function": {...}} or {"function_call": {...}}
        item = item[wrapper]
    name = next((item[key] for key in NAME_KEYS if key in item), None)
    key = next((key for key in ARGUMENT_KEYS if key in item), None)
    arguments = item[key] if key else None
    if name is None and not strict:  # nameless: the arguments alone may say which tool
        arguments = item if key is None else arguments
        tool = tool_for_arguments(arguments) if isinstance(arguments, dict) else None
        name = tool.__name__ if tool is not None else None
    if not isinstance(name, str) or not name.strip():
        return _Read()
    name = name.strip()
    if strict and (key is None or not _IDENTIFIER.fullmatch(name)):
        return _Read()
    if isinstance(arguments, str):
        arguments, error = decode_payload(arguments.strip()) if arguments.strip() else ({}, None)
        if error is not None:
            return _Read(error=f"the arguments of {name} are not valid JSON: {error}")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return _Read(error=f"the arguments of {name} are not an object")
    return _Read(ToolCall(name=name, arguments=arguments))
