"""The node's storage: one SQLite database in WAL mode, through aiosqlite.

Signed documents are kept as the exact bytes that were signed, beside indexed columns for queries;
triggers make those bytes immutable. Every change happens inside :meth:`Store.transaction`, which
serialises writers on the one connection and commits or rolls back as a whole, so a document, its
event, its audit row and its outbox row are stored together or not at all.

The parts live beside it: the transaction's methods in :mod:`permitnet.node.store_tx` (its
exchange tables: outbox, pending, quarantine, nonces, in :mod:`permitnet.node.store_exchange`'s
mixin), a document's rows and the records read back in :mod:`permitnet.node.store_rows`, and
the write transactions on the plain connection in :mod:`permitnet.node.store_sync`. Import the
names from here.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Concatenate

import aiosqlite

from permitnet.node.errors import StoreError
from permitnet.node.migrations import MIGRATIONS
from permitnet.node.store_exchange import P, T, submit
from permitnet.node.store_rows import (
    Direction,
    DocumentItem,
    DocumentRecord,
    Event,
    insert_new_documents_on,
)
from permitnet.node.store_sync import BUSY_TIMEOUT_MS, SyncTx, commit_on, write_here, write_on
from permitnet.node.store_tx import Tx

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "Direction",
    "DocumentItem",
    "DocumentRecord",
    "Event",
    "Store",
    "SyncTx",
    "Tx",
    "insert_new_documents_on",
]

Clock = Callable[[], int]


def _system_clock() -> int:
    return int(time.time())


class Store:
    """The node's database. Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, conn: aiosqlite.Connection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[list[int]], None]] = []
        #: Transactions handed to the database thread by transact() and not yet answered.
        self._writes_queued = 0
        self._outbox_listeners: list[Callable[[], None]] = []

    @classmethod
    async def open(
        cls, path: Path, *, clock: Clock | None = None, synchronous: str = "FULL"
    ) -> Store:
        """Open (creating if needed) and migrate the database at ``path``.

        ``synchronous=FULL`` is the default because a committed document must survive power
        loss, not only a crash; benchmarks may pass ``NORMAL`` and say so.

        Raises:
            StoreError: the file cannot be opened or migrated.
        """
        if synchronous not in {"FULL", "NORMAL", "EXTRA"}:
            raise StoreError(f"synchronous must be FULL, NORMAL or EXTRA, got {synchronous!r}")
        try:
            # Used from the event loop's thread too, never at the same time (transact_here).
            conn = await aiosqlite.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open database {path}: {e}") from e
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute(f"PRAGMA synchronous={synchronous}")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            # Statement journals (SQLite's undo for one statement inside a transaction) in
            # memory: on disk each was a new file in /var/tmp, created and unlinked per
            # transaction. They are never needed after a crash (the WAL is), so nothing is lost.
            await conn.execute("PRAGMA temp_store=MEMORY")
            store = cls(conn, clock or _system_clock)
            await store._migrate()
        except sqlite3.Error as e:
            await conn.close()
            raise StoreError(f"cannot prepare database {path}: {e}") from e
        except BaseException:
            await conn.close()
            raise
        return store

    @classmethod
    @asynccontextmanager
    async def opened(
        cls, path: Path, *, clock: Clock | None = None, synchronous: str = "FULL"
    ) -> AsyncIterator[Store]:
        """:meth:`open` the database for the block and close it after, whatever happens.

        Raises:
            StoreError: the file cannot be opened or migrated.
        """
        store = await cls.open(path, clock=clock, synchronous=synchronous)
        try:
            yield store
        finally:
            await store.close()

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

    def now(self) -> int:
        """Return the store's clock reading (Unix seconds)."""
        return self._clock()

    async def _migrate(self) -> None:
        await self._conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
        )
        rows = await self._conn.execute_fetchall("SELECT version FROM schema_migrations")
        applied = {r[0] for r in rows}
        known = {v for v, _ in MIGRATIONS}
        if applied - known:
            raise StoreError(
                f"database has schema versions {sorted(applied - known)} newer than this "
                "software: upgrade permitnet"
            )
        for version, sql in MIGRATIONS:
            if version in applied:
                continue
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(sql):
                    await self._conn.execute(statement)
                await self._conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, self._clock()),
                )
                await self._conn.execute("COMMIT")
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise

    async def schema_version(self) -> int:
        """Return the highest applied migration number."""
        rows = list(await self._conn.execute_fetchall("SELECT max(version) FROM schema_migrations"))
        return int(rows[0][0])

    def add_listener(self, listener: Callable[[list[int]], None]) -> None:
        """Call ``listener(event_seqs)`` after each commit that wrote events (the SSE feed)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[list[int]], None]) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)

    def add_outbox_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after each commit that made outbox rows due (the delivery worker).

        Only those commits: a receiving node's commits write events but no outbox rows, and
        waking the worker for each would cost it two read transactions that find nothing.
        """
        self._outbox_listeners.append(listener)

    def remove_outbox_listener(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener``."""
        self._outbox_listeners.remove(listener)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """Run a block in one write transaction; commit on success, roll back on any error.

        Raises:
            StoreError: SQLite refused a statement (the transaction is rolled back).
        """
        async with self._lock:
            tx = Tx(self._conn, self._clock())
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield tx
            except sqlite3.Error as e:
                await self._conn.execute("ROLLBACK")
                raise StoreError(f"database refused the change: {e}") from e
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            try:
                await self._conn.execute("COMMIT")
            except sqlite3.Error as e:
                await self._conn.execute("ROLLBACK")
                raise StoreError(f"commit failed: {e}") from e
        self._announce(tx.new_events, made_outbox_due=tx.made_outbox_due)

    async def transact(
        self, fn: Callable[Concatenate[SyncTx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(tx, ...)`` as one write transaction, whole, on the database thread.

        BEGIN, ``fn`` and COMMIT are one round trip, where :meth:`transaction` takes one per
        statement and one each to begin and commit: on a busy event loop every round trip
        waits behind the requests being handled. ``fn`` runs plain ``sqlite3`` calls on
        ``tx.conn``; any exception it raises rolls the transaction back and reaches the
        caller (an ``sqlite3.Error`` as a ``StoreError``).

        Raises:
            StoreError: SQLite refused a statement or the commit (rolled back).
        """
        async with self._lock:
            # Queued whole while no transaction of transaction() or read() is open: what
            # queues after it runs after it, so the lock need not be held while it runs.
            now = self.now()
            conn = self._conn._conn  # noqa: SLF001 - see Tx.run
            done = self._queued(
                submit(self._conn, lambda: write_on(conn, now, fn, *args, **kwargs))
            )
        return await self._committed(done)

    async def transact_here(
        self, fn: Callable[Concatenate[SyncTx, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """:meth:`transact`, with ``fn`` run on this thread and only COMMIT on the database thread.

        For small transactions on a busy event loop. Python's sqlite3 lets go of the GIL at
        every SQLite step; on the database thread each step then waits for the busy loop to
        hand the GIL back, so a transaction of a dozen steps spends most of its time waiting
        (ADR 0016). Here the steps run on the loop's own thread, which blocks it while ``fn``
        runs (about 60 us per received document), and the COMMIT, whose fsync is the slow
        part, is the one step handed to the database thread.

        The write lock is taken with no busy wait, so the loop never waits for another
        connection: when the lock is not free at once (another process writes), or a
        transaction queued by :meth:`transact` has not finished, this is :meth:`transact`.

        Raises:
            StoreError: SQLite refused a statement or the commit (rolled back).
        """
        async with self._lock:
            now = self.now()
            conn = self._conn._conn  # noqa: SLF001 - see Tx.run
            # Nothing queued may still be running: the database thread is then idle, and stays
            # so while the lock is held (all else that uses it holds the lock while it does).
            try:
                written = (
                    write_here(conn, now, fn, *args, **kwargs) if self._writes_queued == 0 else None
                )
            except sqlite3.Error as e:
                raise StoreError(f"database refused the change: {e}") from e
            if written is None:
                done = submit(self._conn, lambda: write_on(conn, now, fn, *args, **kwargs))
            else:
                result, tx = written
                done = submit(self._conn, lambda: commit_on(conn, result, tx))
            self._queued(done)
        return await self._committed(done)

    def _queued(self, done: asyncio.Future[tuple[T, SyncTx]]) -> asyncio.Future[tuple[T, SyncTx]]:
        # Counted until answered: the database thread may run it after the lock is released.
        self._writes_queued += 1
        done.add_done_callback(self._dequeued)
        # Announced when it commits, even if the caller is cancelled meanwhile: the database
        # thread commits all the same, and listeners must not miss it.
        done.add_done_callback(self._announce_committed)
        return done

    def _dequeued(self, _: asyncio.Future[Any]) -> None:
        self._writes_queued -= 1

    async def _committed(self, done: asyncio.Future[tuple[T, SyncTx]]) -> T:
        try:
            result, _ = await asyncio.shield(done)
        except sqlite3.Error as e:
            raise StoreError(f"database refused the change: {e}") from e
        return result

    def _announce_committed(self, done: asyncio.Future[tuple[Any, SyncTx]]) -> None:
        if not done.cancelled() and done.exception() is None:
            tx = done.result()[1]
            self._announce(tx.new_events, made_outbox_due=tx.made_outbox_due)

    def _announce(self, new_events: list[int], *, made_outbox_due: bool) -> None:
        if new_events:
            for listener in list(self._listeners):
                listener(new_events)
        if made_outbox_due:
            for outbox_listener in list(self._outbox_listeners):
                outbox_listener()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """Run read-only queries; they see a consistent snapshot of committed data.

        Raises:
            StoreError: SQLite refused a query.
        """
        async with self._lock:
            await self._conn.execute("BEGIN")
            try:
                yield Tx(self._conn, self._clock())
            except sqlite3.Error as e:
                raise StoreError(f"database refused the query: {e}") from e
            finally:
                await self._conn.execute("ROLLBACK")

    async def get_document(self, document_id: str) -> DocumentRecord:
        """Return a stored document.

        Raises:
            NotFoundError: no document has this id.
        """
        async with self.read() as tx:
            return await tx.get_document(document_id)

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        """Run one read-only statement (atomic on its own) in a single round trip.

        Raises:
            StoreError: SQLite refused the statement.
        """
        async with self._lock:
            try:
                return list(await self._conn.execute_fetchall(sql, params))
            except sqlite3.Error as e:
                raise StoreError(f"database refused the query: {e}") from e

    async def list_documents(
        self,
        *,
        doc_type: str | None = None,
        direction: Direction | None = None,
        state: str | None = None,
        refers_to: str | None = None,
        limit: int = 100,
        before_issued_at: int | None = None,
    ) -> list[DocumentRecord]:
        """List documents, newest first, filtered by the given columns."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("doc_type", doc_type),
            ("direction", direction),
            ("state", state),
            ("refers_to", refers_to),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if before_issued_at is not None:
            where.append("issued_at < ?")
            params.append(before_issued_at)
        sql = "SELECT id FROM documents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY issued_at DESC, id LIMIT ?"
        params.append(limit)
        async with self.read() as tx:
            ids = [r[0] for r in await tx.fetchall(sql, params)]
            return await tx.get_documents(ids)

    async def events_after(self, seq: int, limit: int = 100) -> list[Event]:
        """Return feed events with a sequence number above ``seq``, oldest first."""
        rows = await self.query(
            "SELECT seq, at, kind, subject, from_state, to_state, actor, detail FROM events "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [
            Event(
                seq=r[0],
                at=r[1],
                kind=r[2],
                subject=r[3],
                from_state=r[4],
                to_state=r[5],
                actor=r[6],
                detail=json.loads(r[7]),
            )
            for r in rows
        ]


def _split_sql(script: str) -> list[str]:
    # sqlite3.complete_statement knows where a CREATE TRIGGER ... END; really ends.
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
