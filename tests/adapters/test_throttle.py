"""The streaming throttle: newest text only, skipped blanks, stopping at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hermes_bot.adapters.throttle import StreamThrottle

HOUR = 3600.0  # an interval no test run reaches: only stop() may end the wait
BOUND = 30.0  # a hang guard, far above any run; the assertions never depend on it


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition`` holds (a hang fails after BOUND seconds)."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), BOUND)


class Screen:
    """Records what was shown; the first show blocks until released."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def show(self, text: str) -> None:
        self.entered.set()
        await self.release.wait()
        self.shown.append(text)


async def test_text_written_during_an_update_is_shown_as_its_newest_state() -> None:
    screen = Screen()
    throttle = StreamThrottle(screen.show, interval=0.0, name="test-stream")
    await throttle.on_text("a")
    await asyncio.wait_for(screen.entered.wait(), BOUND)
    await throttle.on_text("a b")
    await throttle.on_text("a b c")
    screen.release.set()
    await until(lambda: len(screen.shown) == 2)
    await throttle.stop()
    assert screen.shown == ["a", "a b c"]
    assert throttle.latest == "a b c"


async def test_blank_text_is_not_shown() -> None:
    screen = Screen()
    screen.release.set()
    throttle = StreamThrottle(screen.show, interval=0.0, name="test-stream")
    await throttle.on_text("  \n")
    for _ in range(3):  # the flusher takes the blank text (asyncio runs tasks in order)
        await asyncio.sleep(0)
    await throttle.on_text("x")
    await until(lambda: bool(screen.shown))
    await throttle.stop()
    assert screen.shown == ["x"]


async def test_stopping_wakes_the_throttle_at_once_and_shows_nothing_more() -> None:
    screen = Screen()
    screen.release.set()
    throttle = StreamThrottle(screen.show, interval=HOUR, name="test-stream")
    await throttle.on_text("first")
    await asyncio.wait_for(screen.entered.wait(), BOUND)
    await throttle.on_text("second")  # due only after an hour
    await asyncio.wait_for(throttle.stop(), BOUND)
    await throttle.on_text("third")
    assert screen.shown == ["first"]
    assert throttle.latest == "third"


async def test_a_detached_stop_lets_the_update_in_flight_finish_when_cancelled() -> None:
    screen = Screen()
    throttle = StreamThrottle(screen.show, interval=HOUR, name="test-stream")
    await throttle.on_text("partial")
    await asyncio.wait_for(screen.entered.wait(), BOUND)
    stopping = asyncio.create_task(throttle.stop(detached=True))
    await asyncio.sleep(0)
    stopping.cancel()
    await asyncio.gather(stopping, return_exceptions=True)
    screen.release.set()
    await until(lambda: bool(screen.shown))
    assert screen.shown == ["partial"]
