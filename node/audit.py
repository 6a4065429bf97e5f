"""The append-only, hash-chained audit log: who did what, when, to which subject.

Each row's hash is SHA-256 over the previous row's hash followed by the deterministic CBOR of
the row's own fields, so changing, removing or reordering any row breaks every later hash.
:func:`verify_chain` walks the log and raises at the first row that does not verify. Triggers in
the schema refuse UPDATE and DELETE; the chain catches what is done behind SQLite's back.

What a chain alone cannot show is rows cut from its end: the shorter log still verifies. The
*head* (:class:`AuditHead`: the last row's number and hash) is therefore written where the
node's own storage is not, the node logging it every hour (``node/app.py``) and operators
recording ``permitnet node audit head``; ``verify_chain(witnessed=...)`` then proves that each
head recorded earlier is still in the log, with the same hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from permitnet.node.errors import AuditChainError, ValidationError
from permitnet.node.store_exchange import insert_rows
from permitnet.protocol import encode_cbor

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

    from permitnet.node.store import Store, Tx

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditHead",
    "append",
    "append_on",
    "entries",
    "head",
    "row_hash",
    "verify_chain",
]

#: The ``prev_hash`` of the first row.
GENESIS_HASH: Final = bytes(32)


@dataclass(frozen=True, slots=True)
class AuditHead:
    """A point of the audit log: row ``seq`` and its hash, written ``SEQ:HEX`` (row 0: empty)."""

    seq: int
    hash: bytes

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash.hex()}"

    @classmethod
    def parse(cls, text: str) -> AuditHead:
        """Read ``SEQ:HEX`` as ``permitnet node audit head`` prints it.

        Raises:
            ValidationError: it is not a row number and a 64-digit hex hash.
        """
        seq_text, _, hex_text = text.strip().partition(":")
        try:
            seq = int(seq_text)
            digest = bytes.fromhex(hex_text)
        except ValueError:
            seq, digest = -1, b""
        if seq < 0 or len(digest) != len(GENESIS_HASH) or not seq_text.isdigit():
            raise ValidationError(
                f"an audit head is ROW:HASH, a row number and 64 hex digits, not {text!r}"
            )
        return cls(seq=seq, hash=digest)


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


async def entries(
    store: Store,
    *,
    subject: str | None = None,
    after: int = 0,
    before: int | None = None,
    limit: int = 1000,
) -> list[AuditEntry]:
    """Return audit rows after sequence ``after``, optionally for one subject.

    With ``before``, the ``limit`` newest rows before that sequence number instead (after
    ``after``), newest first: a page of a long log from its recent end.
    """
    sql = "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log "
    sql += "WHERE seq > ?"
    params: list[Any] = [after]
    if before is not None:
        sql += " AND seq < ?"
        params.append(before)
    if subject is not None:
        sql += " AND subject = ?"
        params.append(subject)
    sql += " ORDER BY seq" + (" DESC" if before is not None else "") + " LIMIT ?"
    params.append(limit)
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


async def head(store: Store) -> AuditHead:
    """The audit log's last row and its hash (row 0 and the genesis hash when it is empty)."""
    async with store.read() as tx:
        row = await tx.fetchone("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    return AuditHead(0, GENESIS_HASH) if row is None else AuditHead(row[0], bytes(row[1]))


async def verify_chain(
    store: Store, *, witnessed: Sequence[AuditHead] = (), batch: int = 5000
) -> int:
    """Verify the whole audit log; return the number of rows checked.

    Args:
        store: the node's database.
        witnessed: heads recorded earlier, away from the node: each must still be in the log,
            with the same hash. Without them, rows cut from the end cannot be told.
        batch: rows read per query.

    Raises:
        AuditChainError: a row is missing, out of order, or its hash does not match; or the
            log ends before a witnessed head, or holds another row in its place.
    """
    # Every witnessed head is checked, several for one row too (two that disagree cannot
    # both be right).
    wanted: dict[int, set[bytes]] = {}
    for w in witnessed:
        wanted.setdefault(w.seq, set()).add(w.hash)
    prev = GENESIS_HASH
    expected_seq = 1
    if wanted.get(0, {GENESIS_HASH}) != {GENESIS_HASH}:
        raise AuditChainError(0, "the witnessed row 0 must carry the genesis hash (all zeros)")
    while True:
        async with store.read() as tx:
            rows = await tx.fetchall(
                "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log "
                "WHERE seq >= ? ORDER BY seq LIMIT ?",
                (expected_seq, batch),
            )
        if not rows:
            last = expected_seq - 1
            beyond = [seq for seq in wanted if seq > last]
            if beyond:
                raise AuditChainError(
                    max(beyond),
                    f"witnessed, but the log ends at row {last}: rows were cut from its end",
                )
            return last
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
            if wanted.get(seq, {computed}) != {computed}:
                raise AuditChainError(
                    seq,
                    "its hash is not the one witnessed: this row or an earlier one was rewritten",
                )
            prev = computed
            expected_seq += 1
