"""The node's storage: one SQLite database in WAL mode, through aiosqlite.

Signed documents are kept as the exact bytes that were signed, beside indexed columns for queries;
triggers make those bytes immutable. Every change happens inside :meth:`Store.transaction`, which
serialises writers on the one connection and commits or rolls back as a whole, so a document, its
event, its audit row and its outbox row are stored together or not at all.

Exchange tables (outbox, pending, quarantine, nonces) have their methods on :class:`Tx` in
:mod:`permitnet.node.store_exchange`'s mixin, so that part of the node can grow on its own.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, Final, Literal

import aiosqlite

from permitnet.node import audit
from permitnet.node.errors import NotFoundError, StoreError
from permitnet.node.migrations import MIGRATIONS
from permitnet.node.store_exchange import ExchangeMixin, P, T, insert_rows, submit

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

Direction = Literal["outbound", "inbound", "paper"]
Clock = Callable[[], int]
_DOC_COLUMNS: Final = (
    "id, raw, doc_type, issuer, recipient, issued_at, refers_to, reference, estimate_year, "
    "valid_until, direction, electronically_verified, state, stored_at"
)
_INSERT_DOCUMENT: Final = (
    f"INSERT INTO documents ({_DOC_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"  # noqa: S608 - fixed column list
)
#: How long a statement waits for another connection's write lock, on the database thread.
BUSY_TIMEOUT_MS: Final = 5000
_INSERT_ITEMS: Final = (
    "INSERT INTO document_items (document_id, item_index, substance, base_substance, "
    "quantity_mg, base_mg) VALUES (?,?,?,?,?,?)"
)


def _system_clock() -> int:
    return int(time.time())


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentItem:
    """One item of a stored document, as indexed for balances."""

    substance: str
    base_substance: str
    quantity_mg: int
    base_mg: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentRecord:
    """A stored document: the exact signed bytes plus the columns queries use."""

    id: str
    raw: bytes
    doc_type: str
    issuer: str
    recipient: str
    issued_at: int
    direction: Direction
    state: str
    items: tuple[DocumentItem, ...] = ()
    refers_to: str | None = None
    reference: str | None = None
    estimate_year: int | None = None
    valid_until: str | None = None
    electronically_verified: bool = True
    stored_at: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One row of the event feed: a state change of a document, draft or alert."""

    seq: int
    at: int
    kind: str
    subject: str
    from_state: str | None
    to_state: str | None
    actor: str
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """Return the event as a JSON object for the API and the SSE feed."""
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "subject": self.subject,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "actor": self.actor,
            "detail": self.detail,
        }


def _row_to_record(row: Sequence[Any], items: tuple[DocumentItem, ...]) -> DocumentRecord:
    return DocumentRecord(
        id=row[0],
        raw=bytes(row[1]),
        doc_type=row[2],
        issuer=row[3],
        recipient=row[4],
        issued_at=row[5],
        refers_to=row[6],
        reference=row[7],
        estimate_year=row[8],
        valid_until=row[9],
        direction=row[10],
        electronically_verified=bool(row[11]),
        state=row[12],
        stored_at=row[13],
        items=items,
    )


@dataclass(slots=True)
class SyncTx:
    """A write transaction as :meth:`Store.transact` hands it to a function on its thread."""

    #: The plain ``sqlite3`` connection, inside the transaction.
    conn: sqlite3.Connection
    #: The transaction's clock reading, used for every timestamp it writes.
    now: int
    #: Event sequence numbers written, announced after commit (as ``Tx.new_events``).
    new_events: list[int] = field(default_factory=list)
    #: Whether outbox rows became due for delivery, announced after commit.
    made_outbox_due: bool = False


class Tx(ExchangeMixin):
    """An open transaction; every method runs inside it. Obtain one from ``Store.transaction``."""

    def __init__(self, conn: aiosqlite.Connection, now: int) -> None:
        self.conn = conn
        #: The transaction's clock reading, used for every timestamp it writes.
        self.now = now
        #: Event sequence numbers written in this transaction, announced after commit.
        self.new_events: list[int] = []
        #: Whether outbox rows became due for delivery, announced after commit.
        self.made_outbox_due = False

    async def insert_document(
        self, record: DocumentRecord, *, actor: str, outbox_peers: Iterable[str] = ()
    ) -> bool:
        """Store a document, its items, its 'stored' event and audit row, and its outbox rows.

        Returns:
            True if stored now; False if a document with this id was already stored (the call is
            then a no-op, which makes re-delivery idempotent).
        """
        peers = list(outbox_peers)
        seqs = await self.run(_insert_document_on, record, actor=actor, now=self.now, peers=peers)
        if seqs is None:
            return False
        self.new_events.extend(seqs)
        self.made_outbox_due = self.made_outbox_due or bool(peers)
        return True

    async def insert_new_documents(self, records: Sequence[DocumentRecord], *, actor: str) -> None:
        """Store documents not stored yet, with their items, events and audit rows, in bulk.

        The same rows as :meth:`insert_document` called once per record (without outbox rows),
        written with a handful of ``executemany`` calls in one round trip to the database
        thread: the receive path uses it.
        The caller has checked, in this transaction, that none of the ids is stored.

        Raises:
            sqlite3.IntegrityError: an id is already stored (the transaction is rolled back).
        """
        if records:
            seqs = await self.run(insert_new_documents_on, records, actor=actor, now=self.now)
            self.new_events.extend(seqs)

    async def get_document(self, document_id: str) -> DocumentRecord:
        """Return a stored document.

        Raises:
            NotFoundError: no document has this id.
        """
        row = await self.fetchone(
            f"SELECT {_DOC_COLUMNS} FROM documents WHERE id = ?",  # noqa: S608 - fixed column list
            (document_id,),
        )
        if row is None:
            raise NotFoundError(f"no document {document_id}")
        items = await self.fetchall(
            "SELECT substance, base_substance, quantity_mg, base_mg FROM document_items "
            "WHERE document_id = ? ORDER BY item_index",
            (document_id,),
        )
        return _row_to_record(
            row,
            tuple(
                DocumentItem(substance=s, base_substance=b, quantity_mg=q, base_mg=m)
                for s, b, q, m in items
            ),
        )

    async def get_documents(self, document_ids: Sequence[str]) -> list[DocumentRecord]:
        """Return the stored documents with these ids, in that order, in two queries.

        Ids with no stored document are left out.
        """
        if not document_ids:
            return []
        marks = ", ".join("?" * len(document_ids))
        rows = await self.fetchall(
            f"SELECT {_DOC_COLUMNS} FROM documents WHERE id IN ({marks})",  # noqa: S608 - marks only
            tuple(document_ids),
        )
        items: dict[str, list[DocumentItem]] = {}
        for doc_id, substance, base, quantity, base_mg in await self.fetchall(
            "SELECT document_id, substance, base_substance, quantity_mg, base_mg "  # noqa: S608
            f"FROM document_items WHERE document_id IN ({marks}) ORDER BY item_index",
            tuple(document_ids),
        ):
            items.setdefault(doc_id, []).append(
                DocumentItem(
                    substance=substance, base_substance=base, quantity_mg=quantity, base_mg=base_mg
                )
            )
        by_id = {row[0]: _row_to_record(row, tuple(items.get(row[0], ()))) for row in rows}
        return [by_id[i] for i in document_ids if i in by_id]

    async def has_document(self, document_id: str) -> bool:
        """Return whether a document with this id is stored."""
        return bool(await self.fetchone("SELECT 1 FROM documents WHERE id = ?", (document_id,)))

    async def set_state(
        self, document_id: str, to_state: str, *, actor: str, detail: dict[str, Any] | None = None
    ) -> str:
        """Move a document to a new state, writing the event and the audit row.

        Returns:
            The previous state.

        Raises:
            NotFoundError: no document has this id.
        """
        row = await self.fetchone("SELECT state FROM documents WHERE id = ?", (document_id,))
        if row is None:
            raise NotFoundError(f"no document {document_id}")
        from_state: str = row[0]
        if from_state == to_state:
            return from_state
        await self.execute("UPDATE documents SET state = ? WHERE id = ?", (to_state, document_id))
        await self.add_event(
            "document",
            document_id,
            from_state=from_state,
            to_state=to_state,
            actor=actor,
            detail=detail or {},
        )
        await self.audit(actor, f"state {from_state} -> {to_state}", document_id, detail or {})
        return from_state

    async def audit(self, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None:
        """Append a row to the hash-chained audit log."""
        await audit.append(
            self, at=self.now, actor=actor, action=action, subject=subject, detail=detail
        )

    async def raise_alert(self, kind: str, document_id: str, message: str) -> int | None:
        """Raise an alert once per (kind, document); return its id, or None if already raised."""
        if await self.fetchone(
            "SELECT 1 FROM alerts WHERE kind = ? AND document_id = ?", (kind, document_id)
        ):
            return None
        alert_id = await self.execute(
            "INSERT INTO alerts (kind, document_id, message, created_at) VALUES (?,?,?,?)",
            (kind, document_id, message, self.now),
        )
        detail = {"alert_id": alert_id, "alert_kind": kind, "message": message}
        await self.add_event(
            "alert", document_id, from_state=None, to_state=kind, actor="node", detail=detail
        )
        await self.audit("node", f"alert {kind}", document_id, detail)
        return alert_id


def _document_row(r: DocumentRecord, now: int) -> tuple[Any, ...]:
    """The ``documents`` row of a record, in ``_DOC_COLUMNS`` order, stored at ``now``."""
    return (
        r.id,
        r.raw,
        r.doc_type,
        r.issuer,
        r.recipient,
        r.issued_at,
        r.refers_to,
        r.reference,
        r.estimate_year,
        r.valid_until,
        r.direction,
        int(r.electronically_verified),
        r.state,
        now,
    )


def _item_rows(r: DocumentRecord) -> list[tuple[Any, ...]]:
    """The ``document_items`` rows of a record."""
    return [
        (r.id, i, it.substance, it.base_substance, it.quantity_mg, it.base_mg)
        for i, it in enumerate(r.items)
    ]


def _insert_document_on(
    conn: sqlite3.Connection,
    record: DocumentRecord,
    *,
    actor: str,
    now: int,
    peers: Sequence[str],
) -> list[int] | None:
    """:meth:`Tx.insert_document` on the database thread: one round trip.

    Returns the new event numbers, or None when the id was already stored (nothing written).
    """
    # ON CONFLICT only covers the identifier: any other constraint still aborts.
    inserted = conn.execute(
        _INSERT_DOCUMENT + " ON CONFLICT (id) DO NOTHING RETURNING id", _document_row(record, now)
    ).fetchall()
    if not inserted:
        return None
    insert_rows(
        conn,
        "INSERT INTO outbox (document_id, peer, created_at, next_attempt_at) VALUES (?,?,?,?)",
        [(record.id, peer, now, now) for peer in peers],
    )
    return _stored_rows_on(conn, [record], actor=actor, now=now)


def insert_new_documents_on(
    conn: sqlite3.Connection, records: Sequence[DocumentRecord], *, actor: str, now: int
) -> list[int]:
    """:meth:`Tx.insert_new_documents` on the database thread; return the new event numbers."""
    insert_rows(conn, _INSERT_DOCUMENT, [_document_row(r, now) for r in records])
    return _stored_rows_on(conn, records, actor=actor, now=now)


def _stored_rows_on(
    conn: sqlite3.Connection, records: Sequence[DocumentRecord], *, actor: str, now: int
) -> list[int]:
    """What goes with newly stored documents: items, 'stored' events, audit rows."""
    insert_rows(conn, _INSERT_ITEMS, [row for r in records for row in _item_rows(r)])
    details = [{"doc_type": r.doc_type, "direction": r.direction} for r in records]
    pairs = list(zip(records, details, strict=True))
    # A multi-row INSERT ... RETURNING gives the new event numbers in the same call
    # (executemany cannot return them), 1000 rows (7000 parameters) at a time to stay
    # below SQLite's limit on parameters.
    seqs: list[int] = []
    for start in range(0, len(records), 1000):
        chunk = pairs[start : start + 1000]
        marks = ",".join(["(?,?,?,?,?,?,?)"] * len(chunk))
        params = [
            value
            for r, d in chunk
            for value in (now, "document", r.id, None, r.state, actor, json.dumps(d))
        ]
        rows = conn.execute(
            "INSERT INTO events (at, kind, subject, from_state, to_state, actor, detail) "  # noqa: S608 - only placeholders are interpolated
            f"VALUES {marks} RETURNING seq",
            params,
        ).fetchall()
        seqs.extend(r[0] for r in rows)
    audit.append_on(
        conn,
        at=now,
        actor=actor,
        rows=[(f"store {r.doc_type}", r.id, d) for r, d in pairs],
    )
    return sorted(seqs)


def _write_on(
    conn: sqlite3.Connection,
    now: int,
    fn: Callable[Concatenate[SyncTx, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> tuple[T, SyncTx]:
    """One write transaction on the database thread: BEGIN IMMEDIATE, ``fn``, COMMIT.

    Any exception rolls it back and propagates. Returns ``fn``'s result and the transaction,
    whose new events are announced once back on the loop.
    """
    conn.execute("BEGIN IMMEDIATE")
    result, tx = _run_begun(conn, now, fn, *args, **kwargs)
    return _commit_on(conn, result, tx)


def _write_here(
    conn: sqlite3.Connection,
    now: int,
    fn: Callable[Concatenate[SyncTx, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> tuple[T, SyncTx] | None:
    """BEGIN IMMEDIATE and ``fn`` on this thread, if the write lock is free now; else None.

    Nothing is committed: :meth:`Store.transact_here` hands the COMMIT to the database thread.
    """
    if not _begin_now(conn):
        return None
    return _run_begun(conn, now, fn, *args, **kwargs)


def _run_begun(
    conn: sqlite3.Connection,
    now: int,
    fn: Callable[Concatenate[SyncTx, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> tuple[T, SyncTx]:
    """``fn`` inside the transaction just begun; any exception rolls it back."""
    tx = SyncTx(conn=conn, now=now)
    try:
        return fn(tx, *args, **kwargs), tx
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _begin_now(conn: sqlite3.Connection) -> bool:
    """BEGIN IMMEDIATE if the write lock is free now; False, and nothing begun, if not."""
    conn.execute("PRAGMA busy_timeout=0")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as e:
        if e.sqlite_errorcode in {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}:
            return False
        raise
    finally:
        # Once the write lock is held, a WAL transaction waits for no other connection.
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return True


def _commit_on(conn: sqlite3.Connection, result: T, tx: SyncTx) -> tuple[T, SyncTx]:
    """COMMIT the open transaction (rolled back if that fails); return ``fn``'s result and it."""
    try:
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return result, tx


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
                submit(self._conn, lambda: _write_on(conn, now, fn, *args, **kwargs))
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
                    _write_here(conn, now, fn, *args, **kwargs)
                    if self._writes_queued == 0
                    else None
                )
            except sqlite3.Error as e:
                raise StoreError(f"database refused the change: {e}") from e
            if written is None:
                done = submit(self._conn, lambda: _write_on(conn, now, fn, *args, **kwargs))
            else:
                result, tx = written
                done = submit(self._conn, lambda: _commit_on(conn, result, tx))
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
