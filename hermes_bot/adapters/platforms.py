"""Which chat platforms are configured, and serving them all from one process.

Every platform shares the one pipeline, so one backend and one model load,
and one stop signal: SIGTERM / SIGINT closes each cleanly (answers in flight
get a notice) and the process exits 0, promptly: the interpreter's last garbage
collection is skipped. A fatal error on one platform (a rejected token) stops
the others and is raised.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import logging
import signal
from collections.abc import Awaitable, Callable

from pydantic import SecretStr

from hermes_bot.config import Settings
from hermes_bot.pipeline import Pipeline

_log = logging.getLogger(__name__)

Runner = Callable[[Settings, Pipeline, asyncio.Event], Awaitable[int]]


def _set(token: SecretStr | None) -> bool:
    return token is not None and bool(token.get_secret_value().strip())


def configured_platforms(settings: Settings) -> list[str]:
    """The platforms with credentials: ``discord`` (its token), ``slack`` (either token)."""
    names = []
    if _set(settings.discord.token):
        names.append("discord")
    if _set(settings.slack.bot_token) or _set(settings.slack.app_token):
        names.append("slack")
    return names


async def _discord(settings: Settings, pipeline: Pipeline, stop: asyncio.Event) -> int:
    from hermes_bot.adapters.discord import run_discord

    return await run_discord(settings, pipeline, stop=stop)


async def _slack(settings: Settings, pipeline: Pipeline, stop: asyncio.Event) -> int:
    from hermes_bot.adapters.slack import run_slack

    return await run_slack(settings, pipeline, stop)


RUNNERS: dict[str, Runner] = {"discord": _discord, "slack": _slack}


async def serve(settings: Settings, pipeline: Pipeline, names: list[str]) -> int:
    """Load the model once, then serve ``names`` until SIGTERM / SIGINT; the exit code."""
    # At exit the interpreter would collect every object the model left behind, which took
    # seconds after SIGTERM with torch loaded; the process is ending, so skip that.
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        await pipeline.backend.start()
        if stop.is_set():  # asked to stop while the model was loading
            return 0
        _log.info("serving %s", " and ".join(names))
        tasks = [
            asyncio.create_task(RUNNERS[name](settings, pipeline, stop), name=name)
            for name in names
        ]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = [task for task in done if not task.cancelled() and task.exception()]
        if failed:
            stop.set()
            if pending:
                await asyncio.wait(pending, timeout=30)
            raise failed[0].exception()  # type: ignore[misc]
        return max(task.result() for task in tasks)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
