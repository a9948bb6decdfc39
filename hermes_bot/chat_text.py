"""The chat text left once the parser has cut out the call markup: joined and tidied.

Where markup was removed, the text around it is joined with one space or one
line break, never gluing words together nor leaving a blank line per call;
fences left empty are dropped. The calls and read errors are collected in order.
"""

from __future__ import annotations

import re
from typing import Any

from hermes_bot.call_reading import FENCE_INFO, Found
from hermes_bot.tools import ToolCall

_FENCE = re.compile("```")


def assemble(pieces: list[str | Found]) -> tuple[str, list[ToolCall], list[str]]:
    """Join the chat around removed markup, then tidy whitespace."""
    calls: list[ToolCall] = []
    errors: list[str] = []
    entries: list[list[Any]] = []  # [text, removal before it, removal after it]
    gap = False
    for piece in pieces:
        if isinstance(piece, Found):
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
        if not chat[FENCE_INFO.match(chat, start + 3).end() : close].strip():
            out += [chat[pos:start], "\n"]  # a newline, so no tag is glued together
            pos = close + 3
    out.append(chat[pos:])
    return "".join(out)
