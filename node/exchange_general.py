"""The inbound pipeline's general path: each document of a group decided in the transaction.

:class:`GeneralPathMixin` is a base of ``permitnet.node.exchange.InboundPipeline``; its
methods run inside the one transaction of a group that is not all plain (``docs/exchange.md``
section 4). A document is a duplicate, held for stale registry data, refused, held until what
it refers to arrives, or applied: a plain one buffered for the bulk write, any other inside its
own savepoint, so that one failing document never undoes the others. Accepting documents
releases those waiting for them, in bounded rounds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from permitnet.node.errors import NodeError, StoreError
from permitnet.node.exchange_checks import verify_received
from permitnet.node.exchange_plain import CHUNK, Decision
from permitnet.protocol.documents import DeliveryReceipt, refers_to
from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.signed import SignedDocument, document_id

if TYPE_CHECKING:
    from permitnet.node.exchange_checks import ReceivedApplier
    from permitnet.node.exchange_plain import KnownIds
    from permitnet.node.registry_holder import RegistryHolder
    from permitnet.node.store import DocumentRecord, Tx

__all__ = ["GeneralPathMixin"]

# The pipeline's logger, not this module's: rejections are logged under the name they
# always had, so that log filters and alerts on it keep working.
log = logging.getLogger("permitnet.node.exchange")

#: Most pending documents one transaction releases when what they wait for arrives.
_MAX_RELEASE: Final = 1000


class GeneralPathMixin:
    """The general path's steps: decide, apply, reject, release; a base of ``InboundPipeline``."""

    _country: str
    _registry: RegistryHolder
    _applier: ReceivedApplier

    async def _decide(
        self,
        tx: Tx,
        state: KnownIds,
        raw: bytes,
        check: SignedDocument | str,
        from_peer: str | None,
        *,
        usable: bool,
    ) -> Decision:
        doc_id = document_id(raw)
        hex_id = doc_id.hex()
        issuer = check.document.issuer if isinstance(check, SignedDocument) else from_peer
        if hex_id in state.held:
            return Decision(raw, doc_id, "duplicate", "", issuer)
        if not usable:
            await tx.add_pending(
                hex_id, raw, reason="registry", from_peer=from_peer, error=str(check)
            )
            state.pending.add(hex_id)
            return Decision(raw, doc_id, "pending", "registry data is stale; held", issuer)
        reason = self._refusal(check)
        if reason is not None:
            return await self._reject(tx, state, raw, reason=reason, from_peer=from_peer)
        assert isinstance(check, SignedDocument)  # _refusal refuses every error text
        needed = refers_to(check.document)
        if needed is not None and needed.hex() not in state.held:
            await tx.add_pending(
                hex_id, raw, reason="dependency", waiting_for=needed.hex(), from_peer=from_peer
            )
            state.pending.add(hex_id)
            state.dependents_waiting = True
            reason = f"waiting for document {needed.hex()}, not received yet"
            return Decision(raw, doc_id, "pending", reason, issuer)
        error = await self._apply(tx, state, check, from_peer)
        if error is not None:
            return await self._reject(tx, state, raw, reason=error, from_peer=from_peer)
        return Decision(raw, doc_id, "accepted", "", issuer)

    def _refusal(self, check: SignedDocument | str) -> str | None:
        if isinstance(check, str):
            return check
        document = check.document
        if document.recipient != self._country:
            return f"addressed to {document.recipient}, this node is {self._country}"
        if isinstance(document, DeliveryReceipt):
            return "a delivery receipt answers a delivery; it is not delivered as a document"
        return None

    async def _apply(
        self, tx: Tx, state: KnownIds, signed: SignedDocument, from_peer: str | None
    ) -> str | None:
        try:
            record = self._applier.plain_record(signed)
        except ProtocolError as e:
            return f"{type(e).__name__}: {e}"
        if record is not None:
            state.plain.append(record)
        else:
            # What the lifecycle checks may read documents buffered for the bulk write.
            await self._flush(tx, state)
            # A savepoint per document: a rule that fails half-way leaves no partial rows
            # behind, and the rest of the batch still commits.
            await tx.execute("SAVEPOINT received")
            try:
                await self._applier.apply_received(tx, signed, from_peer=from_peer)
            except StoreError:
                # The database failed, not the document: the whole transaction is abandoned
                # and every request of it told so; nothing is rejected for it.
                await tx.execute("ROLLBACK TO received")
                await tx.execute("RELEASE received")
                raise
            except (ProtocolError, NodeError) as e:
                await tx.execute("ROLLBACK TO received")
                await tx.execute("RELEASE received")
                return f"{type(e).__name__}: {e}"
            except BaseException:
                await tx.execute("ROLLBACK TO received")
                await tx.execute("RELEASE received")
                raise
            await tx.execute("RELEASE received")
        if signed.id_hex in state.pending:
            await tx.remove_pending(signed.id_hex)
            state.pending.discard(signed.id_hex)
        state.held.add(signed.id_hex)
        state.accepted.append(signed.id_hex)
        return None

    async def _flush(self, tx: Tx, state: KnownIds) -> None:
        by_issuer: dict[str, list[DocumentRecord]] = {}
        for record in state.plain:
            by_issuer.setdefault(record.issuer, []).append(record)
        state.plain = []
        for issuer, records in by_issuer.items():
            await tx.insert_new_documents(records, actor=f"peer:{issuer}")

    async def _reject(
        self, tx: Tx, state: KnownIds, raw: bytes, *, reason: str, from_peer: str | None
    ) -> Decision:
        doc_id = document_id(raw)
        await tx.add_quarantine(raw, reason=reason, from_peer=from_peer)
        if doc_id.hex() in state.pending:
            await tx.remove_pending(doc_id.hex())
            state.pending.discard(doc_id.hex())
        log.warning("rejected document %s from %s: %s", doc_id.hex(), from_peer, reason)
        return Decision(raw, doc_id, "rejected", reason, from_peer)

    async def _release_dependents(self, tx: Tx, state: KnownIds) -> None:
        # Accepting documents may release a chain (authorization, then its endorsement ...):
        # rounds over a work list, not recursion, and bounded.
        view = self._registry.view
        released = 0
        if not state.dependents_waiting:
            # Nothing waits for anything: skip the query (the common case).
            state.accepted = []
        while state.accepted and released < _MAX_RELEASE and view is not None:
            arrived, state.accepted = state.accepted, []
            waiting = await self._waiting_for(tx, arrived)
            for doc_hex, raw, from_peer in waiting:
                released += 1
                state.pending.add(doc_hex)
                try:
                    signed = verify_received(raw, view, now=tx.now)
                except ProtocolError as e:
                    reason = f"{type(e).__name__}: {e}"
                    await self._reject(tx, state, raw, reason=reason, from_peer=from_peer)
                    continue
                error = await self._apply(tx, state, signed, from_peer)
                if error is not None:
                    await self._reject(tx, state, raw, reason=error, from_peer=from_peer)
            await self._flush(tx, state)

    async def _waiting_for(self, tx: Tx, arrived: list[str]) -> list[tuple[str, bytes, str | None]]:
        rows: list[tuple[str, bytes, str | None]] = []
        for start in range(0, len(arrived), CHUNK):
            chunk = arrived[start : start + CHUNK]
            marks = ",".join("?" * len(chunk))
            found = await tx.fetchall(
                "SELECT document_id, raw, from_peer FROM inbound_pending WHERE reason = "  # noqa: S608 - only placeholders are interpolated
                f"'dependency' AND waiting_for IN ({marks}) ORDER BY received_at",
                chunk,
            )
            rows.extend((r[0], bytes(r[1]), r[2]) for r in found)
        return rows
