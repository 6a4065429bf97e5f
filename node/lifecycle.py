"""The node's domain services: drafts, four-eyes signing, balances, alerts, overdue flags.

Thin async services: they read the store and the registry view, call the pure checks in
:mod:`permitnet.node.checks` and the protocol's document classes, sign with the node's key, and
write the signed bytes, their outbox row, events and audit rows in one transaction. The acting
user (a web user or an API token's actor) is always passed in; a draft is never signed by the
person who prepared it.

The methods are grouped in mixins, each in its own module: the drafts and their approval in
:mod:`permitnet.node.lifecycle_drafts`, building, checking and signing a document in
:mod:`permitnet.node.lifecycle_signing`, and the read side (balances, alerts, overdue flags,
document views) in :mod:`permitnet.node.lifecycle_queries`. This module holds the class itself
and the direct actions (a message, a paper certificate). Import the names from here.

Documents received from peers are applied by :mod:`permitnet.node.receiving`, inside the
exchange's receive pipeline, after it has verified them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from permitnet.node import drafting, receiving
from permitnet.node.errors import ConflictError, ValidationError
from permitnet.node.lifecycle_drafts import ApprovalResult, Draft, DraftsMixin
from permitnet.node.lifecycle_queries import ACTIVE, CANCELLED, ENDORSED, OVERDUE, Alert
from permitnet.protocol.catalogue import DEFAULT_CATALOGUE
from permitnet.protocol.errors import DocumentError

if TYPE_CHECKING:
    from permitnet.node.keystore import SigningKey
    from permitnet.node.registry_holder import RegistryHolder
    from permitnet.node.store import DocumentRecord, Store

__all__ = [
    "ACTIVE",
    "CANCELLED",
    "ENDORSED",
    "OVERDUE",
    "Alert",
    "ApprovalResult",
    "Draft",
    "NodeServices",
]


class NodeServices(DraftsMixin):
    """The lifecycle of one country's documents. One instance per running node."""

    def __init__(
        self,
        *,
        store: Store,
        country: str,
        authority: str,
        signing_key: SigningKey,
        registry: RegistryHolder,
    ) -> None:
        self.store = store
        self.country = country
        self.authority = authority
        self.signing_key = signing_key
        self.registry = registry
        self.catalogue = DEFAULT_CATALOGUE

    # Direct actions -----------------------------------------------------------------------

    async def send_message(self, body: object, *, actor: str) -> DocumentRecord:
        """Sign and send a message about a stored document to the other authority.

        Raises:
            ValidationError: the body is not an object.
            DocumentError: a field is missing or invalid, or the document is unknown.
        """
        if not isinstance(body, dict):
            raise ValidationError("the request body must be a JSON object")
        async with self.store.transaction() as tx:
            document, about = await self._build(tx, "message", body, tx.now)
            await self._check_before_signing(tx, document, about)
            return await self._sign_and_store(tx, document, about, actor=actor)

    async def record_paper_certificate(
        self,
        body: object,
        *,
        scan: bytes,
        media_type: str,
        filename: str,
        actor: str,
    ) -> DocumentRecord:
        """Record by hand a paper import certificate from a partner country without a node.

        It is stored as not electronically verified, with the scan attached, and export
        authorizations may then be issued against it for printing.

        Raises:
            ValidationError: no scan, or a body that is not an object.
            DocumentError: a field is missing or invalid.
        """
        if not isinstance(body, dict):
            raise ValidationError("the request body must be a JSON object")
        if not scan:
            raise ValidationError("scan: the scanned paper certificate is required")
        fields = dict(body)
        issuer, authority = fields.pop("issuer", None), fields.pop("authority", None)
        if not isinstance(authority, str):
            raise DocumentError("authority: the issuing authority's name is required")
        if fields.get("exporting_country", self.country) != self.country:
            raise DocumentError(
                f"exporting_country: a paper certificate recorded here is for {self.country}"
            )
        fields["exporting_country"] = self.country
        async with self.store.transaction() as tx:
            certificate = drafting.build_import_certificate(
                fields, issuer=str(issuer), authority=authority, issued_at=tx.now
            )
            raw = certificate.to_cbor()
            record = drafting.record_for(
                raw, certificate, direction="paper", state=ACTIVE, electronically_verified=False
            )
            if not await tx.insert_document(record, actor=actor):
                raise ConflictError(f"this paper certificate is already recorded as {record.id}")
            await tx.execute(
                "INSERT INTO attachments (document_id, filename, media_type, sha256, content, "
                "added_by, added_at) VALUES (?,?,?,?,?,?,?)",
                (record.id, filename, media_type, receiving.sha256_hex(scan), scan, actor, tx.now),
            )
            return await tx.get_document(record.id)
