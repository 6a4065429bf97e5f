"""The rows a stored document is made of, and the statements that write them.

A document is one ``documents`` row (its exact signed bytes beside the indexed columns), its
``document_items`` rows, a ``stored`` event and an audit row. The functions here write them on
the database thread, inside a transaction :class:`permitnet.node.store.Store` opened; the
records are what the rest of the node reads back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from permitnet.node import audit
from permitnet.node.store_exchange import insert_rows

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

__all__ = [
    "DOC_COLUMNS",
    "Direction",
    "DocumentItem",
    "DocumentRecord",
    "Event",
    "insert_document_on",
    "insert_new_documents_on",
    "row_to_record",
]

Direction = Literal["outbound", "inbound", "paper"]
DOC_COLUMNS: Final = (
    "id, raw, doc_type, issuer, recipient, issued_at, refers_to, reference, estimate_year, "
    "valid_until, direction, electronically_verified, state, stored_at"
)
_INSERT_DOCUMENT: Final = (
    f"INSERT INTO documents ({DOC_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"  # noqa: S608 - fixed column list
)
_INSERT_ITEMS: Final = (
    "INSERT INTO document_items (document_id, item_index, substance, base_substance, "
    "quantity_mg, base_mg) VALUES (?,?,?,?,?,?)"
)


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


def row_to_record(row: Sequence[Any], items: tuple[DocumentItem, ...]) -> DocumentRecord:
    """The record of a ``documents`` row read in :data:`DOC_COLUMNS` order, with its items."""
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


def _document_row(r: DocumentRecord, now: int) -> tuple[Any, ...]:
    """The ``documents`` row of a record, in ``DOC_COLUMNS`` order, stored at ``now``."""
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


def insert_document_on(
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
