"""Applying documents received from peers, after the exchange has verified them.

The exchange's receive pipeline (``permitnet.node.exchange.InboundPipeline``, for pushes and
pulls alike) verifies the signature with the registry's key for the issuing country and that the
document is addressed here, answers re-deliveries as duplicates, keeps a document whose
reference is not here yet in ``inbound_pending`` and releases it when that arrives. For each
document it applies, it calls :func:`apply_verified` inside its transaction: this module checks
what the Conventions require of the document against what this node holds, and stores it. A
document that breaks a rule raises :class:`RuleViolation`; the pipeline rolls it back,
quarantines it and answers with the reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from typing import TYPE_CHECKING

from permitnet.node import checks, drafting
from permitnet.protocol import rules
from permitnet.protocol.documents import (
    Cancellation,
    DeliveryReceipt,
    Endorsement,
    ExportAuthorization,
    ExportDeclaration,
    ImportCertificate,
    Message,
    refers_to,
)
from permitnet.protocol.errors import RuleViolation

if TYPE_CHECKING:
    from permitnet.node.lifecycle import NodeServices
    from permitnet.node.store import DocumentRecord, Tx
    from permitnet.protocol.documents import Document
    from permitnet.protocol.signed import SignedDocument

__all__ = [
    "apply_verified",
    "check_authorization",
    "check_plain",
    "dependency_of",
    "sha256_hex",
]


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def dependency_of(document: Document) -> str | None:
    """The id of the document this one must find already stored, if any.

    A delivery receipt is never applied as a received document, so it waits for nothing.
    """
    reference = None if isinstance(document, DeliveryReceipt) else refers_to(document)
    return None if reference is None else reference.hex()


async def check_authorization(
    tx: Tx,
    authorization: ExportAuthorization,
    certificate_record: DocumentRecord,
    *,
    exporting_country: str,
    today: dt.date,
) -> ImportCertificate:
    """Check an export authorization against its import certificate and earlier authorizations.

    Returns:
        The import certificate, decoded from ``certificate_record``.

    Raises:
        RuleViolation: the certificate is not one, is cancelled, expired or exhausted, or the
            authorization does not fit it.
    """
    certificate = drafting.decode_stored(certificate_record)
    if not isinstance(certificate, ImportCertificate):
        raise RuleViolation(
            "not-a-certificate", f"{certificate_record.id} is not an import certificate"
        )
    rows = await tx.fetchall(
        "SELECT d.id, i.substance, i.quantity_mg FROM documents d JOIN document_items i ON "
        "i.document_id = d.id WHERE d.doc_type = 'export_authorization' AND d.refers_to = ? "
        "AND d.issuer = ? AND d.state != 'cancelled'",
        (certificate_record.id, exporting_country),
    )
    already: dict[str, int] = defaultdict(int)
    for _, substance, quantity in rows:
        already[substance] += quantity
    if authorization.issuer != exporting_country:
        raise RuleViolation(
            "certificate-addressed-to-exporting-country",
            f"the authorization is issued by {authorization.issuer}, not {exporting_country}",
        )
    rules.check_export_authorization(
        authorization,
        certificate,
        certificate_id=bytes.fromhex(certificate_record.id),
        today=today,
        cancelled=certificate_record.state == "cancelled",
        authorized_mg=already,
        prior_authorizations=len({r[0] for r in rows}),
    )
    return certificate


def check_plain(document: ImportCertificate | ExportDeclaration) -> None:
    """The rules a received certificate or declaration must meet on its own (no store needed).

    Checked as at the document's own issue time: its dates are consistent and not in the
    future, the certificate was not already expired, its estimate year is within its validity;
    a declaration carries only substances that need no authorization.

    Raises:
        RuleViolation: the rule broken, with the numbers.
    """
    if isinstance(document, ImportCertificate):
        rules.check_import_certificate(document, today=_issue_day(document.issued_at))
    else:
        rules.check_export_declaration(document)


def _issue_day(issued_at: int) -> dt.date:
    return dt.datetime.fromtimestamp(issued_at, tz=dt.UTC).date()


async def apply_verified(tx: Tx, services: NodeServices, signed: SignedDocument) -> None:
    """Apply one verified document inside the caller's transaction (the batched receive path).

    The caller has checked that it is not stored yet and that what it refers to is stored;
    duplicates, pending documents and their release are the caller's business.

    Raises:
        RuleViolation: a rule fails; the caller rolls back (to its savepoint) and quarantines.
        NotFoundError: what it refers to is not stored.
    """
    await _apply(tx, services, signed)


async def _apply(tx: Tx, services: NodeServices, signed: SignedDocument) -> None:
    document = signed.document
    record = drafting.record_for(signed.raw, document, direction="inbound", state="active")
    actor = f"peer:{document.issuer}"
    match document:
        case ImportCertificate() | ExportDeclaration():
            check_plain(document)
            await tx.insert_document(record, actor=actor)
        case ExportAuthorization():
            ic = await tx.get_document(document.import_certificate.id.hex())
            if ic.direction != "outbound" or ic.issuer != services.country:
                raise RuleViolation(
                    "certificate-not-ours",
                    "the authorization cites a certificate this country did not issue",
                )
            # The certificate must have been valid on the day the authorization was issued.
            await check_authorization(
                tx,
                document,
                ic,
                exporting_country=document.issuer,
                today=_issue_day(document.issued_at),
            )
            await tx.insert_document(record, actor=actor)
        case Endorsement():
            await _apply_endorsement(tx, services, signed, document, record)
        case Cancellation():
            target = await tx.get_document(document.document.hex())
            rules.check_cancellation(
                document, drafting.decode_stored(target), target_id=bytes.fromhex(target.id)
            )
            await tx.insert_document(record, actor=actor)
            await tx.set_state(
                target.id,
                "cancelled",
                actor=actor,
                detail={"cancellation": record.id, "reason": document.reason},
            )
            await tx.raise_alert(
                "cancelled",
                target.id,
                f"{target.doc_type} {target.reference} "
                f"cancelled by {document.issuer}: {document.reason}",
            )
        case Message():
            about = await tx.get_document(document.about.hex())
            rules.check_message(
                document, drafting.decode_stored(about), about_id=bytes.fromhex(about.id)
            )
            await tx.insert_document(record, actor=actor)


async def _apply_endorsement(
    tx: Tx,
    services: NodeServices,
    signed: SignedDocument,
    endorsement: Endorsement,
    record: DocumentRecord,
) -> None:
    ea_record = await tx.get_document(endorsement.export_authorization.hex())
    authorization = drafting.decode_stored(ea_record)
    if not isinstance(authorization, ExportAuthorization) or ea_record.issuer != services.country:
        raise RuleViolation(
            "endorsement-not-ours",
            "the endorsement is not of an export authorization this country issued",
        )
    if ea_record.state == "endorsed":
        raise RuleViolation(
            "already-endorsed",
            f"export authorization {authorization.number} was already endorsed",
        )
    problems = checks.describe_discrepancies(
        rules.check_endorsement(
            endorsement, authorization, authorization_id=bytes.fromhex(ea_record.id)
        )
    )
    await tx.insert_document(record, actor=f"peer:{endorsement.issuer}")
    if ea_record.state == "cancelled":
        # The goods arrived under an authorization this country cancelled: keep the record,
        # leave the authorization cancelled, and make sure an official looks at it.
        await tx.raise_alert(
            "endorsed_after_cancellation",
            ea_record.id,
            f"{endorsement.issuer} endorsed export authorization {authorization.number}, "
            "which this country had cancelled",
        )
    else:
        await tx.set_state(
            ea_record.id,
            "endorsed",
            actor=f"peer:{endorsement.issuer}",
            detail={"endorsement": signed.id_hex},
        )
    if problems:
        await tx.raise_alert(
            "quantity_mismatch",
            ea_record.id,
            f"endorsement of export authorization {authorization.number} by "
            f"{endorsement.issuer}: " + "; ".join(problems),
        )
