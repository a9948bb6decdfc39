"""Conversations on disk: survive restarts and kill -9, retention, /reset, /forget-me, schema."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hermes_bot.conversation import ConversationStore
from hermes_bot.errors import StorageError
from hermes_bot.storage import MIGRATIONS, Exchange, SQLiteStore, migrate

ROOT = Path(__file__).resolve().parents[1]


def _store(
    path: Path, *, turns: int = 5, max_age: float = 0.0, **options: int
) -> ConversationStore:
    storage = SQLiteStore(path, max_exchanges=turns, max_age=max_age)
    return ConversationStore(turns, storage=storage, max_age=max_age, **options)


async def _contents(store: ConversationStore, key: str) -> list[str]:
    return [m.content for m in await store.history(key)]


async def test_history_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "conversations.db"
    store = _store(path)
    await store.open()
    await store.record("discord:channel:1", "discord:31", "alice: hi", "hello alice")
    await store.close()

    again = _store(path)
    await again.open()
    try:
        assert await _contents(again, "discord:channel:1") == ["alice: hi", "hello alice"]
    finally:
        await again.close()


async def test_conversations_evicted_from_memory_come_back_from_disk(tmp_path: Path) -> None:
    store = _store(tmp_path / "c.db", max_conversations=1)
    await store.open()
    try:
        for key in ("a", "b"):  # as a turn does: read the history, then record the exchange
            await store.history(key)
            await store.record(key, "u1", f"q{key}", f"a{key}")
        assert len(store) == 1
        assert await _contents(store, "a") == ["qa", "aa"]
    finally:
        await store.close()


async def test_disk_keeps_the_last_turns_of_each_conversation(tmp_path: Path) -> None:
    store = _store(tmp_path / "c.db", turns=3)
    await store.open()
    try:
        for i in range(10):
            await store.record("k", "u", f"q{i}", f"a{i}")
        await store.record("other", "u", "q", "a")
        assert store.storage is not None and await store.storage.count() == 4
        assert await store.storage.load("k") == [
            Exchange("u", f"q{i}", f"a{i}", pytest.approx(time.time(), abs=60)) for i in (7, 8, 9)
        ]
    finally:
        await store.close()


async def test_expired_exchanges_are_deleted_at_start(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    storage = SQLiteStore(path, max_exchanges=10, max_age=3600)
    await storage.open()
    await storage.append("k", Exchange("u", "old", "old", time.time() - 7200))
    await storage.append("k", Exchange("u", "new", "new", time.time()))
    await storage.close()

    store = _store(path, turns=10, max_age=3600)
    await store.open()
    try:
        assert store.storage is not None and await store.storage.count() == 1
        assert await _contents(store, "k") == ["new", "new"]
    finally:
        await store.close()


async def test_reset_and_forget_me_delete_rows_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = _store(path)
    await store.open()
    await store.record("chan", "discord:alice", "alice: q1", "a1")
    await store.record("chan", "discord:bob", "bob: q2", "a2")
    await store.record("dm-alice", "discord:alice", "q3", "a3")
    await store.record("gone", "discord:bob", "q4", "a4")
    await store.reset("gone")
    assert await store.forget_user("discord:alice") == 2
    await store.close()

    rows = sqlite3.connect(path).execute("SELECT user_id, question FROM exchanges").fetchall()
    assert rows == [("discord:bob", "bob: q2")]


async def test_a_failed_write_keeps_the_answer_and_is_counted(tmp_path: Path) -> None:
    store = _store(tmp_path / "c.db")
    await store.open()
    try:
        assert store.storage is not None
        await store.history("k")
        await store.storage._call(lambda db: db.execute("PRAGMA query_only = 1"))
        await store.record("k", "u", "q", "a")  # does not raise: the user still gets the answer
        assert store.storage_errors == 1
        assert await _contents(store, "k") == ["q", "a"]
        with pytest.raises(StorageError):  # but /reset must not pretend it deleted anything
            await store.reset("k")
    finally:
        await store.close()


async def test_a_slow_disk_does_not_block_the_event_loop(tmp_path: Path) -> None:
    store = _store(tmp_path / "c.db")
    await store.open()
    disk_free = threading.Event()
    try:
        assert store.storage is not None
        stall = asyncio.ensure_future(store.storage._call(lambda db: disk_free.wait(10)))
        write = asyncio.ensure_future(store.record("k", "u", "q", "a"))
        for _ in range(3):  # the loop keeps running other work while the disk is stuck
            await asyncio.sleep(0)
        assert not write.done()
        disk_free.set()
        await asyncio.gather(stall, write)
        assert await store.storage.count() == 1
    finally:
        disk_free.set()
        await store.close()


def test_a_database_from_a_newer_version_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StorageError) as error:
        asyncio.run(SQLiteStore(path, max_exchanges=5).open())
    assert "newer hermes-bot" in error.value.user_message


def test_an_older_schema_is_migrated_in_place(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    assert migrate(db) == len(MIGRATIONS)
    db.execute("INSERT INTO exchanges VALUES (1, 'k', 'u', 'q', 'a', 0)")
    newer = (*MIGRATIONS, "ALTER TABLE exchanges ADD COLUMN platform TEXT DEFAULT 'discord';")
    assert migrate(db, newer) == len(newer)
    assert db.execute("SELECT question, platform FROM exchanges").fetchall() == [("q", "discord")]
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(newer)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError) as error:
        asyncio.run(SQLiteStore(path, max_exchanges=5).open())
    assert "unreadable" in error.value.user_message and str(path) in error.value.user_message


def test_a_database_path_that_cannot_be_created_says_what_to_check(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "c.db"
    with pytest.raises(StorageError) as error:
        asyncio.run(SQLiteStore(path, max_exchanges=5).open())
    assert str(path) in error.value.user_message and "storage.path" in error.value.user_message


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from hermes_bot.conversation import ConversationStore
    from hermes_bot.storage import SQLiteStore

    async def main():
        store = ConversationStore(1000, storage=SQLiteStore(sys.argv[1], max_exchanges=1000))
        await store.open()
        i = 0
        while True:  # until killed
            await store.record(f"c{i % 7}", f"u{i % 3}", f"q{i}", "answer " * 50)
            print(i, flush=True)  # acknowledged: the answer would be sent now
            i += 1

    asyncio.run(main())
    """
)


def test_kill_9_during_a_burst_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    acknowledged = []
    try:
        assert writer.stdout is not None
        for line in writer.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) == 300:
                writer.send_signal(signal.SIGKILL)
                break
        acknowledged += [int(line) for line in writer.stdout]  # printed before the kill landed
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    stored = {int(q[1:]) for (q,) in db.execute("SELECT question FROM exchanges")}
    assert set(acknowledged) <= stored
