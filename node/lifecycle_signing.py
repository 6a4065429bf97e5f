"""The lifecycle's steps: build a document from a body, check it, sign it and store it.

A mixin of :class:`permitnet.node.lifecycle.NodeServices`, kept apart so that each module stays
small. Drafts (:mod:`permitnet.node.lifecycle_drafts`) and the direct actions (a message, a paper
certificate) share these steps: building an import certificate, export authorization,
endorsement, export declaration, cancellation or message from its body and what it refers to,
applying the Convention rules with what this node holds, finding an estimate's shortfalls, and
signing and storing the document with its outbox row (closing what a cancellation or an
endorsement closes). It builds on :mod:`permitnet.node.lifecycle_queries`'s mixin, whose
authorized totals the estimate check reads.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

from permitnet.node import checks, drafting, receiving
from permitnet.node.errors import NotFoundError, ValidationError
from permitnet.node.lifecycle_queries import ACTIVE, CANCELLED, ENDORSED, QueriesMixin
from permitnet.protocol import rules
from permitnet.protocol.documents import (
    Cancellation,
    Document,
    Endorsement,
    ExportAuthorization,
    ExportDeclaration,
    ImportCertificate,
    Message,
)
from permitnet.protocol.errors import DocumentError, RuleViolation
from permitnet.protocol.signed import SignedDocument

if TYPE_CHECKING:
    from permitnet.node.keystore import SigningKey
    from permitnet.node.store import DocumentRecord, Tx
    from permitnet.protocol.catalogue import Catalogue

__all__ = ["SigningMixin"]


def _today(now: int) -> dt.date:
    return dt.datetime.fromtimestamp(now, tz=dt.UTC).date()


class SigningMixin(QueriesMixin):
    """Building, checking, signing and storing documents for :class:`NodeServices`."""

    authority: str
    signing_key: SigningKey
    catalogue: Catalogue

    # Building documents -------------------------------------------------------------------

    async def _referenced(self, tx: Tx, body: dict[str, Any], field: str) -> DocumentRecord:
        doc_id = drafting.parse_id(body.get(field), field)
        try:
            return await tx.get_document(doc_id)
        except NotFoundError as e:
            raise DocumentError(f"{field}: no document {doc_id} is stored at this node") from e

    async def _build(
        self, tx: Tx, doc_type: str, body: dict[str, Any], now: int
    ) -> tuple[Document, DocumentRecord | None]:
        """Build the document a draft body describes; return it and the record it refers to.

        The record (None for certificates and declarations) is read in ``tx``: checking the
        document before signing and choosing where it goes use it rather than read it again.
        """
        me, authority = self.country, self.authority
        match doc_type:
            case "import_certificate":
                return drafting.build_import_certificate(
                    body, issuer=me, authority=authority, issued_at=now
                ), None
            case "export_declaration":
                return drafting.build_export_declaration(
                    body, issuer=me, authority=authority, issued_at=now
                ), None
            case "export_authorization":
                ic = await self._referenced(tx, body, "import_certificate")
                certificate = drafting.decode_stored(ic)
                if not isinstance(certificate, ImportCertificate) or ic.direction == "outbound":
                    raise DocumentError(
                        "import_certificate: not an import certificate received from the "
                        "importing country"
                    )
                return drafting.build_export_authorization(
                    body,
                    certificate=certificate,
                    certificate_id=ic.id,
                    issuer=me,
                    authority=authority,
                    issued_at=now,
                ), ic
            case "endorsement":
                ea = await self._referenced(tx, body, "export_authorization")
                authorization = drafting.decode_stored(ea)
                if not isinstance(authorization, ExportAuthorization) or ea.direction != "inbound":
                    raise DocumentError(
                        "export_authorization: not an export authorization received from the "
                        "exporting country"
                    )
                return drafting.build_endorsement(
                    body,
                    authorization=authorization,
                    authorization_id=ea.id,
                    issuer=me,
                    authority=authority,
                    issued_at=now,
                ), ea
            case "cancellation":
                target = await self._referenced(tx, body, "document")
                if target.direction != "outbound" or target.issuer != self.country:
                    raise DocumentError(
                        "document: only documents this node issued can be cancelled"
                    )
                return drafting.build_cancellation(
                    body, target=target, issuer=me, authority=authority, issued_at=now
                ), target
            case "message":
                about = await self._referenced(tx, body, "about")
                return drafting.build_message(
                    body, about=about, issuer=me, authority=authority, issued_at=now
                ), about
        raise ValidationError(f"unknown document type {doc_type!r}; known: {drafting.DRAFT_TYPES}")

    # Checking and signing -----------------------------------------------------------------

    async def _check_before_signing(
        self, tx: Tx, document: Document, referenced: DocumentRecord | None
    ) -> None:
        """Apply the protocol's Convention rules, with what this node holds, before signing.

        ``referenced`` is the record the document refers to, as ``_build`` read it in ``tx``.
        """
        today = _today(tx.now)
        match document:
            case ImportCertificate():
                rules.check_import_certificate(document, today=today)
            case ExportAuthorization():
                assert referenced is not None  # _build read the certificate
                certificate = await receiving.check_authorization(
                    tx, document, referenced, exporting_country=self.country, today=today
                )
                checks.check_importer_estimate(
                    document, self.registry.require(), certificate.estimate_year
                )
            case Endorsement():
                assert referenced is not None  # _build read the authorization
                if referenced.state in {CANCELLED, ENDORSED}:
                    raise RuleViolation(
                        "authorization-closed", f"the export authorization is {referenced.state}"
                    )
                authorization = drafting.decode_stored(referenced)
                assert isinstance(authorization, ExportAuthorization)  # checked building it
                rules.check_endorsement(
                    document,
                    authorization,
                    authorization_id=bytes.fromhex(referenced.id),
                    today=today,
                )
            case ExportDeclaration():
                rules.check_export_declaration(document, catalogue=self.catalogue)
            case Cancellation():
                assert referenced is not None  # _build read the target
                if referenced.state == CANCELLED:
                    raise RuleViolation(
                        "already-cancelled", f"document {referenced.id} is already cancelled"
                    )
                rules.check_cancellation(
                    document,
                    drafting.decode_stored(referenced),
                    target_id=bytes.fromhex(referenced.id),
                )
            case Message():
                assert referenced is not None  # _build read what it is about
                rules.check_message(
                    document,
                    drafting.decode_stored(referenced),
                    about_id=bytes.fromhex(referenced.id),
                )

    async def _estimate_shortfalls(self, tx: Tx, certificate: ImportCertificate) -> list[str]:
        view = self.registry.require()
        requested = rules.base_totals(certificate.items)
        balances = {
            s: checks.balance_for(
                view,
                self.country,
                s,
                certificate.estimate_year,
                await self._authorized(tx, s, certificate.estimate_year),
            )
            for s in requested
        }
        return checks.estimate_shortfalls(requested, balances)

    async def _sign_and_store(
        self, tx: Tx, document: Document, referenced: DocumentRecord | None, *, actor: str
    ) -> DocumentRecord:
        signed = SignedDocument.sign(
            document, signing_key=self.signing_key.seed, kid=self.signing_key.kid
        )
        record = drafting.record_for(signed.raw, document, direction="outbound", state=ACTIVE)
        # A document about a paper certificate goes to no node: the partner has none, and the
        # authorization is printed instead.
        paper = referenced is not None and referenced.direction == "paper"
        peers = [] if paper else [record.recipient]
        await tx.insert_document(record, actor=actor, outbox_peers=peers)
        if isinstance(document, Cancellation):
            await tx.set_state(
                document.document.hex(),
                CANCELLED,
                actor=actor,
                detail={"cancellation": record.id, "reason": document.reason},
            )
        elif isinstance(document, Endorsement):
            await tx.set_state(
                document.export_authorization.hex(),
                ENDORSED,
                actor=actor,
                detail={"endorsement": record.id},
            )
        return dataclasses.replace(record, stored_at=tx.now)
