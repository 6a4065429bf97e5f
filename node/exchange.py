"""The inbound pipeline: what a node does with each document a peer pushes, or it pulls.

For every document, in this order (``docs/exchange.md`` section 4):

1. already held -> ``duplicate`` (nothing changes; a fresh signed receipt is returned);
2. the registry data is past its grace period -> kept in ``inbound_pending`` (``registry``);
3. the signature, with the key the registry lists for the issuing country, valid at
   ``issued_at``; the schema; that it is addressed to this node's country -> else ``rejected``
   and kept in quarantine;
4. what it refers to is held -> else kept in ``inbound_pending`` (``dependency``), and applied
   as soon as that document is accepted;
5. the lifecycle applies it (Convention rules; storing the exact bytes) -> ``accepted``, or
   ``rejected`` and quarantined when a rule fails.

A whole batch is decided in one database transaction (group commit), each document inside its
own savepoint, so that a failing document never undoes the others. Receipts are signed after
the commit: a peer never holds a receipt for something this node could still lose.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from permitnet.node import receiving
from permitnet.node.errors import NodeError
from permitnet.node.peer_wire import DocumentResult, Outcome
from permitnet.protocol.documents import (
    Cancellation,
    DeliveryReceipt,
    Document,
    Endorsement,
    ExportAuthorization,
    Message,
)
from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.registry_verify import verify_document
from permitnet.protocol.signed import SignedDocument, document_id

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from permitnet.node.keystore import SigningKey
    from permitnet.node.lifecycle import NodeServices
    from permitnet.node.registry_holder import RegistryHolder
    from permitnet.node.store import Store, Tx
    from permitnet.protocol.registry_view import RegistryView

__all__ = [
    "DEFAULT_REGISTRY_GRACE_SECONDS",
    "InboundPipeline",
    "LifecycleApplier",
    "ReceiptError",
    "ReceivedApplier",
    "make_receipt_verifier",
    "referenced_document",
    "verify_received",
]

log = logging.getLogger(__name__)

#: How long past its expiry the node keeps using registry data to accept documents.
DEFAULT_REGISTRY_GRACE_SECONDS: Final = 7 * 24 * 3600
#: Most pending documents released by one accepted document in one transaction.
_MAX_RELEASE: Final = 1000


class ReceiptError(NodeError):
    """A delivery receipt that does not prove what the peer says it proves."""

    status_hint = 502
    code = "bad_receipt"


class ReceivedApplier(Protocol):
    """The lifecycle's entry point for a verified document received from a peer."""

    async def apply_received(
        self, tx: Tx, signed: SignedDocument, *, from_peer: str | None
    ) -> None:
        """Apply a verified document addressed to this node inside ``tx``; store its bytes.

        Raises:
            ProtocolError: a Convention rule fails (``RuleViolation``) or the document does not
                fit what this node holds; the document is then rejected and quarantined.
            NodeError: same meaning, from the node's own checks.
        """


def referenced_document(document: Document) -> bytes | None:
    """Return the id of the document ``document`` depends on, if any."""
    if isinstance(document, ExportAuthorization):
        return document.import_certificate.id
    if isinstance(document, Endorsement):
        return document.export_authorization
    if isinstance(document, Cancellation | DeliveryReceipt):
        return document.document
    if isinstance(document, Message):
        return document.about
    return None


def verify_received(raw: bytes, view: RegistryView, *, now: int) -> SignedDocument:
    """Verify a received document against the registry: key, signature, schema, signer.

    Raises:
        ProtocolError: the bytes are malformed, the key is unknown, revoked at signing time,
            outside its validity or another country's, the signature fails, the issue time is
            in the future, or the payload is not a valid document.
    """
    return verify_document(raw, view, now=now)


class LifecycleApplier:
    """Applies received documents with the node's lifecycle, inside the pipeline's transaction.

    The lifecycle's public ``apply_received`` opens a transaction per document; the pipeline
    needs the per-document step inside its own batch transaction (group commit), which is the
    lifecycle's ``_apply``. The duplicate, pending and release logic it wraps around that step
    is done by the pipeline itself.
    """

    def __init__(self, services: NodeServices) -> None:
        self._services = services

    async def apply_received(
        self, tx: Tx, signed: SignedDocument, *, from_peer: str | None
    ) -> None:
        """Check the Convention rules against what this node holds and store the document.

        Raises:
            RuleViolation: a rule fails; the caller rolls back to its savepoint.
        """
        del from_peer  # the lifecycle records the issuer as the actor
        await receiving._apply(tx, self._services, signed)  # noqa: SLF001 - see the class docstring


@dataclass(frozen=True, slots=True)
class _Decision:
    raw: bytes
    id: bytes
    outcome: Outcome
    reason: str
    #: Who the receipt is addressed to: the document's issuer, else the pushing peer.
    counterpart: str | None


class InboundPipeline:
    """Decides, stores and acknowledges received documents (push and pull share it)."""

    def __init__(
        self,
        *,
        store: Store,
        country: str,
        authority: str,
        signing_key: SigningKey,
        registry: RegistryHolder,
        applier: ReceivedApplier,
        clock: Callable[[], int],
        grace_seconds: int = DEFAULT_REGISTRY_GRACE_SECONDS,
    ) -> None:
        self._store = store
        self._country = country
        self._authority = authority
        self._key = signing_key
        self._registry = registry
        self._applier = applier
        self._clock = clock
        self._grace = grace_seconds

    def registry_usable(self, now: int) -> bool:
        """Whether the registry data may be used to accept documents (within grace)."""
        view = self._registry.view
        return view is not None and now < view.expires_at + self._grace

    async def receive(
        self,
        raws: Sequence[bytes],
        *,
        from_peer: str | None,
        nonce: tuple[bytes, bytes, int] | None = None,
    ) -> list[DocumentResult]:
        """Decide every document of a batch in one transaction; return signed results.

        Args:
            raws: the exact signed bytes of each document, in the order received.
            from_peer: the authenticated sending country (None for local imports).
            nonce: the request's (kid, nonce, expires_at), persisted in the same transaction
                so that a replay is refused even after a restart.
        """
        now = self._clock()
        usable = self.registry_usable(now)
        view = self._registry.view
        # Verification is CPU work done before taking the store's writer lock.
        verified: list[SignedDocument | str] = []
        for raw in raws:
            if not usable or view is None:
                verified.append("registry data is past its grace period")
                continue
            try:
                verified.append(verify_received(raw, view, now=now))
            except ProtocolError as e:
                verified.append(f"{type(e).__name__}: {e}")
        decisions: list[_Decision] = []
        async with self._store.transaction() as tx:
            if nonce is not None:
                await tx.execute(
                    "INSERT INTO nonces (key_id, nonce, seen_at, expires_at) VALUES (?,?,?,?)",
                    (nonce[0].hex(), nonce[1].hex(), tx.now, nonce[2]),
                )
            for raw, check in zip(raws, verified, strict=True):
                decisions.append(await self._decide(tx, raw, check, from_peer, usable=usable))
        return [self._result(d, now) for d in decisions]

    async def _decide(
        self,
        tx: Tx,
        raw: bytes,
        check: SignedDocument | str,
        from_peer: str | None,
        *,
        usable: bool,
    ) -> _Decision:
        doc_id = document_id(raw)
        hex_id = doc_id.hex()
        issuer = check.document.issuer if isinstance(check, SignedDocument) else from_peer
        if await tx.has_document(hex_id):
            return _Decision(raw, doc_id, "duplicate", "", issuer)
        if not usable:
            await tx.add_pending(
                hex_id, raw, reason="registry", from_peer=from_peer, error=str(check)
            )
            return _Decision(raw, doc_id, "pending", "registry data is stale; held", issuer)
        if isinstance(check, str):
            return await self._reject(tx, raw, reason=check, from_peer=from_peer, issuer=issuer)
        document = check.document
        if document.recipient != self._country:
            reason = f"addressed to {document.recipient}, this node is {self._country}"
            return await self._reject(tx, raw, reason=reason, from_peer=from_peer, issuer=issuer)
        if isinstance(document, DeliveryReceipt):
            reason = "a delivery receipt answers a delivery; it is not delivered as a document"
            return await self._reject(tx, raw, reason=reason, from_peer=from_peer, issuer=issuer)
        needed = referenced_document(document)
        if needed is not None and not await tx.has_document(needed.hex()):
            await tx.add_pending(
                hex_id, raw, reason="dependency", waiting_for=needed.hex(), from_peer=from_peer
            )
            reason = f"waiting for document {needed.hex()}, not received yet"
            return _Decision(raw, doc_id, "pending", reason, issuer)
        error = await self._apply(tx, check, from_peer)
        if error is not None:
            return await self._reject(tx, raw, reason=error, from_peer=from_peer, issuer=issuer)
        await self._release_dependents(tx, hex_id)
        return _Decision(raw, doc_id, "accepted", "", issuer)

    async def _apply(self, tx: Tx, signed: SignedDocument, from_peer: str | None) -> str | None:
        # A savepoint per document: a rule that fails half-way leaves no partial rows behind,
        # and the rest of the batch still commits.
        await tx.execute("SAVEPOINT received")
        try:
            await self._applier.apply_received(tx, signed, from_peer=from_peer)
        except (ProtocolError, NodeError) as e:
            await tx.execute("ROLLBACK TO received")
            await tx.execute("RELEASE received")
            return f"{type(e).__name__}: {e}"
        except BaseException:
            await tx.execute("ROLLBACK TO received")
            await tx.execute("RELEASE received")
            raise
        await tx.execute("RELEASE received")
        await tx.remove_pending(signed.id_hex)
        return None

    async def _reject(
        self, tx: Tx, raw: bytes, *, reason: str, from_peer: str | None, issuer: str | None
    ) -> _Decision:
        doc_id = document_id(raw)
        await tx.add_quarantine(raw, reason=reason, from_peer=from_peer)
        await tx.remove_pending(doc_id.hex())
        log.warning("rejected document %s from %s: %s", doc_id.hex(), from_peer, reason)
        return _Decision(raw, doc_id, "rejected", reason, issuer)

    async def _release_dependents(self, tx: Tx, accepted_id: str) -> None:
        # Accepting one document may release a chain (authorization, then its endorsement ...):
        # a work list, not recursion, and bounded.
        queue = [accepted_id]
        released = 0
        view = self._registry.view
        while queue and released < _MAX_RELEASE and view is not None:
            waiting = await tx.pending(reason="dependency", waiting_for=queue.pop())
            for entry in waiting:
                released += 1
                try:
                    signed = verify_received(entry.raw, view, now=tx.now)
                except ProtocolError as e:
                    await self._reject(
                        tx,
                        entry.raw,
                        reason=f"{type(e).__name__}: {e}",
                        from_peer=entry.from_peer,
                        issuer=entry.from_peer,
                    )
                    continue
                error = await self._apply(tx, signed, entry.from_peer)
                if error is not None:
                    await self._reject(
                        tx,
                        entry.raw,
                        reason=error,
                        from_peer=entry.from_peer,
                        issuer=entry.from_peer,
                    )
                    continue
                queue.append(entry.document_id)

    async def retry_pending(self) -> int:
        """Re-decide documents held for stale registry data, now that it may be fresh.

        Returns:
            How many documents were decided (accepted, rejected, or held for a dependency).
        """
        now = self._clock()
        if not self.registry_usable(now):
            return 0
        async with self._store.read() as tx:
            waiting = await tx.pending(reason="registry")
        if not waiting:
            return 0
        by_peer: dict[str | None, list[bytes]] = {}
        for entry in waiting:
            by_peer.setdefault(entry.from_peer, []).append(entry.raw)
        decided = 0
        for peer, raws in by_peer.items():
            async with self._store.transaction() as tx:
                # Remove first, so that _decide sees a fresh document, not a pending one.
                for raw in raws:
                    await tx.remove_pending(document_id(raw).hex())
            decided += len(await self.receive(raws, from_peer=peer))
        return decided

    def _result(self, decision: _Decision, now: int) -> DocumentResult:
        receipt = b""
        if decision.outcome != "pending" and decision.counterpart not in {None, self._country}:
            status = "rejected" if decision.outcome == "rejected" else "accepted"
            receipt = self.sign_receipt(
                decision.id,
                status=status,
                reason=decision.reason if status == "rejected" else "",
                counterpart=decision.counterpart or "",
                now=now,
            )
        return DocumentResult(
            document_id=decision.id,
            outcome=decision.outcome,
            reason=decision.reason,
            receipt=receipt,
        )

    def sign_receipt(
        self, doc_id: bytes, *, status: str, reason: str, counterpart: str, now: int
    ) -> bytes:
        """Sign this node's delivery receipt for a document, addressed to ``counterpart``."""
        receipt = DeliveryReceipt(
            issuer=self._country,
            recipient=counterpart,
            issued_at=now,
            authority=self._authority,
            document=doc_id,
            status=status,
            reason=reason[:2000],
            received_at=now,
        )
        return SignedDocument.sign(receipt, signing_key=self._key.seed, kid=self._key.kid).raw


def make_receipt_verifier(
    registry: RegistryHolder, country: str
) -> Callable[[bytes, bytes, str, int], str]:
    """Return a check of a peer's receipt that returns its status (``accepted``/``rejected``).

    The receipt must verify with a key the registry lists for ``peer``, be issued by ``peer``
    to this node's ``country``, and name the document that was sent.
    """

    def verify(receipt: bytes, doc_id: bytes, peer: str, now: int) -> str:
        view = registry.view
        if view is None:
            raise ReceiptError("no registry data to check the receipt's signature")
        try:
            signed = verify_received(receipt, view, now=now)
        except ProtocolError as e:
            raise ReceiptError(f"receipt does not verify: {e}") from e
        document = signed.document
        if not isinstance(document, DeliveryReceipt):
            raise ReceiptError(f"expected a delivery receipt, got a {document.DOCUMENT_TYPE}")
        if document.issuer != peer or document.recipient != country:
            raise ReceiptError(
                f"receipt from {document.issuer} to {document.recipient}, "
                f"expected from {peer} to {country}"
            )
        if document.document != doc_id:
            raise ReceiptError("receipt names another document")
        return document.status

    return verify
