"""Persistence of conversation histories: SQLite in WAL mode, driven from one thread.

Each row is one answered exchange (the user's message and the bot's answer) of
one conversation. The event loop never touches the database: every call runs
on the store's own thread and is awaited. A write returns once its transaction
is committed, so an exchange that was acknowledged survives a crash or a
``kill -9`` (WAL with ``synchronous=NORMAL`` is durable against process
crashes; a power cut may lose the last transactions). The schema is versioned
with ``PRAGMA user_version``; :data:`MIGRATIONS` takes any older file forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from hermes_bot.errors import StorageError

_log = logging.getLogger(__name__)

T = TypeVar("T")

# MIGRATIONS[n] takes a database from version n to n + 1; never edit a released entry.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE exchanges (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation TEXT NOT NULL,
        user_id TEXT NOT NULL,
        question TEXT NOT NULL,
        answer TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX exchanges_by_conversation ON exchanges (conversation, id);
    CREATE INDEX exchanges_by_user ON exchanges (user_id);
    CREATE INDEX exchanges_by_age ON exchanges (created_at);
    """,
)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One answered turn: who asked (a platform-qualified id), the question, the answer."""

    user_id: str
    question: str
    answer: str
    created_at: float


_Pending = tuple[str, "Exchange", "asyncio.Future[None]"]


class SQLiteStore:
    """Exchanges on disk, the last ``max_exchanges`` per conversation, none older than
    ``max_age`` seconds (0: no age limit)."""

    def __init__(self, path: str | Path, *, max_exchanges: int, max_age: float = 0.0) -> None:
        self.path = Path(path)
        self.max_exchanges = max_exchanges
        self.max_age = max_age
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hermes-storage")
        self._connection: sqlite3.Connection | None = None
        self._pending: list[_Pending] = []
        self._committer: asyncio.Future[None] | None = None

    async def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._connection is None:
            raise StorageError("the conversation database is closed")

        def run() -> T:
            if self._connection is None:
                raise StorageError("the conversation database is closed")
            try:
                return work(self._connection)
            except sqlite3.Error as error:
                raise StorageError(f"conversation database {self.path}: {error}") from error

        return await asyncio.get_running_loop().run_in_executor(self._thread, run)

    async def open(self) -> None:
        """Open (creating or migrating) the database and prune what has expired."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._open)
        removed = await self.prune()
        _log.info(
            "conversation database %s opened (%d expired exchanges removed)", self.path, removed
        )

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as error:
            raise StorageError(
                f"cannot open conversation database {self.path}: {error}",
                user_message=(
                    f"Cannot open the conversation database {self.path} ({error}). "
                    "Check storage.path and that its directory is writable."
                ),
            ) from error
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=5000")
            migrate(connection)
        except (sqlite3.Error, StorageError) as error:
            connection.close()
            if isinstance(error, StorageError):
                raise
            raise StorageError(
                f"conversation database {self.path} is unreadable: {error}",
                user_message=(
                    f"The conversation database {self.path} is unreadable ({error}). "
                    "Move it away to start with empty histories."
                ),
            ) from error
        self._connection = connection

    async def close(self) -> None:
        """Close the database; pending calls finish first."""

        def close() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await asyncio.get_running_loop().run_in_executor(self._thread, close)
        self._thread.shutdown(wait=True)

    def _cutoff(self) -> float:
        return time.time() - self.max_age if self.max_age > 0 else float("-inf")

    async def load(self, conversation: str) -> list[Exchange]:
        """The conversation's kept exchanges, oldest first."""
        cutoff = self._cutoff()

        def load(db: sqlite3.Connection) -> list[Exchange]:
            rows = db.execute(
                "SELECT user_id, question, answer, created_at FROM exchanges"
                " WHERE conversation = ? AND created_at >= ? ORDER BY id DESC LIMIT ?",
                (conversation, cutoff, self.max_exchanges),
            ).fetchall()
            return [Exchange(*row) for row in reversed(rows)]

        return await self._call(load)

    async def append(self, conversation: str, exchange: Exchange) -> None:
        """Store one exchange, trim the conversation to ``max_exchanges``; committed on return.

        Appends that arrive while a commit is under way are committed together in the next
        transaction (group commit), so a burst costs a few transactions, not one each.
        """
        committed = asyncio.get_running_loop().create_future()
        self._pending.append((conversation, exchange, committed))
        if self._committer is None:
            self._committer = asyncio.ensure_future(self._commit_pending())
        await committed

    async def _commit_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._call(lambda db, rows=batch: self._write(db, rows))
                except Exception as error:  # every waiter learns why its write failed
                    for *_, committed in batch:
                        if not committed.done():
                            committed.set_exception(error)
                else:
                    for *_, committed in batch:
                        if not committed.done():
                            committed.set_result(None)
        finally:
            self._committer = None

    def _write(self, db: sqlite3.Connection, batch: list[_Pending]) -> None:
        with _transaction(db):
            db.executemany(
                "INSERT INTO exchanges (conversation, user_id, question, answer, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(key, e.user_id, e.question, e.answer, e.created_at) for key, e, _ in batch],
            )
            db.executemany(
                "DELETE FROM exchanges WHERE conversation = ? AND id <= ("
                " SELECT id FROM exchanges WHERE conversation = ?"
                " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                [(key, key, self.max_exchanges) for key in {key for key, _, _ in batch}],
            )

    async def delete_conversation(self, conversation: str) -> int:
        """Delete the conversation; returns the number of exchanges removed."""
        return await self._call(
            lambda db: (
                db.execute("DELETE FROM exchanges WHERE conversation = ?", (conversation,)).rowcount
            )
        )

    async def delete_user(self, user_id: str) -> int:
        """Delete every exchange ``user_id`` started; returns how many."""
        return await self._call(
            lambda db: db.execute("DELETE FROM exchanges WHERE user_id = ?", (user_id,)).rowcount
        )

    async def prune(self) -> int:
        """Delete exchanges older than ``max_age``; returns how many."""
        if self.max_age <= 0:
            return 0
        cutoff = self._cutoff()
        return await self._call(
            lambda db: db.execute("DELETE FROM exchanges WHERE created_at < ?", (cutoff,)).rowcount
        )

    async def count(self) -> int:
        """Exchanges stored, all conversations together."""
        return await self._call(
            lambda db: db.execute("SELECT COUNT(*) FROM exchanges").fetchone()[0]
        )


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error (the connection is in autocommit mode)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def migrate(db: sqlite3.Connection, migrations: tuple[str, ...] = MIGRATIONS) -> int:
    """Bring the schema to ``len(migrations)``, one transaction per step; returns the version."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise StorageError(
            f"conversation database schema version {version} is newer than this hermes-bot "
            f"({len(migrations)})",
            user_message=(
                "The conversation database was written by a newer hermes-bot. "
                "Upgrade hermes-bot, or point storage.path at another file."
            ),
        )
    for step in range(version, len(migrations)):
        _log.info("migrating the conversation database to schema version %d", step + 1)
        try:
            db.executescript(
                f"BEGIN IMMEDIATE;\n{migrations[step]}\nPRAGMA user_version = {step + 1};\nCOMMIT;"
            )
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return len(migrations)
