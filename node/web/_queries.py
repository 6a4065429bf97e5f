"""Read-only queries the pages need, over the node's store.

Each runs inside ``Store.read()`` and returns plain rows for the templates. They read the
node's tables directly because the pages need aggregates (what needs doing, monthly totals)
that the lifecycle services have no reason to offer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from permitnet.node.store import Store

__all__ = [
    "AUTHORIZATION",
    "CERTIFICATE",
    "ENDORSEMENT",
    "Todo",
    "dashboard",
    "documents",
    "monthly_totals",
]

CERTIFICATE: Final = "import_certificate"
AUTHORIZATION: Final = "export_authorization"
ENDORSEMENT: Final = "endorsement"
#: States in which a document is no longer live.
CLOSED_STATES: Final = ("cancelled", "expired", "superseded")


@dataclass(frozen=True, slots=True, kw_only=True)
class DocRow:
    """One document as lists show it."""

    id: str
    doc_type: str
    issuer: str
    recipient: str
    issued_at: int
    direction: str
    state: str
    reference: str | None
    valid_until: str | None
    substances: str
    base_mg: int
    #: The reference number of the document this one refers to (an endorsement's
    #: authorization, a cancellation's or message's document), for rows without their own.
    refers_to_reference: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Todo:
    """Everything the dashboard shows, each list newest first."""

    certificates_awaiting_authorization: list[DocRow]
    authorizations_awaiting_endorsement: list[DocRow]
    overdue_endorsements: list[DocRow]
    alerts: list[dict[str, Any]]
    failing_deliveries: list[dict[str, Any]]
    held_drafts: list[dict[str, Any]]
    drafts_to_approve: list[dict[str, Any]]
    pending_inbound: int
    messages: list[dict[str, Any]]


_DOC_SELECT: Final = (
    "SELECT d.id, d.doc_type, d.issuer, d.recipient, d.issued_at, d.direction, d.state, "
    "d.reference, d.valid_until, "
    "coalesce((SELECT group_concat(DISTINCT i.substance) FROM document_items i "
    "WHERE i.document_id = d.id), ''), "
    "coalesce((SELECT sum(i.base_mg) FROM document_items i WHERE i.document_id = d.id), 0), "
    "(SELECT r.reference FROM documents r WHERE r.id = d.refers_to) "
    "FROM documents d"
)


def _doc(row: Any) -> DocRow:
    return DocRow(
        id=row[0],
        doc_type=row[1],
        issuer=row[2],
        recipient=row[3],
        issued_at=row[4],
        direction=row[5],
        state=row[6],
        reference=row[7],
        valid_until=row[8],
        substances=(row[9] or "").replace(",", ", "),
        base_mg=row[10],
        refers_to_reference=row[11],
    )


#: Live documents of one type that no document of a follow-up type refers to yet.
_WITHOUT_FOLLOW_UP: Final = (
    _DOC_SELECT  # noqa: S608 - constant fragments; every value is a bound parameter
    + " WHERE d.doc_type = ? AND d.state NOT IN (?, ?, ?) "
    "AND NOT EXISTS (SELECT 1 FROM documents f WHERE f.refers_to = d.id AND f.doc_type = ?)"
)


def _follow_up_params(doc_type: str, follow_up: str) -> tuple[str, ...]:
    return (doc_type, *CLOSED_STATES, follow_up)


async def dashboard(store: Store, *, country: str, today: dt.date, limit: int = 20) -> Todo:
    """Collect what needs doing on this node."""
    async with store.read() as tx:
        awaiting_ea = await tx.fetchall(
            _WITHOUT_FOLLOW_UP + " AND d.recipient = ? ORDER BY d.issued_at DESC LIMIT ?",
            (*_follow_up_params(CERTIFICATE, AUTHORIZATION), country, limit),
        )
        awaiting_endorsement = await tx.fetchall(
            _WITHOUT_FOLLOW_UP + " AND (d.valid_until IS NULL OR d.valid_until >= ?)"
            " ORDER BY d.issued_at DESC LIMIT ?",
            (*_follow_up_params(AUTHORIZATION, ENDORSEMENT), today.isoformat(), limit),
        )
        overdue = await tx.fetchall(
            _WITHOUT_FOLLOW_UP + " AND d.valid_until < ? ORDER BY d.valid_until LIMIT ?",
            (*_follow_up_params(AUTHORIZATION, ENDORSEMENT), today.isoformat(), limit),
        )
        alerts = await tx.fetchall(
            "SELECT id, kind, document_id, message, created_at FROM alerts "
            "WHERE acknowledged_at IS NULL ORDER BY created_at DESC LIMIT ?",
            (limit,),
        )
        failing = await tx.fetchall(
            "SELECT document_id, peer, attempts, last_error, next_attempt_at, created_at "
            "FROM outbox WHERE delivered_at IS NULL AND attempts > 0 "
            "ORDER BY created_at LIMIT ?",
            (limit,),
        )
        drafts = await tx.fetchall(
            "SELECT id, doc_type, state, created_by, created_at, held_reason FROM drafts "
            "WHERE state IN ('draft', 'held') ORDER BY created_at DESC LIMIT ?",
            (limit * 2,),
        )
        pending = await tx.fetchone("SELECT count(*) FROM inbound_pending")
        messages = await tx.fetchall(
            "SELECT m.id, m.issuer, m.issued_at, m.refers_to, d.doc_type, d.reference "
            "FROM documents m LEFT JOIN documents d ON d.id = m.refers_to "
            "WHERE m.doc_type = 'message' AND m.direction = 'inbound' AND m.issued_at >= ? "
            "ORDER BY m.issued_at DESC LIMIT ?",
            (_day_start(today.isoformat()) - 14 * 86400, limit),
        )
    draft_rows = [
        {
            "id": r[0],
            "doc_type": r[1],
            "state": r[2],
            "created_by": r[3],
            "created_at": r[4],
            "held_reason": r[5],
        }
        for r in drafts
    ]
    return Todo(
        certificates_awaiting_authorization=[_doc(r) for r in awaiting_ea],
        authorizations_awaiting_endorsement=[_doc(r) for r in awaiting_endorsement],
        overdue_endorsements=[_doc(r) for r in overdue],
        alerts=[
            {"id": r[0], "kind": r[1], "document_id": r[2], "message": r[3], "created_at": r[4]}
            for r in alerts
        ],
        failing_deliveries=[
            {
                "document_id": r[0],
                "peer": r[1],
                "attempts": r[2],
                "last_error": r[3],
                "next_attempt_at": r[4],
                "created_at": r[5],
            }
            for r in failing
        ],
        held_drafts=[d for d in draft_rows if d["state"] == "held"],
        drafts_to_approve=[d for d in draft_rows if d["state"] == "draft"],
        pending_inbound=int(pending[0]) if pending else 0,
        messages=[
            {
                "id": r[0],
                "issuer": r[1],
                "issued_at": r[2],
                "about": r[3],
                "about_type": r[4],
                "about_reference": r[5],
            }
            for r in messages
        ],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentFilter:
    """The documents list's search and filters; empty fields do not filter."""

    text: str = ""
    partner: str = ""
    substance: str = ""
    doc_type: str = ""
    state: str = ""
    date_from: str = ""
    date_to: str = ""


async def documents(
    store: Store, *, country: str, query: DocumentFilter, limit: int = 200
) -> list[DocRow]:
    """List documents matching the filter, newest first."""
    where: list[str] = []
    params: list[Any] = []
    if query.partner:
        where.append("((d.issuer = ? AND d.recipient = ?) OR (d.recipient = ? AND d.issuer = ?))")
        params += [query.partner, country, query.partner, country]
    if query.substance:
        where.append(
            "EXISTS (SELECT 1 FROM document_items i WHERE i.document_id = d.id "
            "AND (i.substance = ? OR i.base_substance = ?))"
        )
        params += [query.substance, query.substance]
    for column, value in (("d.doc_type", query.doc_type), ("d.state", query.state)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if query.date_from:
        where.append("d.issued_at >= ?")
        params.append(_day_start(query.date_from))
    if query.date_to:
        where.append("d.issued_at < ?")
        params.append(_day_start(query.date_to) + 86400)
    if query.text:
        where.append("(d.id LIKE ? OR d.reference LIKE ?)")
        like = "%" + query.text.replace("%", "").replace("_", "") + "%"
        params += [like.lower(), like]
    sql = _DOC_SELECT
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY d.issued_at DESC, d.id LIMIT ?"
    params.append(limit)
    async with store.read() as tx:
        rows = await tx.fetchall(sql, params)
    return [_doc(r) for r in rows]


def _day_start(iso: str) -> int:
    day = dt.date.fromisoformat(iso)
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


async def monthly_totals(
    store: Store, *, country: str, since: int
) -> list[tuple[str, str, str, str, int]]:
    """Return (month, direction, base substance, partner, base mg) of certificates since a time.

    Imports are this country's import certificates (the partner is the exporting country);
    exports are the export authorizations it issued (the partner is the importing country).
    """
    sql = (
        "SELECT strftime('%Y-%m', d.issued_at, 'unixepoch') AS month, "
        "CASE WHEN d.doc_type = ? THEN 'import' ELSE 'export' END, "
        "i.base_substance, d.recipient, sum(i.base_mg) "
        "FROM documents d JOIN document_items i ON i.document_id = d.id "
        "WHERE d.issuer = ? AND d.doc_type IN (?, ?) AND d.issued_at >= ? "
        "AND d.state NOT IN ('cancelled') "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1"
    )
    async with store.read() as tx:
        rows = await tx.fetchall(sql, (CERTIFICATE, country, CERTIFICATE, AUTHORIZATION, since))
    return [(r[0], r[1], r[2], r[3], int(r[4])) for r in rows]
