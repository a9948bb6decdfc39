"""What the console shows: cards with aligned borders, boxes, and the live answer.

On a terminal an answer streams as it is written; when the final answer is not
a continuation of what is on screen (a discarded attempt), it is erased and
rewritten, so each answer is shown exactly once.
"""

from __future__ import annotations

import os
import textwrap
import unicodedata
from typing import TextIO

from hermes_bot.pipeline import ErrorReply, Reply, TextReply, ToolReply
from hermes_bot.tools import Tool, card_of

ANSWER = "hermes> "


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes (wide East Asian characters and emoji take two)."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in text
    )


def render_box(title: str, lines: list[str]) -> str:
    """``lines`` in a box with ``title`` on its top border; borders line up whatever the text."""
    body = [wrapped for line in lines for wrapped in textwrap.wrap(line, 68) or [""]]
    inner = max(display_width(title) + 2, *(display_width(line) for line in body))
    top = f"┌─ {title} " + "─" * (inner - display_width(title) - 2) + "─┐"
    middle = [f"│ {line}{' ' * (inner - display_width(line))} │" for line in body]
    return "\n".join([top, *middle, f"└{'─' * (inner + 2)}┘"])


def render_tool(tool: Tool) -> str:
    """A tool reply as a small text card: headline, secret after "...", then the fields."""
    card = card_of(tool)
    lines = [card.headline, *([f"... {card.secret}"] if card.secret is not None else [])]
    lines += [f"{label}: {value}" for label, value in card.fields]
    return render_box(f"{card.emoji} {card.title}", lines)


def render_reply(reply: Reply) -> str:
    """The text the terminal shows for a reply."""
    match reply:
        case ToolReply(tools=tools, text=text):
            return "\n".join([*([text] if text else []), *(render_tool(t) for t in tools)])
        case TextReply(text=text):
            return text
        case ErrorReply(message=message):
            return f"[!] {message}"
    raise TypeError(f"unknown reply {reply!r}")


class LiveAnswer:
    """One answer on screen: streamed on a terminal, erased and rewritten when it changed."""

    def __init__(self, stdout: TextIO) -> None:
        self._stdout = stdout
        self.printed = ""

    def _write(self, text: str) -> None:
        self._stdout.write(text)
        self._stdout.flush()

    def _erase(self) -> None:
        """Move back to the start of this answer and clear the screen below it."""
        try:
            columns = os.get_terminal_size(self._stdout.fileno()).columns
        except (OSError, ValueError):
            columns = 80
        lines = (ANSWER + self.printed).split("\n")
        rows = sum(max(1, -(-display_width(line) // columns)) for line in lines)
        self._write("\r" + "\x1b[A" * (rows - 1) + "\x1b[J" + ANSWER)
        self.printed = ""

    def show(self, text: str) -> None:
        """Make the screen show ``text`` as the answer so far."""
        if not text.startswith(self.printed):
            self._erase()
        self._write(text[len(self.printed) :])
        self.printed = text

    async def on_text(self, visible: str) -> None:
        self.show(visible)

    def finish(self, reply: Reply) -> None:
        self.show(render_reply(reply))
        self._write("\n")

    def stopped(self) -> None:
        self._write(" [stopped]\n" if self.printed else "[stopped]\n")
