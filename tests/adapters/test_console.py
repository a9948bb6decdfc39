"""The terminal chat: same pipeline, readable cards, /reset and /quit."""

from __future__ import annotations

import io

from hermes_bot.adapters.console import run_console
from hermes_bot.config import Settings
from hermes_bot.pipeline import Pipeline
from tests.fakes import ScriptedBackend

JOKE = (
    '<functioncall>{"name": "Joke", "arguments": {"setup": "Why do programmers prefer dark mode?",'
    ' "answer": "Because light attracts bugs."}}</functioncall>'
)


async def test_console_chat_cards_reset_and_quit() -> None:
    backend = ScriptedBackend(["Here is one! " + JOKE, "Hi! I'm Hermes."], chunk=3)
    pipeline = Pipeline.from_settings(backend, Settings())
    stdin = io.StringIO("Tell me a joke\n/reset\n   \nhello\n/quit\nnever read\n")
    stdout = io.StringIO()
    assert await run_console(pipeline, stdin, stdout) == 0
    out = stdout.getvalue()
    assert "hermes> Here is one!\n┌─ 😄 Here's a joke" in out
    assert "Why do programmers prefer dark mode?" in out
    assert "... Because light attracts bugs." in out
    assert "(conversation forgotten)" in out
    assert "[!] Your message is empty" in out
    assert "hermes> Hi! I'm Hermes." in out
    assert "functioncall" not in out
    # /reset forgot the joke: the second prompt has no history.
    assert "dark mode" not in backend.requests[1].prompt
    assert len(backend.requests) == 2


async def test_console_ends_at_end_of_input() -> None:
    pipeline = Pipeline.from_settings(ScriptedBackend(["fine"]), Settings())
    stdout = io.StringIO()
    assert await run_console(pipeline, io.StringIO("how are you?"), stdout) == 0
    assert "hermes> fine" in stdout.getvalue() and stdout.getvalue().endswith("bye\n")


async def test_text_printed_while_streaming_is_not_printed_twice() -> None:
    pipeline = Pipeline.from_settings(
        ScriptedBackend(["Hello there, friend."], chunk=2), Settings()
    )
    stdout = io.StringIO()
    await run_console(pipeline, io.StringIO("hi\n"), stdout)
    assert stdout.getvalue().count("Hello there, friend.") == 1
    assert "hermes> Hello there, friend.\n" in stdout.getvalue()
