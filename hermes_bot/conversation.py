"""Conversations: who is speaking where, and each conversation's history, bounded.

A conversation is a channel, a thread or a DM, named by a key such as
``discord:channel:42``. Its history is kept in memory (a working set bounded by
conversations and by bytes) and, unless memory-only, in a :class:`SQLiteStore`
that survives restarts. The token budget is applied later, when a prompt is
built (``prompts.build_prompt``).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Literal

from hermes_bot.config import ChatSettings, StorageSettings
from hermes_bot.errors import StorageError
from hermes_bot.prompts import Message
from hermes_bot.storage import Exchange, SQLiteStore

_log = logging.getLogger(__name__)

ConversationKind = Literal["dm", "channel", "thread"]

# What Python spends on a conversation and an exchange besides the text (measured, rounded up).
_CONVERSATION_OVERHEAD = sys.getsizeof(deque()) + 200
_EXCHANGE_OVERHEAD = 200
_LOAD_ATTEMPTS = 3


@dataclass(frozen=True)
class Speaker:
    """Who wrote a message: a platform-qualified id (``discord:31``) and a display name."""

    user_id: str
    name: str = ""


@dataclass(frozen=True)
class Context:
    """Where a turn happens: platform, kind of conversation, speaker, and the channel ids
    (the channel first, then its parent for a thread) that per-channel prompts match."""

    platform: str = "console"
    kind: ConversationKind = "dm"
    speaker: Speaker = Speaker("console:operator")
    channel_ids: tuple[str, ...] = ()

    @property
    def shared(self) -> bool:
        """Several people may speak here, so each message carries its author's name."""
        return self.kind != "dm"


def _cost(exchange: Exchange) -> int:
    return sys.getsizeof(exchange.question) + sys.getsizeof(exchange.answer) + _EXCHANGE_OVERHEAD


class ConversationStore:
    """History per conversation key.

    In memory: at most ``max_conversations`` conversations and about ``max_bytes``
    bytes, least recently used forgotten first (they are loaded again from
    ``storage`` when it is set). Each conversation keeps its last ``max_turns``
    exchanges, none older than ``max_age`` seconds (0: no age limit).
    """

    def __init__(
        self,
        max_turns: int = 20,
        max_conversations: int = 10_000,
        max_bytes: int = 64 * 2**20,
        *,
        storage: SQLiteStore | None = None,
        max_age: float = 0.0,
    ) -> None:
        self._max_turns = max_turns
        self._max_conversations = max_conversations
        self._max_bytes = max_bytes
        self._max_age = max_age
        self.storage = storage
        self._cache: OrderedDict[str, deque[Exchange]] = OrderedDict()
        self._costs: dict[str, int] = {}
        self._writes = 0
        self.bytes = 0
        self.storage_errors = 0

    async def open(self) -> None:
        """Open the database (when persistent)."""
        if self.storage is not None:
            await self.storage.open()

    async def close(self) -> None:
        """Close the database (when persistent)."""
        if self.storage is not None:
            await self.storage.close()

    def _expire(self, key: str, exchanges: deque[Exchange]) -> None:
        if self._max_age <= 0:
            return
        cutoff = time.time() - self._max_age
        while exchanges and exchanges[0].created_at < cutoff:
            self._pop_oldest(key, exchanges)

    def _pop_oldest(self, key: str, exchanges: deque[Exchange]) -> None:
        cost = _cost(exchanges.popleft())
        self._costs[key] -= cost
        self.bytes -= cost

    def _cached(self, key: str) -> deque[Exchange] | None:
        exchanges = self._cache.get(key)
        if exchanges is not None:
            self._cache.move_to_end(key)
            self._expire(key, exchanges)
        return exchanges

    def _insert(self, key: str, exchanges: list[Exchange]) -> deque[Exchange]:
        cached = self._cache[key] = deque(exchanges, maxlen=self._max_turns)
        self._costs[key] = _CONVERSATION_OVERHEAD + sum(map(_cost, cached))
        self.bytes += self._costs[key]
        return cached

    def _drop(self, key: str) -> None:
        if self._cache.pop(key, None) is not None:
            self.bytes -= self._costs.pop(key)

    def _bound(self) -> None:
        while self._cache and (
            len(self._cache) > self._max_conversations or self.bytes > self._max_bytes
        ):
            self._drop(next(iter(self._cache)))

    async def _load(self, key: str) -> list[Exchange]:
        assert self.storage is not None
        for _ in range(_LOAD_ATTEMPTS):
            writes = self._writes
            try:
                exchanges = await self.storage.load(key)
            except StorageError as error:
                self.storage_errors += 1
                _log.error("reading the history of %s failed: %s", key, error)
                return []
            if key in self._cache:  # loaded meanwhile by another turn
                return list(self._cache[key])
            if writes == self._writes:
                self._insert(key, exchanges)
                self._bound()
                return exchanges
        return exchanges

    async def history(self, key: str) -> list[Message]:
        """The conversation's messages, oldest first."""
        if self._max_turns == 0:
            return []
        cached = self._cached(key)
        if cached is not None:
            exchanges = list(cached)
        elif self.storage is not None:
            exchanges = await self._load(key)
        else:
            return []
        return [
            message
            for exchange in exchanges
            for message in (
                Message("user", exchange.question),
                Message("assistant", exchange.answer),
            )
        ]

    async def record(self, key: str, user_id: str, question: str, answer: str) -> None:
        """Remember one answered exchange; with storage, it is on disk when this returns.

        A failed write is logged and counted; the exchange stays in memory.
        """
        if self._max_turns == 0:
            return
        exchange = Exchange(user_id, question, answer, time.time())
        self._writes += 1
        cached = self._cached(key)
        if cached is None and self.storage is None:
            cached = self._insert(key, [])
        if cached is not None:
            if len(cached) == cached.maxlen:
                self._pop_oldest(key, cached)
            cached.append(exchange)
            self._costs[key] += _cost(exchange)
            self.bytes += _cost(exchange)
            self._bound()
        if self.storage is not None:
            try:
                await self.storage.append(key, exchange)
            except StorageError as error:
                self.storage_errors += 1
                _log.error("storing an exchange of %s failed: %s", key, error)

    async def reset(self, key: str) -> None:
        """Forget the conversation, on disk too; raises StorageError if the disk refused."""
        self._writes += 1
        self._drop(key)
        if self.storage is not None:
            removed = await self.storage.delete_conversation(key)
            _log.info("conversation %s reset (%d exchanges deleted)", key, removed)

    async def forget_user(self, user_id: str) -> int:
        """Delete every exchange ``user_id`` started, everywhere; returns how many.

        Raises StorageError if the disk refused.
        """
        self._writes += 1
        removed = 0
        for key, cached in list(self._cache.items()):
            kept = [exchange for exchange in cached if exchange.user_id != user_id]
            if len(kept) != len(cached):
                removed += len(cached) - len(kept)
                self._drop(key)
                self._insert(key, kept)
        if self.storage is not None:
            removed = await self.storage.delete_user(user_id)
        _log.info("forgot user %s (%d exchanges deleted)", user_id, removed)
        return removed

    def __len__(self) -> int:
        return len(self._cache)


def open_conversations(chat: ChatSettings, storage: StorageSettings) -> ConversationStore:
    """The conversation store the settings describe (not yet opened)."""
    max_age = storage.max_age_days * 86_400
    database = None
    if storage.backend == "sqlite":
        database = SQLiteStore(storage.path, max_exchanges=chat.history_turns, max_age=max_age)
    return ConversationStore(
        chat.history_turns,
        storage.memory_conversations,
        int(storage.memory_megabytes * 2**20),
        storage=database,
        max_age=max_age,
    )
