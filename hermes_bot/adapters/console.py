"""Terminal chat through the same pipeline: try the bot without any platform token.

Only the conversation goes to stdout (logs go to a file, status lines to
stderr). On a terminal answers stream as they are written, and an attempt the
pipeline discarded is erased; otherwise each answer is printed once, whole.
Ctrl-C while an answer is written stops it; Ctrl-C at the prompt or Ctrl-D
ends the chat with exit code 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import textwrap
import threading
import unicodedata
from collections.abc import Iterator
from typing import TextIO

from hermes_bot.conversation import Context
from hermes_bot.pipeline import ErrorReply, Pipeline, Reply, TextReply, ToolReply
from hermes_bot.tools import Tool, card_of

_log = logging.getLogger(__name__)

CONVERSATION_KEY = "console"
HELP = (
    "Type a message and press Enter. /reset forgets the conversation, "
    "/forget-me deletes everything stored about you, /quit leaves."
)
PROMPT = "you> "
ANSWER = "hermes> "
# The reader thread's marks in the line queue: end of input, and Ctrl-C at the prompt.
_EOF = None
_INTERRUPT = "\x03"
# Exit code when Ctrl-C comes while the model is still loading (like a shell's 128 + SIGINT).
INTERRUPTED_WHILE_LOADING = 130


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes (wide East Asian characters and emoji take two)."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in text
    )


def render_tool(tool: Tool) -> str:
    """A tool reply as a small text card: headline, secret after "...", then the fields."""
    card = card_of(tool)
    title = f"{card.emoji} {card.title}"
    lines = [card.headline, *([f"... {card.secret}"] if card.secret is not None else [])]
    lines += [f"{label}: {value}" for label, value in card.fields]
    body = [wrapped for line in lines for wrapped in textwrap.wrap(line, 68) or [""]]
    inner = max(display_width(title) + 2, *(display_width(line) for line in body))
    top = f"┌─ {title} " + "─" * (inner - display_width(title) - 2) + "─┐"
    middle = [f"│ {line}{' ' * (inner - display_width(line))} │" for line in body]
    return "\n".join([top, *middle, f"└{'─' * (inner + 2)}┘"])


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


class _Answer:
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


def _read_lines(stdin: TextIO, loop: asyncio.AbstractEventLoop, lines: asyncio.Queue) -> None:
    """Thread body: every line of ``stdin`` into ``lines``, then _EOF (it never blocks exit)."""
    while True:
        try:
            line = stdin.readline()
        except (OSError, ValueError):
            line = ""
        try:
            loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n") if line else _EOF)
        except RuntimeError:  # the loop is closed: the chat is over
            return
        if not line:
            return


@contextlib.contextmanager
def _on_interrupt(loop: asyncio.AbstractEventLoop, handler: object) -> Iterator[None]:
    """Run ``handler`` on Ctrl-C instead of raising KeyboardInterrupt (main thread only)."""
    try:
        loop.add_signal_handler(signal.SIGINT, handler)  # type: ignore[arg-type]
    except (RuntimeError, ValueError, NotImplementedError):
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


class Console:
    """The chat loop: reads lines, answers them, handles Ctrl-C and Ctrl-D."""

    def __init__(self, pipeline: Pipeline, stdin: TextIO, stdout: TextIO) -> None:
        self._pipeline = pipeline
        self._stdin = stdin
        self._stdout = stdout
        self._live = _isatty(stdout)
        self._echo = not _isatty(stdin)
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._phase = "loading"
        self._answering: asyncio.Task[Reply] | None = None

    def _interrupt(self) -> None:
        if self._phase == "loading":
            sys.stderr.write("\nhermes-bot: interrupted while loading the model\n")
            sys.stderr.flush()
            os._exit(INTERRUPTED_WHILE_LOADING)
        if self._answering is not None and not self._answering.done():
            self._answering.cancel()
        else:
            self._lines.put_nowait(_INTERRUPT)

    def _write(self, text: str) -> None:
        self._stdout.write(text)
        self._stdout.flush()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        with _on_interrupt(loop, self._interrupt):
            await self._pipeline.backend.start()
            self._phase = "chat"
            threading.Thread(
                target=_read_lines,
                args=(self._stdin, loop, self._lines),
                name="console-stdin",
                daemon=True,
            ).start()
            self._write(f"hermes-bot console. {HELP}\n")
            while True:
                self._write(PROMPT)
                line = await self._lines.get()
                if line is _EOF or line == _INTERRUPT:
                    self._write("\n")
                    break
                if self._echo:
                    self._write(line + "\n")
                if not await self._handle(line):
                    break
        self._write("bye\n")
        return 0

    async def _handle(self, line: str) -> bool:
        """Act on one line; False when the chat is over."""
        command = line.strip().lower()
        if command in ("/quit", "/exit"):
            return False
        if command == "/reset":
            await self._pipeline.reset(CONVERSATION_KEY)
            self._write("(conversation forgotten)\n")
        elif command == "/forget-me":
            removed = await self._pipeline.forget_user(Context().speaker.user_id)
            self._write(f"(deleted {removed} stored messages)\n")
        elif command in ("/help", "/?"):
            self._write(HELP + "\n")
        else:
            await self._answer(line)
        return True

    async def _answer(self, text: str) -> None:
        self._write(ANSWER)
        answer = _Answer(self._stdout)
        on_text = answer.on_text if self._live else None
        task = asyncio.create_task(self._pipeline.respond(CONVERSATION_KEY, text, on_text=on_text))
        self._answering = task
        try:
            await asyncio.wait({task})
        finally:
            self._answering = None
            task.cancel()
        if task.cancelled():
            _log.info("answer stopped with Ctrl-C")
            answer.stopped()
        else:
            answer.finish(task.result())


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


async def run_console(
    pipeline: Pipeline, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout
) -> int:
    """Load the model, then chat until /quit, Ctrl-D or Ctrl-C at the prompt; the exit code."""
    return await Console(pipeline, stdin, stdout).run()
