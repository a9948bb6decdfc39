"""A request inside the executor, and the outbox that hands its output to the event loop.

The worker thread posts text and the final outcome onto the job; the event
loop takes everything posted so far in one go. Each step wakes each event loop
at most once, and only when a job got its first text or its outcome, or
``WAKE_INTERVAL`` has passed: in between, deltas coalesce (adapters edit at
most about once a second) and the event loop does not compete with the worker
thread for the GIL on every token.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from hermes_bot.backend import Constraint, GenerationParams, GenerationResult
from hermes_bot.inference.detokenize import IncrementalDetokenizer

Outcome = GenerationResult | BaseException

# Seconds between wake-ups of an event loop for text alone.
WAKE_INTERVAL = 0.1


@dataclass(eq=False)
class Job:
    """One request, from submission to its result or error."""

    prompt_ids: list[int]
    params: GenerationParams
    loop: asyncio.AbstractEventLoop
    deadline: float
    stream: bool = False
    constraint: Constraint | None = None
    submitted: float = field(default_factory=time.monotonic)
    generated: list[int] = field(default_factory=list)
    cancelled: bool = False
    done: bool = False
    matcher: Any = None
    detokenizer: IncrementalDetokenizer | None = None
    first_token_at: float | None = None
    oom_retries: int = 0
    texted: bool = False  # some text was posted already
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _text: list[str] = field(default_factory=list)
    _outcome: Outcome | None = None
    _signalled: bool = False

    def post(self, text: str = "", outcome: Outcome | None = None) -> bool:
        """Worker thread: add output; True when the event loop must be woken for it."""
        with self._lock:
            if text:
                self._text.append(text)
            if outcome is not None:
                self._outcome = outcome
            wake, self._signalled = not self._signalled, True
            return wake

    def take(self) -> tuple[str, Outcome | None]:
        """Event loop: the text posted since the last call, and the outcome once there is one."""
        with self._lock:
            text, self._text = "".join(self._text), []
            self._signalled = False
            return text, self._outcome


def _wake_all(jobs: list[Job]) -> None:
    for job in jobs:
        job.wake.set()


class Outbox:
    """Posts made during the steps, delivered with one wake-up per event loop."""

    def __init__(self) -> None:
        self._waiting: list[Job] = []  # posted to, not woken yet
        self._urgent = False
        self._last_wake = 0.0

    def post(self, job: Job, text: str = "", outcome: Outcome | None = None) -> None:
        """Give ``job`` more text and/or its outcome."""
        self._urgent |= outcome is not None or (bool(text) and not job.texted)
        job.texted |= bool(text)
        if job.post(text, outcome):
            self._waiting.append(job)

    def flush(self) -> None:
        """Wake the event loops that are due (safe from any thread)."""
        if not self._waiting:
            return
        now = time.monotonic()
        if not self._urgent and now - self._last_wake < WAKE_INTERVAL:
            return
        self._last_wake = now
        by_loop: dict[asyncio.AbstractEventLoop, list[Job]] = {}
        for job in self._waiting:
            by_loop.setdefault(job.loop, []).append(job)
        self._waiting, self._urgent = [], False
        for loop, jobs in by_loop.items():
            # A closed loop means nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake_all, jobs)
