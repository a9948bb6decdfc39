"""Conversation history in memory: per key, bounded by turns, conversations, bytes and age."""

from __future__ import annotations

import gc
import time
import tracemalloc

import pytest

from hermes_bot.conversation import ConversationStore


async def _record(store: ConversationStore, key: str, i: int, user: str = "discord:1") -> None:
    await store.record(key, user, f"q{i}", f"a{i}")


async def _contents(store: ConversationStore, key: str) -> list[str]:
    return [m.content for m in await store.history(key)]


async def test_history_per_key_and_reset() -> None:
    store = ConversationStore(max_turns=5)
    await _record(store, "chan-1", 1)
    await _record(store, "chan-2", 2)
    assert await _contents(store, "chan-1") == ["q1", "a1"]
    assert [m.role for m in await store.history("chan-1")] == ["user", "assistant"]
    await store.reset("chan-1")
    assert await store.history("chan-1") == []
    assert len(await store.history("chan-2")) == 2


async def test_turns_are_bounded_keeping_whole_exchanges() -> None:
    store = ConversationStore(max_turns=3)
    for i in range(10):
        await _record(store, "k", i)
    assert await _contents(store, "k") == ["q7", "a7", "q8", "a8", "q9", "a9"]


async def test_least_recently_used_conversations_are_forgotten() -> None:
    store = ConversationStore(max_turns=2, max_conversations=2)
    await _record(store, "a", 1)
    await _record(store, "b", 2)
    await store.history("a")
    await _record(store, "c", 3)
    assert len(store) == 2
    assert await store.history("b") == [] and await store.history("a")


async def test_zero_turns_remembers_nothing() -> None:
    store = ConversationStore(max_turns=0)
    await _record(store, "k", 1)
    assert await store.history("k") == []


async def test_forget_user_removes_only_their_exchanges_everywhere() -> None:
    store = ConversationStore(max_turns=10)
    await _record(store, "chan", 1, user="discord:alice")
    await _record(store, "chan", 2, user="discord:bob")
    await _record(store, "dm", 3, user="discord:alice")
    assert await store.forget_user("discord:alice") == 2
    assert await _contents(store, "chan") == ["q2", "a2"]
    assert await store.history("dm") == []


async def test_old_exchanges_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    store = ConversationStore(max_turns=10, max_age=3600)
    await _record(store, "k", 1)
    now = time.time()
    monkeypatch.setattr("hermes_bot.conversation.time.time", lambda: now + 1800)
    await _record(store, "k", 2)
    monkeypatch.setattr("hermes_bot.conversation.time.time", lambda: now + 3601)
    assert await _contents(store, "k") == ["q2", "a2"]


async def test_memory_is_bounded_by_bytes_whatever_the_counts() -> None:
    """Counts alone allow 10,000 x 40 messages (about 1 GB); the byte bound holds the real size."""
    limit = 2**20
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        store = ConversationStore(max_turns=20, max_conversations=10_000, max_bytes=limit)
        for i in range(1_500):
            # Fresh strings, held by the store alone; mostly short, some long, some non-ASCII.
            long = (i % 7 == 0) * 3000
            await store.record(f"c{i % 200}", f"discord:{i}", "é" * (50 + long), "x" * (200 + i))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert store.bytes <= limit
    assert held <= limit * 1.1, f"{held:,} bytes held for a bound of {limit:,}"
    assert held > limit * 0.9  # the store was full: without the bound it would hold ~2.5 MB
    assert (await store.history("c99"))[-1].content == "x" * 1699  # the latest is kept
