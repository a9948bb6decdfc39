"""Runs turns: pipeline → ReplyWriter, tracks accepted turns, remembers which message is whose.

A turn is registered the moment it is accepted. Only its generation can be
cancelled; a reply being written is always finished. Shutdown stops accepting
(later messages get a short notice), stops every generation (each answer
keeps what was written plus the notice), and waits, bounded, until every
accepted turn has shown its answer or notice. A user who deletes their
message withdraws the answer: generation stops and what was shown is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import discord

from hermes_bot.adapters.discord.streaming import DELIVERY_ERRORS, ReplyWriter
from hermes_bot.conversation import Context
from hermes_bot.pipeline import ErrorReply, Pipeline, Reply

_log = logging.getLogger(__name__)

SHUTDOWN_NOTICE = "(stopped: the bot is restarting; please ask again in a minute)"
POST_FAILED = "I wrote an answer but Discord would not take it. Please try again."
_REMEMBERED_MESSAGES = 10_000
CLEANUP_TIMEOUT = 5.0


@dataclass(eq=False)
class Turn:
    """One accepted message or command, from acceptance until its reply is shown."""

    key: str
    writer: ReplyWriter
    source_id: int | None
    generation: asyncio.Task[Reply] | None = None
    withdrawn: bool = False


class Responder:
    """Answers turns and keeps a bounded map from the bot's message ids to conversation keys."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.closing = False
        self._keys: OrderedDict[int, str] = OrderedDict()
        self._turns: set[Turn] = set()
        self._by_source: dict[int, Turn] = {}
        self._preparing = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def key_of(self, message_id: int) -> str | None:
        """The conversation the bot's message ``message_id`` belongs to, if known."""
        return self._keys.get(message_id)

    def remember(self, messages: list[discord.Message], key: str) -> None:
        for message in messages:
            self._keys[message.id] = key
            self._keys.move_to_end(message.id)
        while len(self._keys) > _REMEMBERED_MESSAGES:
            self._keys.popitem(last=False)

    async def answer(
        self,
        key: str,
        text: str,
        writer: ReplyWriter,
        *,
        context: Context | None = None,
        forced_tool: str | None = None,
        source_id: int | None = None,
    ) -> Reply | None:
        """One turn in conversation ``key``, shown through ``writer``; None if it was stopped.

        ``source_id`` is the user's message being answered (see :meth:`withdraw`).
        """
        turn = Turn(key, writer, source_id)
        self._track(turn)
        try:
            if self.closing:
                await self._stopped(turn)
                return None
            turn.generation = asyncio.create_task(
                self.pipeline.respond(
                    key, text, context=context, forced_tool=forced_tool, on_text=writer.on_text
                )
            )
            try:
                await asyncio.wait({turn.generation})
            except asyncio.CancelledError:  # our own task: the event loop is going away
                turn.generation.cancel()
                await self._stopped(turn)
                raise
            if turn.generation.cancelled():
                await self._stopped(turn)
                return None
            reply = turn.generation.result()
            await self._deliver(turn, reply)
            return reply
        finally:
            self._untrack(turn)

    async def _deliver(self, turn: Turn, reply: Reply) -> None:
        try:
            self.remember(await turn.writer.finish(reply), turn.key)
        except DELIVERY_ERRORS:
            _log.exception("posting a reply in %s failed", turn.key)
            try:
                await turn.writer.finish(ErrorReply(POST_FAILED))
            except DELIVERY_ERRORS as error:
                _log.error("could not tell the user in %s either: %r", turn.key, error)
        if turn.withdrawn:  # the question was deleted while its answer was being written
            await self._stopped(turn)

    async def _stopped(self, turn: Turn) -> None:
        """A stopped turn: delete a withdrawn answer, else leave the shutdown notice."""
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT):
                if turn.withdrawn:
                    await turn.writer.withdraw()
                else:
                    await turn.writer.abort(SHUTDOWN_NOTICE)
        except (*DELIVERY_ERRORS, TimeoutError) as error:
            _log.warning("could not clean up a stopped answer in %s: %r", turn.key, error)

    @contextlib.contextmanager
    def preparing(self) -> Iterator[None]:
        """Hold shutdown while an accepted message's turn is being set up (a thread opened)."""
        self._preparing += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._preparing -= 1
            self._check_idle()

    def _check_idle(self) -> None:
        if not self._turns and not self._preparing:
            self._idle.set()

    def _track(self, turn: Turn) -> None:
        self._turns.add(turn)
        self._idle.clear()
        if turn.source_id is not None:
            self._by_source[turn.source_id] = turn

    def _untrack(self, turn: Turn) -> None:
        self._turns.discard(turn)
        if turn.source_id is not None and self._by_source.get(turn.source_id) is turn:
            del self._by_source[turn.source_id]
        self._check_idle()

    def withdraw(self, source_id: int) -> bool:
        """The user deleted message ``source_id``: stop answering it; True if it was in flight."""
        turn = self._by_source.get(source_id)
        if turn is None:
            return False
        turn.withdrawn = True
        if turn.generation is not None:
            turn.generation.cancel()
        return True

    async def shut_down(self, timeout: float) -> None:
        """Stop accepting, stop every generation, and wait (bounded) until each turn is shown."""
        self.closing = True
        if self._turns:
            _log.info("stopping %d accepted answers", len(self._turns))
        for turn in self._turns:
            if turn.generation is not None:
                turn.generation.cancel()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            _log.warning("%d answers were still being written at shutdown", len(self._turns))
