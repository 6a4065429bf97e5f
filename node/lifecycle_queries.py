"""The lifecycle's read side and housekeeping: balances, alerts, overdue flags, document views.

A mixin of :class:`permitnet.node.lifecycle.NodeServices`, kept apart so that each module stays
small; it only reads the store and the registry view, or changes alert and overdue states.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from permitnet.node import checks, drafting
from permitnet.node.errors import NotFoundError

if TYPE_CHECKING:
    from permitnet.node.registry_holder import RegistryHolder
    from permitnet.node.store import Store, Tx

__all__ = ["ACTIVE", "CANCELLED", "ENDORSED", "OVERDUE", "Alert", "QueriesMixin"]

#: Document states the node uses.
ACTIVE: Final = "active"
CANCELLED: Final = "cancelled"
ENDORSED: Final = "endorsed"
OVERDUE: Final = "overdue"


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """Something an official must look at: a quantity mismatch, an overdue authorization."""

    id: int
    kind: str
    document_id: str
    message: str
    created_at: int
    acknowledged_at: int | None
    acknowledged_by: str | None

    def to_json(self) -> dict[str, Any]:
        """Return the alert as a JSON object."""
        return {
            "id": self.id,
            "kind": self.kind,
            "document_id": self.document_id,
            "message": self.message,
            "created_at": self.created_at,
            "acknowledged_at": self.acknowledged_at,
            "acknowledged_by": self.acknowledged_by,
        }


def _today(now: int) -> dt.date:
    return dt.datetime.fromtimestamp(now, tz=dt.UTC).date()


class QueriesMixin:
    """Balances, alerts, overdue flags and document views for :class:`NodeServices`."""

    store: Store
    country: str
    registry: RegistryHolder

    async def _authorized(self, tx: Tx, substance: str, year: int) -> int:
        row = await tx.fetchone(
            "SELECT coalesce(sum(i.base_mg), 0) FROM document_items i JOIN documents d "
            "ON d.id = i.document_id WHERE d.doc_type = 'import_certificate' AND "
            "d.direction = 'outbound' AND d.issuer = ? AND d.state != 'cancelled' AND "
            "d.estimate_year = ? AND i.base_substance = ?",
            (self.country, year, substance),
        )
        return int(row[0]) if row else 0

    async def balance(self, substance: str, year: int) -> checks.Balance:
        """The balance for one base substance and year."""
        view = self.registry.require()
        async with self.store.read() as tx:
            authorized = await self._authorized(tx, substance, year)
        return checks.balance_for(view, self.country, substance, year, authorized)

    async def balances(self, year: int) -> list[checks.Balance]:
        """Balances for every substance with an estimate or an authorization in ``year``."""
        view = self.registry.require()
        substances = {s for (c, s, y) in view.state.estimates if c == self.country and y == year}
        substances |= {s for (c, s) in view.state.assessments if c == self.country}
        async with self.store.read() as tx:
            rows = await tx.fetchall(
                "SELECT DISTINCT i.base_substance FROM document_items i JOIN documents d ON "
                "d.id = i.document_id WHERE d.doc_type = 'import_certificate' AND "
                "d.direction = 'outbound' AND d.estimate_year = ?",
                (year,),
            )
            substances |= {r[0] for r in rows}
            authorized = {s: await self._authorized(tx, s, year) for s in substances}
        return [
            checks.balance_for(view, self.country, s, year, authorized[s])
            for s in sorted(substances)
        ]

    async def list_alerts(self, *, include_acknowledged: bool = False) -> list[Alert]:
        """Alerts, newest first."""
        sql = (
            "SELECT id, kind, document_id, message, created_at, acknowledged_at, "
            "acknowledged_by FROM alerts"
        )
        if not include_acknowledged:
            sql += " WHERE acknowledged_at IS NULL"
        async with self.store.read() as tx:
            rows = await tx.fetchall(sql + " ORDER BY id DESC")
        return [
            Alert(
                id=r[0],
                kind=r[1],
                document_id=r[2],
                message=r[3],
                created_at=r[4],
                acknowledged_at=r[5],
                acknowledged_by=r[6],
            )
            for r in rows
        ]

    async def acknowledge_alert(self, alert_id: int, *, actor: str) -> None:
        """Mark an alert as seen.

        Raises:
            NotFoundError: no unacknowledged alert with this id.
        """
        async with self.store.transaction() as tx:
            changed = await tx.execute_rowcount(
                "UPDATE alerts SET acknowledged_at = ?, acknowledged_by = ? "
                "WHERE id = ? AND acknowledged_at IS NULL",
                (tx.now, actor, alert_id),
            )
            if changed != 1:
                raise NotFoundError(f"no unacknowledged alert {alert_id}")
            await tx.add_event(
                "alert",
                str(alert_id),
                from_state="raised",
                to_state="acknowledged",
                actor=actor,
                detail={},
            )
            await tx.audit(actor, "acknowledge alert", str(alert_id), {})

    async def flag_overdue(self) -> list[str]:
        """Flag export authorizations past their validity without an endorsement.

        Both sides run this on their own copy, so the exporter and the importer each see an
        ``overdue`` alert.

        Returns:
            The ids of the authorizations flagged now.
        """
        async with self.store.transaction() as tx:
            today = _today(tx.now).isoformat()
            rows = await tx.fetchall(
                "SELECT id, reference, valid_until FROM documents WHERE "
                "doc_type = 'export_authorization' AND state = ? AND valid_until < ?",
                (ACTIVE, today),
            )
            for doc_id, reference, valid_until in rows:
                await tx.set_state(
                    doc_id, OVERDUE, actor="node", detail={"valid_until": valid_until}
                )
                await tx.raise_alert(
                    "overdue",
                    doc_id,
                    f"export authorization {reference} expired on {valid_until} without an "
                    "endorsement",
                )
        return [r[0] for r in rows]

    async def document_json(self, document_id: str) -> dict[str, Any]:
        """A stored document as JSON, with its thread of messages and its deliveries.

        Raises:
            NotFoundError: no such document.
        """
        async with self.store.read() as tx:
            record = await tx.get_document(document_id)
            related = await tx.fetchall(
                "SELECT id, doc_type, issuer, issued_at FROM documents WHERE refers_to = ? "
                "ORDER BY issued_at, id",
                (document_id,),
            )
            deliveries = await tx.outbox_for_document(document_id)
            attachments = await tx.fetchall(
                "SELECT id, filename, media_type, sha256 FROM attachments WHERE document_id = ?",
                (document_id,),
            )
        result = drafting.document_json(record, drafting.decode_stored(record))
        result["related"] = [
            {"id": r[0], "type": r[1], "issuer": r[2], "issued_at": r[3]} for r in related
        ]
        result["deliveries"] = [
            {
                "peer": d.peer,
                "attempts": d.attempts,
                "delivered_at": d.delivered_at,
                "last_error": d.last_error,
                "receipt": d.receipt is not None,
            }
            for d in deliveries
        ]
        result["attachments"] = [
            {"id": a[0], "filename": a[1], "media_type": a[2], "sha256": a[3]} for a in attachments
        ]
        return result
