"""Runs turns: pipeline → ReplyWriter, tracks in-flight turns, remembers which message is whose.

Shutdown cancels in-flight turns; each one leaves a short notice behind. A user
who deletes their message withdraws the answer: generation stops and what was
shown is deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

import discord

from hermes_bot.adapters.discord.streaming import ReplyWriter
from hermes_bot.pipeline import ErrorReply, Pipeline, Reply

_log = logging.getLogger(__name__)

SHUTDOWN_NOTICE = "(stopped: the bot is restarting; please ask again in a minute)"
POST_FAILED = "I wrote an answer but Discord would not take it. Please try again."
_REMEMBERED_MESSAGES = 10_000


class Responder:
    """Answers turns and keeps a bounded map from the bot's message ids to conversation keys."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._keys: OrderedDict[int, str] = OrderedDict()
        self._inflight: set[asyncio.Task[object]] = set()
        self._by_source: dict[int, asyncio.Task[object]] = {}
        self._withdrawn: set[asyncio.Task[object]] = set()

    def key_of(self, message_id: int) -> str | None:
        """The conversation the bot's message ``message_id`` belongs to, if known."""
        return self._keys.get(message_id)

    def remember(self, messages: list[discord.Message], key: str) -> None:
        for message in messages:
            self._keys[message.id] = key
            self._keys.move_to_end(message.id)
        while len(self._keys) > _REMEMBERED_MESSAGES:
            self._keys.popitem(last=False)

    @property
    def inflight(self) -> int:
        """Turns being answered right now."""
        return len(self._inflight)

    async def answer(
        self,
        key: str,
        text: str,
        writer: ReplyWriter,
        *,
        forced_tool: str | None = None,
        source_id: int | None = None,
    ) -> Reply:
        """One turn in conversation ``key``, shown through ``writer``.

        ``source_id`` is the user's message being answered (see :meth:`withdraw`).
        """
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
            if source_id is not None:
                self._by_source[source_id] = task
        try:
            reply = await self.pipeline.respond(
                key, text, forced_tool=forced_tool, on_text=writer.on_text
            )
            try:
                self.remember(await writer.finish(reply), key)
            except discord.HTTPException:
                _log.exception("posting a reply in %s failed", key)
                reply = ErrorReply(POST_FAILED)
                await writer.finish(reply)
            return reply
        except asyncio.CancelledError:
            try:
                async with asyncio.timeout(5):
                    if task in self._withdrawn:
                        await writer.withdraw()
                    else:
                        await writer.abort(SHUTDOWN_NOTICE)
            except (TimeoutError, discord.HTTPException) as error:
                _log.warning("could not clean up a cancelled answer in %s: %s", key, error)
            raise
        finally:
            if task is not None:
                self._inflight.discard(task)
                self._withdrawn.discard(task)
            if source_id is not None and self._by_source.get(source_id) is task:
                del self._by_source[source_id]

    def withdraw(self, source_id: int) -> bool:
        """The user deleted message ``source_id``: stop answering it; True if it was in flight."""
        task = self._by_source.get(source_id)
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
