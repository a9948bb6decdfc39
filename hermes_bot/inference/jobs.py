"""A request inside the executor, and the outbox that hands its events to the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from hermes_bot.backend import Constraint, GenerationParams
from hermes_bot.inference.detokenize import TextDecoder

Event = tuple[str, Any]


@dataclass(eq=False)
class Job:
    """One request. The worker puts ``(kind, payload)`` events on ``events`` (in ``loop``):
    "delta" (text), "done" (GenerationResult) or "error" (an exception)."""

    prompt_ids: list[int]
    params: GenerationParams
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[Event]
    deadline: float
    stream: bool = False
    constraint: Constraint | None = None
    submitted: float = field(default_factory=time.monotonic)
    generated: list[int] = field(default_factory=list)
    cancelled: bool = False
    done: bool = False
    matcher: Any = None
    decoder: TextDecoder | None = None
    first_token_at: float | None = None
    oom_retries: int = 0


def _put_all(items: list[tuple[asyncio.Queue[Event], Event]]) -> None:
    for events, event in items:
        events.put_nowait(event)


class Outbox:
    """Events collected during one step, delivered with one wake-up per event loop."""

    def __init__(self) -> None:
        self._items: list[tuple[Job, Event]] = []

    def emit(self, job: Job, kind: str, payload: Any) -> None:
        """Queue an event for ``job``."""
        self._items.append((job, (kind, payload)))

    def flush(self) -> None:
        """Hand the collected events to their loops (safe from any thread)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue[Event], Event]]] = {}
        for job, event in self._items:
            by_loop.setdefault(job.loop, []).append((job.events, event))
        self._items = []
        for loop, items in by_loop.items():
            # A closed loop means nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_put_all, items)
