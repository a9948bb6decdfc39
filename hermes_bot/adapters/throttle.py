"""Throttled streaming shared by the chat platforms: show the latest text at most once per interval.

The pipeline calls :meth:`StreamThrottle.on_text` with the whole visible text so
far; a background task shows the newest text, then waits one interval (or less:
stopping wakes it at once) before showing what came meanwhile. Only the newest
text is shown, so a slow platform skips intermediate states instead of queueing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

Show = Callable[[str], Awaitable[None]]


class StreamThrottle:
    """Calls ``show`` with the latest non-blank text, at most once per ``interval`` seconds.

    ``show`` handles (and logs) its own delivery failures; streaming goes on after one.
    """

    def __init__(self, show: Show, *, interval: float, name: str) -> None:
        self._show = show
        self._interval = interval
        self._name = name
        self.latest = ""
        self._dirty = asyncio.Event()
        self._stop = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    async def on_text(self, visible: str) -> None:
        """The pipeline's streaming callback: remember the text; the flusher shows it."""
        self.latest = visible
        if self._stop.is_set():
            return
        self._dirty.set()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name=self._name)

    async def _flush_loop(self) -> None:
        while not self._stop.is_set():
            await self._dirty.wait()
            if self._stop.is_set():
                return
            self._dirty.clear()
            if self.latest.strip():
                await self._show(self.latest)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval)

    async def stop(self, *, detached: bool = False) -> None:
        """Stop streaming and wait until an update in flight is done.

        With ``detached``, cancelling the caller leaves that update running to its
        end; otherwise the cancellation reaches the update too.
        """
        self._stop.set()
        self._dirty.set()
        if self._flusher is None:
            return
        if detached:
            await asyncio.wait({self._flusher})
        else:
            await self._flusher
