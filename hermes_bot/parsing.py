"""Model text → ParsedCompletion: chat text, function calls and read errors.

Stages run in order and each one only looks at the text the earlier ones left
(first match wins per region): the call-tag blocks of each
:class:`~hermes_bot.call_format.CallFormat` (any spelling), fenced code blocks
holding a call, then bare JSON calls. Payloads are read as
JSON, then as Python literals (``ast.literal_eval``, never ``eval``). Every
scanner is a single pass, so hostile input costs linear time; nothing raises.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from hermes_bot.call_format import (
    ARGUMENT_KEYS,
    CALL_ARGUMENT_KEYS,
    CALL_FORMATS,
    CHATML_ROLES,
    CONTROL_TOKENS,
    IM_END,
    IM_START,
    NAME_KEYS,
    CallFormat,
    markup_pattern,
    markup_tags,
)
from hermes_bot.payloads import (
    ValueScanner,
    decode_payload,
    decode_python_call,
    scan_brackets,
    split_leading_value,
)
from hermes_bot.tools import ToolCall, tool_for_arguments

_log = logging.getLogger(__name__)

MAX_ERRORS = 20

_SPECIAL = re.compile(
    "|".join(
        re.escape(token) + (f"(?:{'|'.join(CHATML_ROLES)})?" if token == IM_START else "")
        for token in CONTROL_TOKENS
    )
)
_NEXT_TURN = re.compile(rf"{re.escape(IM_END)}\s*{re.escape(IM_START)}")
_TAG = {fmt.tag: fmt.tag_pattern() for fmt in CALL_FORMATS}
_LEFTOVER_TAG = markup_pattern()
_FENCE = re.compile("```")
_FENCE_INFO = re.compile(r"[\w+.-]*")
_NAME_HINT = re.compile(rf"""["'](?:{"|".join(NAME_KEYS)})["']\s*:""")
_ARGS_HINT = re.compile(rf"""["'](?:{"|".join(CALL_ARGUMENT_KEYS)})["']\s*:""")
_CALL_START = re.compile(rf"""[\[{{]\s*\{{?\s*["'](?:{"|".join(NAME_KEYS)})["']\s*:""")
_CALL_FENCES = frozenset({"", "json", "json5", "jsonc", *(fmt.tag for fmt in CALL_FORMATS)})
_WRAPPERS = ("function", "function_call", "tool_call")
_IDENTIFIER = re.compile(r"[A-Za-z_][\w.-]{0,99}")
_AFTER_OPEN = re.compile(r"\s*(\S?)")
_HELD_TAGS = (*(tag.lower() for tag in markup_tags()), *CONTROL_TOKENS, "```")


@dataclass(frozen=True)
class ParsedCompletion:
    """What the model said: chat text, calls in order, and notes on unreadable calls."""

    text: str
    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class _Removed:
    """Markup cut out of the chat text, with what was read from it."""

    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class _Code(str):
    """A fenced code block that is chat: later stages leave its JSON alone."""

    __slots__ = ()


_Piece = str | _Removed
_Stage = Callable[[str, Iterator[int]], list[_Piece]]


def parse_completion(text: str) -> ParsedCompletion:
    """Split a completion into chat text, function calls and read errors; never raises."""
    try:
        return _parse(text)
    except Exception:  # a parser bug must not take a turn down
        _log.exception("parse_completion failed on %d characters", len(str(text)))
        try:
            fallback = _LEFTOVER_TAG.sub(" ", _SPECIAL.sub(" ", str(text))).strip()
        except Exception:
            fallback = ""
        return ParsedCompletion(fallback, [], ["the reply could not be parsed"])


def visible_text(partial_text: str) -> str:
    """The chat text of a still-arriving completion that is safe to show; never raises."""
    try:
        text = _clean(partial_text)
        return _parse(text[: _held_back_from(text)]).text
    except Exception:
        _log.exception("visible_text failed on %d characters", len(str(partial_text)))
        return ""


def _parse(text: str) -> ParsedCompletion:
    pieces: list[_Piece] = [_clean(text)]
    for stage in _STAGES:
        counter = itertools.count(1)
        pieces = [
            out
            for piece in pieces
            for out in (stage(piece, counter) if isinstance(piece, str) else [piece])
        ]
    chat, calls, errors = _assemble(pieces)
    if len(errors) > MAX_ERRORS:
        errors = [*errors[:MAX_ERRORS], f"... and {len(errors) - MAX_ERRORS} more unreadable calls"]
    return ParsedCompletion(chat, calls, errors)


def _clean(text: str) -> str:
    """Drop a hallucinated next turn and blank out ChatML control tokens."""
    turn = _NEXT_TURN.search(text)
    if turn:
        text = text[: turn.start()]
    return _SPECIAL.sub(" ", text)


def _tag_stage(fmt: CallFormat, text: str, counter: Iterator[int]) -> list[_Piece]:
    """Cut out ``<tag>…</tag>`` blocks (any spelling); a new opener or the end of text also
    ends one, and a tag inside a string of the block's JSON value does not."""
    matches = list(_TAG[fmt.tag].finditer(text))
    pieces: list[_Piece] = []
    pos = i = 0
    while i < len(matches):
        opener = matches[i]
        if opener.group(1):  # a stray closer stays for the leftover-tag stage
            i += 1
            continue
        pieces.append(text[pos : opener.start()])
        number = next(counter)
        j = _block_end(text, matches, i)
        if j == len(matches):
            payload, rest = split_leading_value(text[opener.end() :])
            pieces.append(_read_tag_block(payload, f"unclosed {fmt.tag} block {number}"))
            if not _is_cut_closer(fmt, rest.strip()):
                pieces.append(rest)
            return pieces
        after = matches[j]
        payload = text[opener.end() : after.start()]
        pieces.append(_read_tag_block(payload, f"{fmt.tag} block {number}"))
        pos, i = (after.end(), j + 1) if after.group(1) else (after.start(), j)
    pieces.append(text[pos:])
    return pieces


def _block_end(text: str, matches: list[re.Match[str]], i: int) -> int:
    """Index of the tag that ends the block ``matches[i]`` opens (``len(matches)``: none).

    Tags inside a quoted string of the block's JSON value are skipped when the
    value closes before the tag that then ends the block.
    """
    scanner = ValueScanner(text, matches[i].end())
    j = i + 1
    while j < len(matches) and scanner.in_string(matches[j].start()):
        j += 1
    if j > i + 1:
        scanner.in_string(matches[j].start() if j < len(matches) else len(text))
        if scanner.end is None:
            return i + 1
    return j


def _is_cut_closer(fmt: CallFormat, rest: str) -> bool:
    """True when ``rest`` is (a start of) a closing tag of ``fmt``, cut off by the stop."""
    rest = rest.lower()
    return any(f"</{name}>".startswith(rest) for name in fmt.tag_spellings)


def _fence_stage(text: str, counter: Iterator[int]) -> list[_Piece]:
    """Cut out fenced code blocks whose content is a call; other code stays chat."""
    fences = [match.start() for match in _FENCE.finditer(text)]
    pieces: list[_Piece] = []
    pos = 0
    for j in range(0, len(fences), 2):
        start = fences[j]
        body = _FENCE_INFO.match(text, start + 3).end()
        label = f"fenced block {next(counter)}"
        report = text[start + 3 : body].lower() in _CALL_FENCES  # else unreadable code is chat
        if j + 1 < len(fences):
            payload, rest, end = text[body : fences[j + 1]], "", fences[j + 1] + 3
        else:
            payload, rest = split_leading_value(text[body:])
            end = len(text)
        found = _read_json_call(payload, label, report)
        pieces += (
            [text[pos:start], found, rest] if found else [text[pos:start], _Code(text[start:end])]
        )
        pos = end
    pieces.append(text[pos:])
    return pieces


def _bare_stage(text: str, counter: Iterator[int]) -> list[_Piece]:
    """Cut out balanced bare JSON objects or arrays shaped like calls (not inside code)."""
    if isinstance(text, _Code):
        return [text]
    pieces: list[_Piece] = []
    pos = 0
    for start, end in scan_brackets(text)[0]:
        candidate = text[start:end]
        if not _looks_like_call(candidate):
            continue
        report = _CALL_START.match(candidate) is not None
        found = _read_json_call(candidate, f"JSON call {next(counter)}", report)
        if found is not None:
            if text[start - 1 : start] == "`" == text[end : end + 1]:  # inline code
                start, end = start - 1, end + 1
            pieces += [text[pos:start], found]
            pos = end
    pieces.append(text[pos:])
    return pieces


def _leftover_stage(text: str, counter: Iterator[int]) -> list[_Piece]:
    """Cut out wrapper and stray closing tags that no block claimed."""
    pieces: list[_Piece] = []
    pos = 0
    for match in _LEFTOVER_TAG.finditer(text):
        pieces += [text[pos : match.start()], _Removed()]
        pos = match.end()
    pieces.append(text[pos:])
    return pieces


_STAGES: tuple[_Stage, ...] = (
    *(partial(_tag_stage, fmt) for fmt in CALL_FORMATS),
    _fence_stage,
    _bare_stage,
    _leftover_stage,
)


def _looks_like_call(text: str) -> bool:
    return bool(_NAME_HINT.search(text) and _ARGS_HINT.search(text))


@dataclass(frozen=True)
class _Read:
    """What one call-shaped item held: a call, or a note on why it is not one."""

    call: ToolCall | None = None
    error: str | None = None


def _read_tag_block(payload: str, label: str) -> _Removed:
    """The calls in a call tag's payload, with notes on what could not be read."""
    payload = _unfence(payload)
    if not payload:
        return _Removed(errors=[f"{label} is empty"])
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
        return _Removed(errors=[f"{label} is not valid JSON: {error}"])
    found = _Removed()
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


def _read_json_call(payload: str, label: str, report: bool) -> _Removed | None:
    """The calls in a fenced block or bare JSON value; None when it is not a call, or is
    unreadable and ``report`` is off (then it stays chat)."""
    payload = _unfence(payload)
    if not _looks_like_call(payload):
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
        return _Removed(errors=[f"{label} is not valid JSON: {error}"]) if report else None
    found = _Removed()
    for item in _items(values):
        read = _to_call(item, strict=True)
        if read.call is None and read.error is None:
            return None
        if read.call is not None:
            found.calls.append(read.call)
        else:
            found.errors.append(f"{label}: {read.error}")
    return found if found.calls or found.errors else None


def _unfence(payload: str) -> str:
    payload = payload.strip()
    if payload.startswith("```"):
        payload = payload[_FENCE_INFO.match(payload, 3).end() :].removesuffix("```").strip()
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


def _assemble(pieces: list[_Piece]) -> tuple[str, list[ToolCall], list[str]]:
    """Join the chat around removed markup, then tidy whitespace."""
    calls: list[ToolCall] = []
    errors: list[str] = []
    entries: list[list[Any]] = []  # [text, removal before it, removal after it]
    gap = False
    for piece in pieces:
        if isinstance(piece, _Removed):
            calls += piece.calls
            errors += piece.errors
            gap = True
            if entries:
                entries[-1][2] = True
        elif piece:
            entries.append([piece, gap, False])
            gap = False
    out: list[str] = []
    for text, after_gap, before_gap in entries:
        if after_gap:
            text = text.lstrip(" \t")
        if before_gap:
            text = text.rstrip(" \t")
        if not text:
            continue
        if out and after_gap:
            if out[-1].endswith("\n") and text.startswith("\n"):
                text = text[1:]  # the removed markup had a line of its own
            elif not out[-1].endswith("\n") and not text.startswith("\n"):
                out.append(" ")
        out.append(text)
    chat = _drop_empty_fences("".join(out))
    chat = "\n".join(line.rstrip(" \t") for line in chat.split("\n"))
    chat = re.sub(r"\n{3,}", "\n\n", chat)
    return chat.strip(), calls, errors


def _drop_empty_fences(chat: str) -> str:
    """Remove code fences left with nothing inside (they wrapped a removed call)."""
    fences = [match.start() for match in _FENCE.finditer(chat)]
    out: list[str] = []
    pos = 0
    for j in range(0, len(fences) - 1, 2):
        start, close = fences[j], fences[j + 1]
        if not chat[_FENCE_INFO.match(chat, start + 3).end() : close].strip():
            out += [chat[pos:start], "\n"]  # a newline, so no tag is glued together
            pos = close + 3
    out.append(chat[pos:])
    return "".join(out)


def _held_back_from(text: str) -> int:
    """Where the part of a partial completion that may still become markup starts."""
    cuts = [len(text)]
    for pattern in _TAG.values():
        last = None
        for last in pattern.finditer(text):  # noqa: B007 - only the last one matters
            pass
        if last is not None and not last.group(1):
            cuts.append(last.start())
    if text.count("```") % 2:
        cuts.append(text.rfind("```"))
    tail = text[-max(map(len, _HELD_TAGS)) :].lower()
    for tag in _HELD_TAGS:
        if tail.endswith(tag):  # a complete "```" is not a partial one
            continue
        for size in range(len(tag) - 1, 0, -1):
            if tail.endswith(tag[:size]):
                cuts.append(len(text) - size)
                break
    for opener in scan_brackets(text)[1]:
        if _AFTER_OPEN.match(text, opener + 1).group(1) in ("", '"', "'", "{", "["):
            cuts.append(opener)
            break
    return min(cuts)
