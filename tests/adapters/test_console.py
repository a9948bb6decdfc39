"""The terminal chat: same pipeline, readable cards, /reset and /quit."""

from __future__ import annotations

import io

from hermes_bot.adapters.console import run_console
from hermes_bot.adapters.terminal import display_width, render_tool
from hermes_bot.config import Settings
from hermes_bot.pipeline import Pipeline
from hermes_bot.tools import BookRecommendation, Joke, SongRecommendation
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


class _Tty(io.StringIO):
    """A terminal's output stream (80 columns) recorded as written, escape codes included."""

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("no file descriptor")


def _screen(raw: str, columns: int = 80) -> list[str]:
    """What a terminal shows after ``raw``: text, newlines, \\r, cursor up, clear below."""
    rows, row, col, i = [""], 0, 0, 0
    while i < len(raw):
        if raw.startswith("\x1b[A", i):
            row, i = max(0, row - 1), i + 3
            continue
        if raw.startswith("\x1b[J", i):
            rows[row] = rows[row][:col]
            del rows[row + 1 :]
            i += 3
            continue
        char, i = raw[i], i + 1
        if char == "\r":
            col = 0
            continue
        if char == "\n" or col >= columns:
            row, col = row + 1, 0
            rows.extend([""] * (row + 1 - len(rows)))
            if char == "\n":
                continue
        line = rows[row].ljust(col)
        rows[row] = line[:col] + char + line[col + 1 :]
        col += 1
    return rows


async def test_a_retried_turn_shows_only_the_answer_that_counts() -> None:
    invalid = "Let me think about that for a long while... " * 3 + (
        '<functioncall>{"name": "Joke", "arguments": {"setup": ""}}</functioncall>'
    )
    backend = ScriptedBackend([invalid, "A plain answer."], chunk=5)
    stdout = _Tty()
    await run_console(Pipeline.from_settings(backend, Settings()), io.StringIO("joke?\n"), stdout)
    assert len(backend.requests) == 2  # the corrective retry happened
    assert "Let me think" in stdout.getvalue()  # the first attempt was streamed ...
    screen = "\n".join(_screen(stdout.getvalue()))
    assert "Let me think" not in screen  # ... and erased
    assert screen.count("A plain answer.") == 1
    assert "you> joke?\nhermes> A plain answer.\nyou> \nbye" in screen


async def test_streamed_answers_on_a_terminal_are_shown_once() -> None:
    backend = ScriptedBackend(["Hello there, friend. " * 10], chunk=3)
    stdout = _Tty()
    await run_console(Pipeline.from_settings(backend, Settings()), io.StringIO("hi\n"), stdout)
    assert "\x1b[J" not in stdout.getvalue()
    # Rows joined without newlines: the terminal wraps the long answer at 80 columns.
    assert "".join(_screen(stdout.getvalue())).count("Hello there, friend.") == 10


def test_card_borders_line_up_with_wide_characters() -> None:
    for tool in (
        Joke(setup="Why did the 🐔 cross the road?", answer="To get to the other side."),
        SongRecommendation(interest="日本のポップ", recommended_song="Plastic Love"),
        BookRecommendation(interest="x", recommended_book="A" * 150),
    ):
        lines = render_tool(tool).splitlines()
        assert len({display_width(line) for line in lines}) == 1, lines
        assert lines[0].startswith("┌─ ") and lines[0].endswith("┐")
        assert all(line.startswith("│ ") and line.endswith(" │") for line in lines[1:-1])


async def test_tool_commands_force_a_valid_call_like_the_slash_commands() -> None:
    song = (
        '<functioncall>{"name": "SongRecommendation", "arguments": '
        '{"interest": "rainy days", "recommended_song": "Riders on the Storm"}}</functioncall>'
    )
    backend = ScriptedBackend([JOKE, song])
    stdin = io.StringIO("/joke\n/song\n/song rainy days\n/book " + "x" * 201 + "\n/dance\n")
    stdout = io.StringIO()
    await run_console(Pipeline.from_settings(backend, Settings()), stdin, stdout)
    out = stdout.getvalue()
    joke, recommendation = backend.requests
    assert (joke.constraint.mode, joke.constraint.tools) == ("forced", ("Joke",))
    assert recommendation.constraint.tools == ("SongRecommendation",)
    assert "rainy days" in recommendation.prompt
    assert "Why do programmers prefer dark mode?" in out and "Riders on the Storm" in out
    assert "Usage: /song <interest>" in out
    assert "[!] The interest is too long (201 characters; the limit is 200)" in out
    assert "Unknown command /dance." in out


async def test_status_shows_the_backend_and_help_lists_the_registry() -> None:
    stdout = io.StringIO()
    pipeline = Pipeline.from_settings(ScriptedBackend([]), Settings())
    await run_console(pipeline, io.StringIO("/status\n/help\n"), stdout)
    out = stdout.getvalue()
    assert "┌─ Status" in out and "│ Model: scripted" in out and "│ Device: none" in out
    assert "/joke, /song <interest>, /book <interest> ask for a card" in out
