"""Runs turns: pipeline → ReplyWriter, tracks in-flight turns, remembers which message is whose.

Shutdown cancels in-flight turns; each one leaves a short notice behind.
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
        self, key: str, text: str, writer: ReplyWriter, *, forced_tool: str | None = None
    ) -> Reply:
        """One turn in conversation ``key``, shown through ``writer``."""
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
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
                    await writer.abort(SHUTDOWN_NOTICE)
            except (TimeoutError, discord.HTTPException) as error:
                _log.warning("could not leave the shutdown notice in %s: %s", key, error)
            raise
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def cancel_all(self, timeout: float = 10.0) -> None:
        """Cancel every in-flight turn and wait (bounded) for their notices."""
        tasks = list(self._inflight)
        if not tasks:
            return
        _log.info("cancelling %d in-flight answers", len(tasks))
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=timeout)
