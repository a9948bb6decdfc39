"""Runs turns: pipeline → SlackReplyWriter, and tracks the turns in flight.

Shutdown cancels in-flight turns; each leaves a short notice behind. A user who
deletes their message withdraws the answer: generation stops and what was
shown is deleted.
"""

from __future__ import annotations

import asyncio
import logging

from hermes_bot.adapters.slack.streaming import DELIVERY_ERRORS, SlackReplyWriter
from hermes_bot.conversation import Context
from hermes_bot.pipeline import ErrorReply, Pipeline, Reply

_log = logging.getLogger(__name__)

SHUTDOWN_NOTICE = "(stopped: the bot is restarting; please ask again in a minute)"
POST_FAILED = "I wrote an answer but Slack would not take it. Please try again."

Source = tuple[str, str]
"""A user's message: (channel, ts)."""


class Responder:
    """Answers turns; knows which are in flight and which message each one answers."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._inflight: set[asyncio.Task[object]] = set()
        self._by_source: dict[Source, asyncio.Task[object]] = {}
        self._withdrawn: set[asyncio.Task[object]] = set()

    @property
    def inflight(self) -> int:
        """Turns being answered right now."""
        return len(self._inflight)

    async def answer(
        self,
        key: str,
        text: str,
        writer: SlackReplyWriter,
        *,
        context: Context | None = None,
        forced_tool: str | None = None,
        source: Source | None = None,
    ) -> Reply | None:
        """One turn in conversation ``key`` shown through ``writer``; None if nothing showed."""
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
            if source is not None:
                self._by_source[source] = task
        try:
            await writer.start()
            reply = await self.pipeline.respond(
                key, text, context=context, forced_tool=forced_tool, on_text=writer.on_text
            )
            try:
                await writer.finish(reply)
            except DELIVERY_ERRORS:
                _log.exception("posting a reply in %s failed", key)
                reply = ErrorReply(POST_FAILED)
                await writer.finish(reply)
            return reply
        except DELIVERY_ERRORS as error:
            _log.error("could not answer in %s: %r", key, error)
            return None
        except asyncio.CancelledError:
            try:
                async with asyncio.timeout(5):
                    if task in self._withdrawn:
                        await writer.withdraw()
                    else:
                        await writer.abort(SHUTDOWN_NOTICE)
            except (TimeoutError, *DELIVERY_ERRORS) as error:
                _log.warning("could not clean up a cancelled answer in %s: %r", key, error)
            raise
        finally:
            if task is not None:
                self._inflight.discard(task)
                self._withdrawn.discard(task)
            if source is not None and self._by_source.get(source) is task:
                del self._by_source[source]

    def withdraw(self, source: Source) -> bool:
        """The user deleted ``source``: stop answering it; True if it was in flight."""
        task = self._by_source.get(source)
        if task is None or task.done():
            return False
        self._withdrawn.add(task)
        task.cancel()
        return True

    async def cancel_all(self, timeout: float = 10.0) -> None:
        """Cancel every in-flight turn and wait (bounded) for their notices."""
        tasks = list(self._inflight)
        if not tasks:
            return
        _log.info("cancelling %d in-flight answers", len(tasks))
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=timeout)
