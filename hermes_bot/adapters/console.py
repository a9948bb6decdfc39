"""Terminal chat through the same pipeline: try the bot without any platform token."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from typing import TextIO

from hermes_bot.pipeline import ErrorReply, Pipeline, Reply, TextReply, ToolReply
from hermes_bot.tools import BookRecommendation, Joke, SongRecommendation, Tool

CONVERSATION_KEY = "console"
HELP = "Type a message and press Enter. /reset forgets the conversation, /quit leaves."


def render_tool(tool: Tool) -> str:
    """A tool reply as a small text card."""
    match tool:
        case Joke():
            title, lines = "Joke", [tool.setup, f"... {tool.answer}"]
        case SongRecommendation():
            title, lines = "Song for you", [tool.recommended_song, f"(for: {tool.interest})"]
        case BookRecommendation():
            title, lines = "Book for you", [tool.recommended_book, f"(for: {tool.interest})"]
        case _:
            title, lines = type(tool).__name__, [str(tool.model_dump())]
    body = [wrapped for line in lines for wrapped in textwrap.wrap(line, 68) or [""]]
    width = max(len(title), *(len(line) for line in body)) + 2
    top = f"┌─ {title} " + "─" * (width - len(title) - 2) + "┐"
    middle = [f"│ {line.ljust(width - 1)}│" for line in body]
    return "\n".join([top, *middle, "└" + "─" * (width + 1) + "┘"])


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


class _TerminalStream:
    """Prints the answer as it is written; the final reply fills in what streaming could not."""

    def __init__(self, stdout: TextIO) -> None:
        self._stdout = stdout
        self.printed = ""

    async def on_text(self, visible: str) -> None:
        if not visible.startswith(self.printed):
            return  # printed text cannot be taken back; the final reply is shown whole
        self._stdout.write(visible[len(self.printed) :])
        self._stdout.flush()
        self.printed = visible

    def finish(self, reply: Reply) -> str:
        """What is left to print once ``reply`` is complete."""
        streamed_text = isinstance(reply, TextReply | ToolReply) and reply.text == self.printed
        if not self.printed:
            return render_reply(reply)
        if not streamed_text:
            return "\n" + render_reply(reply)
        if isinstance(reply, ToolReply):
            return "\n" + render_reply(ToolReply(reply.tools))
        return ""


async def _read_line(prompt: str, stdin: TextIO, stdout: TextIO) -> str | None:
    stdout.write(prompt)
    stdout.flush()
    line = await asyncio.to_thread(stdin.readline)
    return line.rstrip("\n") if line else None


async def run_console(
    pipeline: Pipeline, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout
) -> int:
    """Chat until /quit or end of input; returns the exit code."""
    stdout.write(f"hermes-bot console. {HELP}\n")
    while (line := await _read_line("you> ", stdin, stdout)) is not None:
        command = line.strip().lower()
        if command in ("/quit", "/exit"):
            break
        if command == "/reset":
            pipeline.reset(CONVERSATION_KEY)
            stdout.write("(conversation forgotten)\n")
            continue
        if command in ("/help", "/?"):
            stdout.write(HELP + "\n")
            continue
        stdout.write("hermes> ")
        stream = _TerminalStream(stdout)
        reply = await pipeline.respond(CONVERSATION_KEY, line, on_text=stream.on_text)
        stdout.write(stream.finish(reply) + "\n")
        stdout.flush()
    stdout.write("bye\n")
    return 0
