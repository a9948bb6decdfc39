"""The console in a real terminal (a pty): Ctrl-C stops an answer, Ctrl-C or Ctrl-D quits.

The child runs the real console on a scripted backend; a pty is its terminal.
Ctrl-C is SIGINT, as the terminal would send it; Ctrl-D is the terminal's EOF key.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from hermes_bot.adapters.console import run_console
    from hermes_bot.config import Settings
    from hermes_bot.pipeline import Pipeline
    from tests.fakes import ScriptedBackend

    class Storyteller(ScriptedBackend):
        async def stream(self, request):
            if "story" not in request.prompt.rsplit("<|im_start|>user", 1)[-1]:
                async for delta in super().stream(request):
                    yield delta
                return
            self.requests.append(request)
            for word in ["Once", " upon", " a", " time"] + [" and"] * 600:
                yield word
                await asyncio.sleep(0.05)

    backend = Storyteller(lambda request: "Hi there!")
    sys.exit(asyncio.run(run_console(Pipeline.from_settings(backend, Settings()))))
    """
)


class Terminal:
    """The console child on a pty; ``read_until`` waits for text to appear (no sleeps)."""

    def __init__(self) -> None:
        master, slave = pty.openpty()
        self.master = master
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            cwd=ROOT,
            stdin=slave,
            stdout=slave,
            stderr=subprocess.PIPE,
        )
        os.close(slave)
        self.output = ""

    def read_until(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} never appeared in {self.output!r}"
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    self.output += os.read(self.master, 4096).decode(errors="replace")
                except OSError:  # the child closed the terminal
                    assert text in self.output, f"{text!r} never appeared in {self.output!r}"
        return self.output

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def ctrl_c(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def exit_code(self) -> int:
        code = self.process.wait(timeout=30)
        os.close(self.master)
        return code


def test_ctrl_c_stops_the_answer_then_ctrl_c_at_the_prompt_quits() -> None:
    terminal = Terminal()
    try:
        terminal.read_until("you> ")
        terminal.type(b"tell me a story\n")
        terminal.read_until("Once upon a time")
        terminal.ctrl_c()
        terminal.read_until("[stopped]")
        terminal.read_until("[stopped]\r\nyou> ")
        terminal.type(b"hello\n")
        out = terminal.read_until("hermes> Hi there!\r\nyou> ")
        assert out.count("Hi there!") == 1
        terminal.ctrl_c()
        terminal.read_until("bye")
        assert terminal.exit_code() == 0
    finally:
        terminal.process.kill()
    errors = terminal.process.stderr.read().decode()
    assert "Traceback" not in errors and "KeyboardInterrupt" not in errors


def test_ctrl_d_at_the_prompt_quits_on_its_own_line() -> None:
    terminal = Terminal()
    try:
        terminal.read_until("you> ")
        terminal.type(b"\x04")
        out = terminal.read_until("bye")
        assert terminal.exit_code() == 0
    finally:
        terminal.process.kill()
    assert "you> bye" not in out
    assert out.rstrip().endswith("you> \r\nbye")
