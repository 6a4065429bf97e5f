"""The append-only, hash-chained audit log: who did what, when, to which subject.

Each row's hash is SHA-256 over the previous row's hash followed by the deterministic CBOR of
the row's own fields, so changing, removing or reordering any row breaks every later hash.
:func:`verify_chain` walks the log and raises at the first row that does not verify. Triggers in
the schema refuse UPDATE and DELETE; the chain catches what is done behind SQLite's back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from permitnet.node.errors import AuditChainError
from permitnet.node.store_exchange import insert_rows
from permitnet.protocol import encode_cbor

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

    from permitnet.node.store import Store, Tx

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "append",
    "append_many",
    "append_on",
    "entries",
    "row_hash",
    "verify_chain",
]

#: The ``prev_hash`` of the first row.
GENESIS_HASH: Final = bytes(32)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One audit log row."""

    seq: int
    at: int
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    prev_hash: bytes
    hash: bytes


def row_hash(
    prev_hash: bytes, *, seq: int, at: int, actor: str, action: str, subject: str, detail: str
) -> bytes:
    """Return the chained hash of one row (``detail`` is the stored JSON text)."""
    body = encode_cbor([seq, at, actor, action, subject, detail])
    return hashlib.sha256(prev_hash + body).digest()


_INSERT: Final = (
    "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) "
    "VALUES (?,?,?,?,?,?,?,?)"
)


def append_on(
    conn: sqlite3.Connection,
    *,
    at: int,
    actor: str,
    rows: Sequence[tuple[str, str, dict[str, Any]]],
) -> int:
    """Append ``(action, subject, detail)`` rows, in order, on the connection itself.

    For :meth:`Tx.run <permitnet.node.store_exchange.ExchangeMixin.run>`, inside a
    transaction: the last row is read and the new rows written in one round trip to the
    database thread. Returns the sequence number of the last row appended.
    """
    last = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (0, GENESIS_HASH) if last is None else (last[0], bytes(last[1]))
    values = []
    for action, subject, detail in rows:
        seq += 1
        detail_text = json.dumps(detail, sort_keys=True, separators=(",", ":"))
        digest = row_hash(
            prev, seq=seq, at=at, actor=actor, action=action, subject=subject, detail=detail_text
        )
        values.append((seq, at, actor, action, subject, detail_text, prev, digest))
        prev = digest
    insert_rows(conn, _INSERT, values)
    return seq


async def append(
    tx: Tx, *, at: int, actor: str, action: str, subject: str, detail: dict[str, Any]
) -> int:
    """Append a row inside the transaction ``tx``; return its sequence number."""
    return await tx.run(append_on, at=at, actor=actor, rows=[(action, subject, detail)])


async def append_many(
    tx: Tx, *, at: int, actor: str, rows: Sequence[tuple[str, str, dict[str, Any]]]
) -> None:
    """Append ``(action, subject, detail)`` rows inside ``tx`` in one database round trip.

    The chain is the same as :func:`append` called once per row, in order: the batched
    receive path (``node/exchange.py``) uses it so that storing a hundred received documents
    does not cost two hundred round trips to the database thread.
    """
    if rows:
        await tx.run(append_on, at=at, actor=actor, rows=rows)


async def entries(
    store: Store, *, subject: str | None = None, after: int = 0, limit: int = 1000
) -> list[AuditEntry]:
    """Return audit rows after sequence ``after``, optionally for one subject."""
    sql = "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log "
    sql += "WHERE seq > ?" + (" AND subject = ?" if subject is not None else "")
    sql += " ORDER BY seq LIMIT ?"
    params: tuple[Any, ...] = (after, subject, limit) if subject is not None else (after, limit)
    async with store.read() as tx:
        rows = await tx.fetchall(sql, params)
    return [
        AuditEntry(
            seq=r[0],
            at=r[1],
            actor=r[2],
            action=r[3],
            subject=r[4],
            detail=json.loads(r[5]),
            prev_hash=bytes(r[6]),
            hash=bytes(r[7]),
        )
        for r in rows
    ]


async def verify_chain(store: Store, *, batch: int = 5000) -> int:
    """Verify the whole audit log; return the number of rows checked.

    Raises:
        AuditChainError: a row is missing, out of order, or its hash does not match.
    """
    prev = GENESIS_HASH
    expected_seq = 1
    while True:
        async with store.read() as tx:
            rows = await tx.fetchall(
                "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log "
                "WHERE seq >= ? ORDER BY seq LIMIT ?",
                (expected_seq, batch),
            )
        if not rows:
            return expected_seq - 1
        for seq, at, actor, action, subject, detail, prev_hash, digest in rows:
            if seq != expected_seq:
                raise AuditChainError(expected_seq, "row missing (sequence gap)")
            if bytes(prev_hash) != prev:
                raise AuditChainError(seq, "prev_hash does not match the previous row's hash")
            computed = row_hash(
                prev, seq=seq, at=at, actor=actor, action=action, subject=subject, detail=detail
            )
            if computed != bytes(digest):
                raise AuditChainError(seq, "content does not match its hash (row altered)")
            prev = computed
            expected_seq += 1
