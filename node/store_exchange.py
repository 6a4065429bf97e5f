"""Transaction methods over the exchange tables: outbox, inbound pending, quarantine, nonces.

These are the seams for the node-to-node exchange (delivery worker, inbound pipeline, signed
requests). :class:`permitnet.node.store.Tx` inherits them, so they always run inside a
``Store.transaction()`` or ``Store.read()`` block, never outside one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, Final, Literal, ParamSpec, TypeVar

from permitnet.node.errors import NotFoundError, ReplayError

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Awaitable, Callable, Sequence

    import aiosqlite

P = ParamSpec("P")
T = TypeVar("T")

__all__ = [
    "ExchangeMixin",
    "OutboxEntry",
    "PendingEntry",
    "QuarantineEntry",
    "insert_rows",
    "submit",
]

PendingReason = Literal["dependency", "registry"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxEntry:
    """One outbound document's delivery state for one peer country."""

    document_id: str
    peer: str
    raw: bytes
    created_at: int
    attempts: int
    next_attempt_at: int
    last_error: str | None
    delivered_at: int | None
    receipt: bytes | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingEntry:
    """A received document waiting for what it refers to, or for fresh registry data."""

    document_id: str
    raw: bytes
    reason: PendingReason
    waiting_for: str | None
    from_peer: str | None
    received_at: int
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantineEntry:
    """A rejected input, kept for audit."""

    seq: int
    document_id: str
    raw: bytes
    reason: str
    from_peer: str | None
    received_at: int


_OUTBOX_SELECT = (
    "SELECT o.document_id, o.peer, d.raw, o.created_at, o.attempts, o.next_attempt_at, "
    "o.last_error, o.delivered_at, o.receipt "
    "FROM outbox o JOIN documents d ON d.id = o.document_id "
)
_PENDING_SELECT = (
    "SELECT document_id, raw, reason, waiting_for, from_peer, received_at, attempts, last_error "
    "FROM inbound_pending "
)


def _outbox(r: Sequence[Any]) -> OutboxEntry:
    return OutboxEntry(
        document_id=r[0],
        peer=r[1],
        raw=bytes(r[2]),
        created_at=r[3],
        attempts=r[4],
        next_attempt_at=r[5],
        last_error=r[6],
        delivered_at=r[7],
        receipt=None if r[8] is None else bytes(r[8]),
    )


def _pending(r: Sequence[Any]) -> PendingEntry:
    return PendingEntry(
        document_id=r[0],
        raw=bytes(r[1]),
        reason=r[2],
        waiting_for=r[3],
        from_peer=r[4],
        received_at=r[5],
        attempts=r[6],
        last_error=r[7],
    )


#: Most parameters in one statement (SQLite's default limit is 32766 since 3.32).
_MAX_PARAMETERS: Final = 30_000


def insert_rows(conn: sqlite3.Connection, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run ``executemany(statement, rows)`` as multi-row INSERTs, on the database thread.

    ``statement`` is ``INSERT INTO t (...) VALUES (?,...)``. The same rows, but one SQLite
    step per statement instead of one per row: Python's sqlite3 lets go of the GIL at every
    step, and taking it back waits behind the busy event loop, so a hundred small steps cost
    far more than their own work.
    """
    head, _, marks = statement.rpartition(" VALUES ")
    per_statement = max(1, _MAX_PARAMETERS // marks.count("?"))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        conn.execute(
            f"{head} VALUES {','.join([marks] * len(chunk))}",
            [value for row in chunk for value in row],
        )


def submit(conn: aiosqlite.Connection, fn: Callable[[], T]) -> asyncio.Future[T]:
    """Queue ``fn()`` on the connection's thread now; return the future of its result.

    What aiosqlite's own calls do before they await: queued in order, run in that order.
    """
    # aiosqlite 0.17 to 0.22 queue (future, function) pairs on ``_tx`` and answer with these
    # same guards; it has no public call for this (ADR 0014). tests/node/test_store.py
    # exercises it, so a change fails loudly.
    if not conn._running or not conn._connection:  # noqa: SLF001
        raise ValueError("Connection closed")
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    conn._tx.put_nowait((future, fn))  # noqa: SLF001
    return future


class ExchangeMixin:
    """Query primitives plus the exchange tables' methods; the base of ``Tx``."""

    conn: aiosqlite.Connection
    now: int
    new_events: list[int]
    made_outbox_due: bool

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        """Run a query and return all rows."""
        return list(await self.conn.execute_fetchall(sql, params))

    async def run(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(connection, *args)`` on the database thread, in this transaction.

        One round trip for any number of statements: each ``await`` of the other methods is a
        hop to the database thread and back, and on a busy event loop each hop waits behind
        the requests being handled, so a transaction of many hops holds the writer's turn
        long. ``fn`` must only run SQL on the connection it is given; its ``sqlite3.Error``
        reaches the caller as from any other method.
        """
        # aiosqlite has no public call for "run this function on the connection's thread";
        # its execute helpers are themselves built on these two private members (aiosqlite
        # 0.17 to 0.22). tests/node/test_store.py exercises them, so a change fails loudly.
        raw = self.conn._conn  # noqa: SLF001
        execute: Callable[..., Awaitable[T]] = self.conn._execute  # noqa: SLF001
        return await execute(fn, raw, *args, **kwargs)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        """Run a query and return the first row, or None."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; return the connection's last inserted rowid (meaningful after INSERT).

        One round trip to the database thread (each await hops threads, so they are counted).
        """
        row = await self.conn.execute_insert(sql, params)
        return int(row[0]) if row else 0

    async def execute_rowcount(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an UPDATE or DELETE (without its own RETURNING); return how many rows it changed."""
        return len(list(await self.conn.execute_fetchall(sql + " RETURNING 1", params)))

    async def add_event(
        self,
        kind: str,
        subject: str,
        *,
        from_state: str | None,
        to_state: str | None,
        actor: str,
        detail: dict[str, Any],
    ) -> int:
        """Append an event to the feed; return its sequence number."""
        seq = await self.execute(
            "INSERT INTO events (at, kind, subject, from_state, to_state, actor, detail) "
            "VALUES (?,?,?,?,?,?,?)",
            (self.now, kind, subject, from_state, to_state, actor, json.dumps(detail)),
        )
        self.new_events.append(seq)
        return seq

    # Outbox -------------------------------------------------------------------------------

    async def outbox_due(self, *, limit: int = 100, peer: str | None = None) -> list[OutboxEntry]:
        """Undelivered outbox rows whose next attempt is due now, oldest first."""
        sql = _OUTBOX_SELECT + "WHERE o.delivered_at IS NULL AND o.next_attempt_at <= ?"
        params: list[Any] = [self.now]
        if peer is not None:
            sql += " AND o.peer = ?"
            params.append(peer)
        sql += " ORDER BY o.next_attempt_at, o.created_at LIMIT ?"
        params.append(limit)
        return [_outbox(r) for r in await self.fetchall(sql, params)]

    async def outbox_undelivered_for_peer(
        self, peer: str, *, limit: int = 100
    ) -> list[OutboxEntry]:
        """Every undelivered row for ``peer`` regardless of schedule (served to pulling peers)."""
        return [
            _outbox(r)
            for r in await self.fetchall(
                _OUTBOX_SELECT + "WHERE o.delivered_at IS NULL AND o.peer = ? "
                "ORDER BY o.created_at LIMIT ?",
                (peer, limit),
            )
        ]

    async def outbox_for_document(self, document_id: str) -> list[OutboxEntry]:
        """All outbox rows of one document (one per peer)."""
        return [
            _outbox(r)
            for r in await self.fetchall(
                _OUTBOX_SELECT + "WHERE o.document_id = ? ORDER BY o.peer", (document_id,)
            )
        ]

    async def outbox_record_failure(
        self, document_id: str, peer: str, *, error: str, next_attempt_at: int
    ) -> None:
        """Count a failed attempt and schedule the next one.

        Raises:
            NotFoundError: no undelivered outbox row for this document and peer.
        """
        changed = await self.execute_rowcount(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
            "WHERE document_id = ? AND peer = ? AND delivered_at IS NULL",
            (error[:2000], next_attempt_at, document_id, peer),
        )
        if next_attempt_at <= self.now:
            self.made_outbox_due = True
        if changed != 1:
            raise NotFoundError(f"no undelivered outbox row for {document_id} to {peer}")

    async def outbox_record_delivery(
        self, document_id: str, peer: str, *, receipt: bytes | None
    ) -> bool:
        """Mark a row delivered and keep the peer's signed receipt (exact bytes).

        Returns:
            True if marked now; False if it was already delivered (a duplicate acknowledgement).

        Raises:
            NotFoundError: no outbox row for this document and peer.
        """
        changed = await self.execute_rowcount(
            "UPDATE outbox SET attempts = attempts + 1, delivered_at = ?, receipt = ?, "
            "last_error = NULL WHERE document_id = ? AND peer = ? AND delivered_at IS NULL",
            (self.now, receipt, document_id, peer),
        )
        if changed == 1:
            return True
        if await self.fetchone(
            "SELECT 1 FROM outbox WHERE document_id = ? AND peer = ?", (document_id, peer)
        ):
            return False
        raise NotFoundError(f"no outbox row for {document_id} to {peer}")

    # Inbound pending ----------------------------------------------------------------------

    async def add_pending(
        self,
        document_id: str,
        raw: bytes,
        *,
        reason: PendingReason,
        waiting_for: str | None = None,
        from_peer: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Keep a received document until it can be applied; False if it was already pending."""
        if await self.fetchone(
            "SELECT 1 FROM inbound_pending WHERE document_id = ?", (document_id,)
        ):
            await self.execute(
                "UPDATE inbound_pending SET attempts = attempts + 1, last_error = ?, reason = ?, "
                "waiting_for = ? WHERE document_id = ?",
                (error, reason, waiting_for, document_id),
            )
            return False
        await self.execute(
            "INSERT INTO inbound_pending (document_id, raw, reason, waiting_for, from_peer, "
            "received_at, last_error) VALUES (?,?,?,?,?,?,?)",
            (document_id, raw, reason, waiting_for, from_peer, self.now, error),
        )
        return True

    async def pending(
        self, *, reason: PendingReason | None = None, waiting_for: str | None = None
    ) -> list[PendingEntry]:
        """Pending documents, oldest first, optionally filtered."""
        where: list[str] = []
        params: list[str] = []
        if reason is not None:
            where.append("reason = ?")
            params.append(reason)
        if waiting_for is not None:
            where.append("waiting_for = ?")
            params.append(waiting_for)
        sql = _PENDING_SELECT + (" WHERE " + " AND ".join(where) if where else "")
        return [_pending(r) for r in await self.fetchall(sql + " ORDER BY received_at", params)]

    async def remove_pending(self, document_id: str) -> None:
        """Forget a pending document once it has been applied or quarantined."""
        await self.execute("DELETE FROM inbound_pending WHERE document_id = ?", (document_id,))

    # Quarantine ---------------------------------------------------------------------------

    async def add_quarantine(self, raw: bytes, *, reason: str, from_peer: str | None) -> int:
        """Keep a rejected input with its reason; return its sequence number."""
        document_id = hashlib.sha256(raw).hexdigest()
        seq = await self.execute(
            "INSERT INTO quarantine (document_id, raw, reason, from_peer, received_at) "
            "VALUES (?,?,?,?,?)",
            (document_id, raw, reason, from_peer, self.now),
        )
        detail = {"reason": reason, "from_peer": from_peer, "quarantine_seq": seq}
        await self.add_event(
            "quarantine",
            document_id,
            from_state=None,
            to_state="quarantined",
            actor="node",
            detail=detail,
        )
        return seq

    async def quarantined(self, *, limit: int = 100) -> list[QuarantineEntry]:
        """Quarantined inputs, newest first."""
        rows = await self.fetchall(
            "SELECT seq, document_id, raw, reason, from_peer, received_at FROM quarantine "
            "ORDER BY seq DESC LIMIT ?",
            (limit,),
        )
        return [
            QuarantineEntry(
                seq=r[0],
                document_id=r[1],
                raw=bytes(r[2]),
                reason=r[3],
                from_peer=r[4],
                received_at=r[5],
            )
            for r in rows
        ]

    # Nonces -------------------------------------------------------------------------------

    async def remember_nonce(self, key_id: str, nonce: str, *, expires_at: int) -> None:
        """Record a request nonce; expired nonces are purged first.

        Raises:
            ReplayError: this key already used this nonce (and it has not expired).
        """
        await self.execute("DELETE FROM nonces WHERE expires_at < ?", (self.now,))
        if await self.fetchone(
            "SELECT 1 FROM nonces WHERE key_id = ? AND nonce = ?", (key_id, nonce)
        ):
            raise ReplayError(f"nonce {nonce!r} of key {key_id} was already used")
        await self.execute(
            "INSERT INTO nonces (key_id, nonce, seen_at, expires_at) VALUES (?,?,?,?)",
            (key_id, nonce, self.now, expires_at),
        )
