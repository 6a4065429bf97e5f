"""An open write transaction of the node's store, and what it can do.

:class:`Tx` is what :meth:`permitnet.node.store.Store.transaction` yields: every method runs
inside that one transaction, on the store's connection. Its exchange methods (outbox, pending,
quarantine, nonces) come from :mod:`permitnet.node.store_exchange`'s mixin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from permitnet.node import audit
from permitnet.node.errors import NotFoundError
from permitnet.node.store_exchange import ExchangeMixin
from permitnet.node.store_rows import (
    DOC_COLUMNS,
    DocumentItem,
    DocumentRecord,
    insert_document_on,
    insert_new_documents_on,
    row_to_record,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import aiosqlite

__all__ = ["Tx"]


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
        seqs = await self.run(insert_document_on, record, actor=actor, now=self.now, peers=peers)
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
            f"SELECT {DOC_COLUMNS} FROM documents WHERE id = ?",  # noqa: S608 - fixed column list
            (document_id,),
        )
        if row is None:
            raise NotFoundError(f"no document {document_id}")
        items = await self.fetchall(
            "SELECT substance, base_substance, quantity_mg, base_mg FROM document_items "
            "WHERE document_id = ? ORDER BY item_index",
            (document_id,),
        )
        return row_to_record(
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
            f"SELECT {DOC_COLUMNS} FROM documents WHERE id IN ({marks})",  # noqa: S608 - marks only
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
        by_id = {row[0]: row_to_record(row, tuple(items.get(row[0], ()))) for row in rows}
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
