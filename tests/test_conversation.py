"""Conversation history: per key, bounded, resettable."""

from __future__ import annotations

from hermes_bot.conversation import ConversationStore
from hermes_bot.prompts import Message


def _exchange(i: int) -> list[Message]:
    return [Message("user", f"q{i}"), Message("assistant", f"a{i}")]


def test_history_per_key_and_reset() -> None:
    store = ConversationStore(max_turns=5)
    store.record("chan-1", _exchange(1))
    store.record("chan-2", _exchange(2))
    assert [m.content for m in store.history("chan-1")] == ["q1", "a1"]
    store.reset("chan-1")
    assert store.history("chan-1") == []
    assert len(store.history("chan-2")) == 2


def test_turns_are_bounded_keeping_whole_exchanges() -> None:
    store = ConversationStore(max_turns=3)
    for i in range(10):
        store.record("k", _exchange(i))
    assert [m.content for m in store.history("k")] == ["q7", "a7", "q8", "a8", "q9", "a9"]


def test_least_recently_used_conversations_are_forgotten() -> None:
    store = ConversationStore(max_turns=2, max_conversations=2)
    store.record("a", _exchange(1))
    store.record("b", _exchange(2))
    store.history("a")
    store.record("c", _exchange(3))
    assert len(store) == 2
    assert store.history("b") == [] and store.history("a")


def test_zero_turns_remembers_nothing() -> None:
    store = ConversationStore(max_turns=0)
    store.record("k", _exchange(1))
    assert store.history("k") == []
