"""The inbound pipeline's groups, and the plain path: a group's transaction in one round trip.

Most documents a node receives are import certificates and export declarations that need no
rule beyond their own (checked before they get here) and no other document: they are
*plain*. A group of requests whose documents are all plain is decided and written whole on
the database thread (:func:`write_plain_on`, run by ``Store.transact``): one round trip,
where the general path (``node/exchange_general.py``) takes one per step, each waiting behind the
requests the busy event loop is handling. The decisions are the general path's: held ids are
duplicates, the rest are stored with their events and audit rows. What the plain path cannot
decide on its own (a document in ``inbound_pending``, one another document waits for) raises
:class:`NotPlainError`, which rolls its transaction back, and the general path decides it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from permitnet.node.store import insert_new_documents_on
from permitnet.node.store_exchange import insert_rows

if TYPE_CHECKING:
    import asyncio
    import sqlite3
    from collections.abc import Sequence

    from permitnet.node.peer_wire import Outcome
    from permitnet.node.store import DocumentRecord, SyncTx
    from permitnet.protocol.signed import SignedDocument

__all__ = [
    "CHUNK",
    "Decision",
    "KnownIds",
    "NotPlainError",
    "PlainDocument",
    "Request",
    "known_on",
    "write_plain_on",
]

#: Most ids in one ``IN (...)`` query (SQLite allows 32766 parameters; stay far below).
CHUNK: Final = 500


@dataclass(frozen=True, slots=True)
class Decision:
    """What became of one received document."""

    raw: bytes
    id: bytes
    outcome: Outcome
    reason: str
    #: Who the receipt is addressed to: the document's issuer, else the pushing peer.
    counterpart: str | None


@dataclass(frozen=True, slots=True)
class PlainDocument:
    """A verified plain document and the row it is stored as."""

    raw: bytes
    id: bytes
    record: DocumentRecord


@dataclass(slots=True)
class Request:
    """One received request's documents, waiting for a transaction to decide them."""

    raws: Sequence[bytes]
    checks: list[SignedDocument | str]
    from_peer: str | None
    nonce: tuple[bytes, bytes, int] | None
    usable: bool
    answer: asyncio.Future[list[Decision]]
    #: Its documents as plain ones, when every one is, else None.
    plain: list[PlainDocument] | None = None


@dataclass(slots=True)
class KnownIds:
    """What one transaction knows: ids held, ids pending, and certificates to write in bulk."""

    held: set[str]
    pending: set[str]
    #: Whether any document waits in ``inbound_pending`` for another (or starts to, here).
    dependents_waiting: bool = False
    plain: list[DocumentRecord] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)


class NotPlainError(Exception):
    """The plain path found what only the general path decides; its transaction is undone."""


def known_on(
    conn: sqlite3.Connection,
    ids: list[str],
    needed: list[str],
    nonces: list[tuple[str, str, int, int]],
) -> KnownIds:
    """Record the group's nonces; return which ids are held or pending, and who waits.

    On the database thread, inside a transaction. One query per 500 ids, covering the
    documents of the group and those they refer to.
    """
    if nonces:
        insert_rows(
            conn, "INSERT INTO nonces (key_id, nonce, seen_at, expires_at) VALUES (?,?,?,?)", nonces
        )
    wanted = sorted(set(ids) | set(needed))
    state = KnownIds(held=set(), pending=set())
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        # One statement (one SQLite step on this busy thread); EXISTS stops at the first
        # document waiting for another, where count(*) read them all.
        rows = conn.execute(
            f"SELECT 'held', id FROM documents WHERE id IN ({marks}) UNION ALL "  # noqa: S608 - only placeholders are interpolated
            f"SELECT 'pending', document_id FROM inbound_pending WHERE document_id IN ({marks}) "
            "UNION ALL SELECT 'waiting', EXISTS "
            "(SELECT 1 FROM inbound_pending WHERE reason = 'dependency')",
            chunk + chunk,
        ).fetchall()
        for kind, value in rows:
            if kind == "held":
                state.held.add(value)
            elif kind == "pending":
                state.pending.add(value)
            else:
                state.dependents_waiting = state.dependents_waiting or bool(value)
    return state


def write_plain_on(tx: SyncTx, requests: Sequence[Request]) -> list[list[Decision]]:
    """Decide and store a group of plain requests inside ``tx``, on the database thread.

    For ``Store.transact``.
    Held ids are duplicates, the rest are stored (a document twice in the group: once).

    Raises:
        NotPlainError: a document is in ``inbound_pending``, or another waits for one.
    """
    ids = [p.record.id for request in requests for p in request.plain or ()]
    nonces = [
        (kid.hex(), n.hex(), tx.now, expires)
        for kid, n, expires in (r.nonce for r in requests if r.nonce is not None)
    ]
    state = known_on(tx.conn, ids, [], nonces)
    if state.pending:
        raise NotPlainError
    answers: list[list[Decision]] = []
    by_issuer: dict[str, list[DocumentRecord]] = {}
    for request in requests:
        decisions = []
        for p in request.plain or ():
            issuer = p.record.issuer
            if p.record.id in state.held:
                decisions.append(Decision(p.raw, p.id, "duplicate", "", issuer))
                continue
            state.held.add(p.record.id)
            by_issuer.setdefault(issuer, []).append(p.record)
            decisions.append(Decision(p.raw, p.id, "accepted", "", issuer))
        answers.append(decisions)
    stored = [r.id for records in by_issuer.values() for r in records]
    if state.dependents_waiting and _awaited_on(tx.conn, stored):
        raise NotPlainError
    for issuer, records in by_issuer.items():
        tx.new_events.extend(
            insert_new_documents_on(tx.conn, records, actor=f"peer:{issuer}", now=tx.now)
        )
    return answers


def _awaited_on(conn: sqlite3.Connection, ids: list[str]) -> bool:
    """Whether a document in ``inbound_pending`` waits for one of ``ids``."""
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        if conn.execute(
            "SELECT 1 FROM inbound_pending WHERE reason = 'dependency' "  # noqa: S608 - only placeholders are interpolated
            f"AND waiting_for IN ({marks}) LIMIT 1",
            chunk,
        ).fetchone():
            return True
    return False
