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
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

from hermes_bot.adapters.status import status_fields
from hermes_bot.adapters.terminal import ANSWER, LiveAnswer, render_box
from hermes_bot.conversation import Context
from hermes_bot.pipeline import Pipeline, Reply
from hermes_bot.tool_spec import ToolSpec
from hermes_bot.tools import SPECS

_log = logging.getLogger(__name__)

CONVERSATION_KEY = "console"
PROMPT = "you> "
# The reader thread's marks in the line queue: end of input, and Ctrl-C at the prompt.
_EOF = None
_INTERRUPT = "\x03"
# Exit code when Ctrl-C comes while the model is still loading (like a shell's 128 + SIGINT).
INTERRUPTED_WHILE_LOADING = 130


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
        self._started = time.monotonic()
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
            self._write(f"hermes-bot console. {help_text()}\n")
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
        word, _, rest = line.strip().partition(" ")
        command = word.lower()
        spec = _tool_command(command)
        if command in ("/quit", "/exit"):
            return False
        if command == "/reset":
            await self._pipeline.reset(CONVERSATION_KEY)
            self._write("(conversation forgotten)\n")
        elif command == "/forget-me":
            removed = await self._pipeline.forget_user(Context().speaker.user_id)
            self._write(f"(deleted {removed} stored messages)\n")
        elif command in ("/help", "/?"):
            self._write(help_text() + "\n")
        elif command == "/status":
            self._write(await self._status() + "\n")
        elif spec is not None:
            await self._call(spec, rest.strip())
        elif _COMMAND.fullmatch(command):
            self._write(f"Unknown command {word}. {help_text()}\n")
        else:
            await self._answer(line)
        return True

    async def _call(self, spec: ToolSpec, value: str) -> None:
        """A tool's command, as the slash command does it: a forced, valid call."""
        option = spec.option
        if option is None:
            text = f"{spec.prompt} {value}".strip()
        elif not value:
            self._write(f"Usage: /{spec.command} <{option.name}> ({option.description})\n")
            return
        elif len(value) > option.max_length:
            self._write(
                f"[!] The {option.name} is too long ({len(value)} characters; the limit is "
                f"{option.max_length}). Shorten it and try again.\n"
            )
            return
        else:
            text = spec.prompt.format(option=value)
        await self._answer(text, forced_tool=spec.name)

    async def _status(self) -> str:
        uptime = time.monotonic() - self._started
        history = await self._pipeline.history_length(CONVERSATION_KEY)
        turns = self._pipeline.telemetry.summary()
        fields = status_fields(self._pipeline.stats(), uptime, history, turns)
        return render_box("Status", [f"{label}: {value}" for label, value in fields])

    async def _answer(self, text: str, forced_tool: str | None = None) -> None:
        self._write(ANSWER)
        answer = LiveAnswer(self._stdout)
        on_text = answer.on_text if self._live else None
        task = asyncio.create_task(
            self._pipeline.respond(CONVERSATION_KEY, text, forced_tool=forced_tool, on_text=on_text)
        )
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


_COMMAND = re.compile(r"/[a-z][a-z-]*")


def _tool_command(command: str) -> ToolSpec | None:
    return next((spec for spec in SPECS.values() if f"/{spec.command}" == command), None)


def help_text() -> str:
    """What the console understands, the tools' commands taken from the registry."""
    tools = ", ".join(
        f"/{spec.command}" + (f" <{spec.option.name}>" if spec.option else "")
        for spec in SPECS.values()
    )
    return (
        f"Type a message and press Enter. {tools} ask for a card, /status shows the model's "
        "state, /reset forgets the conversation, /forget-me deletes everything stored about "
        "you, /quit leaves."
    )


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
