"""Model text → ParsedCompletion: chat text, function calls and read errors.

Stages run in order and each one only looks at the text the earlier ones left
(first match wins per region): the call-tag blocks of each
:class:`~hermes_bot.call_format.CallFormat` (any spelling), fenced code blocks
holding a call, then bare JSON calls (``call_reading`` reads each payload).
Every scanner is a single pass, so hostile input costs linear time; nothing raises.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

from hermes_bot.call_format import (
    CALL_FORMATS,
    CONTROL_TOKENS,
    IM_END,
    IM_START,
    CallFormat,
    control_pattern,
    markup_pattern,
    markup_tags,
)
from hermes_bot.call_reading import (
    FENCE_INFO,
    Found,
    looks_like_call,
    read_json_call,
    read_tag_block,
    starts_like_call,
)
from hermes_bot.chat_text import assemble
from hermes_bot.payloads import ValueScanner, scan_brackets, split_leading_value
from hermes_bot.tools import ToolCall

_log = logging.getLogger(__name__)

MAX_ERRORS = 20
# How error notes name what they are about (a call-tag block is named by its tag).
FENCE_LABEL = "fenced block"
JSON_LABEL = "JSON call"

_SPECIAL = control_pattern()
_NEXT_TURN = re.compile(rf"{re.escape(IM_END)}\s*{re.escape(IM_START)}")
_TAG = {fmt.tag: fmt.tag_pattern() for fmt in CALL_FORMATS}
_LEFTOVER_TAG = markup_pattern()
_FENCE = re.compile("```")
_CALL_FENCES = frozenset({"", "json", "json5", "jsonc", *(fmt.tag for fmt in CALL_FORMATS)})
_AFTER_OPEN = re.compile(r"\s*(\S?)")
_HELD_TAGS = (*(tag.lower() for tag in markup_tags()), *CONTROL_TOKENS, "```")


@dataclass(frozen=True)
class ParsedCompletion:
    """What the model said: chat text, calls in order, and notes on unreadable calls."""

    text: str
    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class _Code(str):
    """A fenced code block that is chat: later stages leave its JSON alone."""

    __slots__ = ()


_Piece = str | Found
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


def parse_stage(note: str) -> str:
    """The stage an error note comes from: ``fence``, ``json`` or ``tag``."""
    if note.startswith(FENCE_LABEL):
        return "fence"
    return "json" if note.startswith(JSON_LABEL) else "tag"


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
    chat, calls, errors = assemble(pieces)
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
            pieces.append(read_tag_block(payload, f"unclosed {fmt.tag} block {number}"))
            if not fmt.is_closer_start(rest.strip()):
                pieces.append(rest)
            return pieces
        after = matches[j]
        payload = text[opener.end() : after.start()]
        pieces.append(read_tag_block(payload, f"{fmt.tag} block {number}"))
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


def _fence_stage(text: str, counter: Iterator[int]) -> list[_Piece]:
    """Cut out fenced code blocks whose content is a call; other code stays chat."""
    fences = [match.start() for match in _FENCE.finditer(text)]
    pieces: list[_Piece] = []
    pos = 0
    for j in range(0, len(fences), 2):
        start = fences[j]
        body = FENCE_INFO.match(text, start + 3).end()
        label = f"{FENCE_LABEL} {next(counter)}"
        report = text[start + 3 : body].lower() in _CALL_FENCES  # else unreadable code is chat
        if j + 1 < len(fences):
            payload, rest, end = text[body : fences[j + 1]], "", fences[j + 1] + 3
        else:
            payload, rest = split_leading_value(text[body:])
            end = len(text)
        found = read_json_call(payload, label, report)
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
        if not looks_like_call(candidate):
            continue
        label = f"{JSON_LABEL} {next(counter)}"
        found = read_json_call(candidate, label, starts_like_call(candidate))
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
        pieces += [text[pos : match.start()], Found()]
        pos = match.end()
    pieces.append(text[pos:])
    return pieces


_STAGES: tuple[_Stage, ...] = (
    *(partial(_tag_stage, fmt) for fmt in CALL_FORMATS),
    _fence_stage,
    _bare_stage,
    _leftover_stage,
)


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
