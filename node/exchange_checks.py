"""What the inbound pipeline checks and calls: verification, dependencies, lifecycle, receipts.

Split from :mod:`permitnet.node.exchange` so that the pipeline module stays about the order of
decisions and the transaction; everything here is reachable from there too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from permitnet.node import drafting, receiving
from permitnet.node.errors import NodeError
from permitnet.node.lifecycle import ACTIVE
from permitnet.protocol.cbor import encode_cbor
from permitnet.protocol.cose import Sign1Signer
from permitnet.protocol.documents import (
    DeliveryReceipt,
    ExportDeclaration,
    ImportCertificate,
)
from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.registry_verify import verify_document
from permitnet.protocol.signed import CONTENT_TYPE
from permitnet.protocol.signed import SignedDocument as _SignedDocument

if TYPE_CHECKING:
    from collections.abc import Callable

    from permitnet.node.keystore import SigningKey
    from permitnet.node.lifecycle import NodeServices
    from permitnet.node.registry_holder import RegistryHolder
    from permitnet.node.store import DocumentRecord, Tx
    from permitnet.protocol.registry_view import RegistryView

__all__ = [
    "LifecycleApplier",
    "ReceiptError",
    "ReceiptSigner",
    "ReceivedApplier",
    "check_receipt",
    "make_receipt_verifier",
    "verify_received",
]


class ReceiptError(NodeError):
    """A delivery receipt that does not prove what the peer says it proves."""

    status_hint = 502
    code = "bad_receipt"


class ReceivedApplier(Protocol):
    """The lifecycle's entry points for a verified document received from a peer."""

    def plain_record(self, signed: _SignedDocument) -> DocumentRecord | None:
        """Return the record to store if the document needs nothing the node holds to check it.

        Such documents (import certificates, export declarations) are checked on their own and
        stored in bulk with ``Tx.insert_new_documents``; others go through
        :meth:`apply_received`.

        Raises:
            RuleViolation: the document breaks a Convention rule on its own.
        """

    async def apply_received(
        self, tx: Tx, signed: _SignedDocument, *, from_peer: str | None
    ) -> None:
        """Apply a verified document addressed to this node inside ``tx``; store its bytes.

        Raises:
            ProtocolError: a Convention rule fails (``RuleViolation``) or the document does not
                fit what this node holds; the document is then rejected and quarantined.
            NodeError: same meaning, from the node's own checks.
        """


def verify_received(raw: bytes, view: RegistryView, *, now: int) -> _SignedDocument:
    """Verify a received document against the registry: key, signature, schema, signer.

    Raises:
        ProtocolError: the bytes are malformed, the key is unknown, revoked at signing time,
            outside its validity or another country's, the signature fails, the issue time is
            in the future, or the payload is not a valid document.
    """
    return verify_document(raw, view, now=now)


class LifecycleApplier:
    """Applies received documents with the node's lifecycle, inside the pipeline's transaction.

    The per-document step, ``receiving.apply_verified``, runs inside the pipeline's own group
    transaction (group commit); the duplicate, pending and release logic around it is the
    pipeline's. :meth:`plain_record` mirrors ``_apply``'s first case
    (certificates and declarations are stored as received); ``tests/node/test_exchange.py``
    checks that both paths write the same rows.
    """

    def __init__(self, services: NodeServices) -> None:
        self._services = services

    def plain_record(self, signed: _SignedDocument) -> DocumentRecord | None:
        """Return the inbound record of a certificate or declaration, else None.

        The rules such a document must meet on its own (``receiving.check_plain``) are checked
        here, as ``_apply`` does: the bulk path must not be a way around them.

        Raises:
            RuleViolation: the document breaks a Convention rule.
        """
        document = signed.document
        if isinstance(document, ImportCertificate | ExportDeclaration):
            receiving.check_plain(document)
            return drafting.record_for(signed.raw, document, direction="inbound", state=ACTIVE)
        return None

    async def apply_received(
        self, tx: Tx, signed: _SignedDocument, *, from_peer: str | None
    ) -> None:
        """Check the Convention rules against what this node holds and store the document.

        Raises:
            RuleViolation: a rule fails; the caller rolls back to its savepoint.
        """
        del from_peer  # the lifecycle records the issuer as the actor
        await receiving.apply_verified(tx, self._services, signed)


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
        _, document = check_receipt(receipt, view, peer=peer, country=country, now=now)
        if document.document != doc_id:
            raise ReceiptError("receipt names another document")
        return document.status

    return verify


def check_receipt(
    raw: bytes, view: RegistryView, *, peer: str, country: str, now: int
) -> tuple[bytes, DeliveryReceipt]:
    """Check a peer's signed receipt, pushed back (delivery) or posted after a pull.

    It must verify with a key the registry lists for ``peer`` and be a delivery receipt
    issued by ``peer`` to ``country``.

    Returns:
        The receipt's own identifier and the receipt.

    Raises:
        ReceiptError: any of these does not hold; the message says which.
    """
    try:
        signed = verify_received(raw, view, now=now)
    except ProtocolError as e:
        raise ReceiptError(f"receipt does not verify: {e}") from e
    document = signed.document
    if not isinstance(document, DeliveryReceipt):
        raise ReceiptError(
            f"a {document.DOCUMENT_TYPE} is not a delivery receipt "
            f"(expected a delivery receipt from {peer})"
        )
    if document.issuer != peer or document.recipient != country:
        raise ReceiptError(
            f"receipt from {document.issuer} to {document.recipient}, "
            f"expected from {peer} to {country}"
        )
    return signed.id, document


#: Bytes in a document identifier (SHA-256).
_ID_SIZE = 32


class ReceiptSigner:
    """Signs this node's delivery receipts, one per received document.

    ``SignedDocument.sign`` reads every document back through its schema before signing it
    (about a third of a receipt's cost). An ``accepted`` receipt differs from another one for
    the same counterpart and second only in the 32-byte identifier it names, which the schema
    accepts whatever its value; so the first such receipt of each (counterpart, second) goes
    through the full check and its payload becomes the template of the others, which are
    signed directly with the id put in. Rejections (free-text reasons)
    always take the full path. The bytes are the same either way (Ed25519 is deterministic).
    """

    def __init__(self, *, country: str, authority: str, key: SigningKey) -> None:
        self._country = country
        self._authority = authority
        self._key = key
        #: The second the receipts in ``_templates`` were checked for.
        self._checked_at: int | None = None
        #: Per counterpart, the checked payload of an accepted receipt of that second, split
        #: around the document id (the only part that differs between them).
        self._templates: dict[str, tuple[bytes, bytes]] = {}
        self._signer = Sign1Signer(key.seed, key.kid, content_type=CONTENT_TYPE)

    def sign(self, doc_id: bytes, *, status: str, reason: str, counterpart: str, now: int) -> bytes:
        """Return a signed delivery receipt for ``doc_id`` addressed to ``counterpart``.

        Raises:
            DocumentError: the receipt would not be valid (e.g. a rejection without reason).
        """
        accepted = status == "accepted" and not reason
        if accepted and isinstance(doc_id, bytes) and len(doc_id) == _ID_SIZE:
            template = self._templates.get(counterpart) if self._checked_at == now else None
            if template is not None:
                return self._signer.sign(template[0] + doc_id + template[1])
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
        signed = _SignedDocument.sign(receipt, signing_key=self._key.seed, kid=self._key.kid)
        if accepted:
            # Checked: keep its payload as the template of this counterpart and second.
            payload = encode_cbor(receipt.to_payload())
            encoded_id = b"\x58\x20" + doc_id
            if payload.count(encoded_id) == 1:
                before, after = payload.split(encoded_id)
                if self._checked_at != now:
                    self._checked_at, self._templates = now, {}
                self._templates[counterpart] = (before + b"\x58\x20", after)
        return signed.raw
