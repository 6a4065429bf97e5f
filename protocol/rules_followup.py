"""Rules for the documents that follow an authorization: endorsement, cancellation, notices.

Also the export declaration's rule (1971 art. 12(2)): it is only for substances whose regime
needs no import certificate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from permitnet.protocol.catalogue import DEFAULT_CATALOGUE, Catalogue
from permitnet.protocol.rules_base import violation

if TYPE_CHECKING:
    import datetime as dt

    from permitnet.protocol.documents import (
        Cancellation,
        DeliveryReceipt,
        Document,
        Endorsement,
        ExportAuthorization,
        ExportDeclaration,
        Message,
    )

__all__ = [
    "Discrepancy",
    "check_cancellation",
    "check_delivery_receipt",
    "check_endorsement",
    "check_export_declaration",
    "check_message",
    "discrepancies",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Discrepancy:
    """A difference between what an authorization allowed and what was received.

    Attributes:
        line: the zero-based line of the export authorization.
        substance: the substance as traded.
        authorized_mg: the quantity authorized, as traded.
        received_mg: the quantity endorsed as received.
        difference_mg: received minus authorized (negative: less arrived than authorized).
    """

    line: int
    substance: str
    authorized_mg: int
    received_mg: int
    difference_mg: int


def discrepancies(
    authorization: ExportAuthorization, endorsement: Endorsement
) -> list[Discrepancy]:
    """Compare an export authorization with its endorsement, line by line.

    A line the endorsement does not mention counts as nothing received.

    Returns:
        The lines whose received quantity differs from the authorized one, in line order.

    Raises:
        RuleViolation: ``endorsement-line`` for a line number the authorization does not
            have, or whose substance differs from the authorization's.
    """
    received: dict[int, int] = {}
    for entry in endorsement.received:
        if entry.line >= len(authorization.items):
            raise violation(
                "endorsement-line",
                f"line {entry.line} is endorsed but authorization "
                f"{authorization.number} has {len(authorization.items)} line(s)",
            )
        expected = authorization.items[entry.line].substance
        if entry.substance != expected:
            raise violation(
                "endorsement-line",
                f"line {entry.line} is endorsed as {entry.substance} but the authorization "
                f"has {expected}",
            )
        received[entry.line] = entry.quantity_mg
    result = []
    for line, item in enumerate(authorization.items):
        got = received.get(line, 0)
        if got != item.quantity_mg:
            result.append(
                Discrepancy(
                    line=line,
                    substance=item.substance,
                    authorized_mg=item.quantity_mg,
                    received_mg=got,
                    difference_mg=got - item.quantity_mg,
                )
            )
    return result


def check_endorsement(
    endorsement: Endorsement,
    authorization: ExportAuthorization,
    *,
    authorization_id: bytes,
    today: dt.date | None = None,
) -> list[Discrepancy]:
    """Check that an endorsement belongs to an authorization, and return the discrepancies.

    Args:
        endorsement: the endorsement.
        authorization: the export authorization it endorses.
        authorization_id: that authorization's document identifier.
        today: if given, the current date: a receipt dated after it is refused.

    Raises:
        RuleViolation: ``endorsement-reference``, ``endorsement-by-importing-country``,
            ``received-before-authorization``, ``dated-in-future`` or ``endorsement-line``.
    """
    if endorsement.export_authorization != authorization_id:
        raise violation(
            "endorsement-reference",
            f"the endorsement refers to {endorsement.export_authorization.hex()}, not "
            f"{authorization_id.hex()}",
        )
    if endorsement.export_authorization_number != authorization.number:
        raise violation(
            "endorsement-reference",
            f"the endorsement gives number {endorsement.export_authorization_number}, the "
            f"authorization is {authorization.number}",
        )
    if (endorsement.issuer, endorsement.recipient) != (
        authorization.recipient,
        authorization.issuer,
    ):
        raise violation(
            "endorsement-by-importing-country",
            f"endorsement from {endorsement.issuer} to {endorsement.recipient}; the "
            f"authorization is from {authorization.issuer} to {authorization.recipient}",
        )
    if endorsement.date_received < authorization.date_of_issue:
        raise violation(
            "received-before-authorization",
            f"received on {endorsement.date_received.isoformat()}, before authorization "
            f"{authorization.number} of {authorization.date_of_issue.isoformat()}",
        )
    if today is not None and endorsement.date_received > today:
        raise violation(
            "dated-in-future",
            f"received on {endorsement.date_received.isoformat()}; today is {today.isoformat()}",
        )
    return discrepancies(authorization, endorsement)


def check_cancellation(cancellation: Cancellation, target: Document, *, target_id: bytes) -> None:
    """Check that a cancellation refers to ``target`` and comes from its issuer.

    Raises:
        RuleViolation: ``cancellation-reference`` or ``cancellation-by-issuer``.
    """
    if cancellation.document != target_id:
        raise violation(
            "cancellation-reference",
            f"the cancellation refers to {cancellation.document.hex()}, not {target_id.hex()}",
        )
    if cancellation.issuer != target.issuer or cancellation.recipient != target.recipient:
        raise violation(
            "cancellation-by-issuer",
            f"a {target.DOCUMENT_TYPE} from {target.issuer} to {target.recipient} cannot be "
            f"cancelled by {cancellation.issuer} writing to {cancellation.recipient}",
        )


def check_export_declaration(
    declaration: ExportDeclaration, *, catalogue: Catalogue = DEFAULT_CATALOGUE
) -> None:
    """Check that every item of a declaration may travel under a declaration alone.

    Raises:
        RuleViolation: ``declaration-not-allowed`` naming the substance and its schedule.
    """
    for item in declaration.items:
        if catalogue.regime(item.substance) != "export_declaration":
            raise violation(
                "declaration-not-allowed",
                f"{item.substance} ({item.convention} Schedule {item.schedule}) needs an "
                "import certificate and an export authorization",
            )


def check_message(message: Message, about: Document, *, about_id: bytes) -> None:
    """Check that a message refers to ``about`` and passes between that document's countries.

    Raises:
        RuleViolation: ``message-reference`` or ``message-parties``.
    """
    if message.about != about_id:
        raise violation(
            "message-reference",
            f"the message is about {message.about.hex()}, not {about_id.hex()}",
        )
    if {message.issuer, message.recipient} != {about.issuer, about.recipient}:
        raise violation(
            "message-parties",
            f"a message from {message.issuer} to {message.recipient} about a "
            f"{about.DOCUMENT_TYPE} between {about.issuer} and {about.recipient}",
        )


def check_delivery_receipt(
    receipt: DeliveryReceipt, document: Document, *, document_id: bytes
) -> None:
    """Check that a receipt acknowledges ``document`` and comes from its recipient.

    Raises:
        RuleViolation: ``receipt-reference`` or ``receipt-by-recipient``.
    """
    if receipt.document != document_id:
        raise violation(
            "receipt-reference",
            f"the receipt acknowledges {receipt.document.hex()}, not {document_id.hex()}",
        )
    if (receipt.issuer, receipt.recipient) != (document.recipient, document.issuer):
        raise violation(
            "receipt-by-recipient",
            f"a receipt from {receipt.issuer} to {receipt.recipient} for a "
            f"{document.DOCUMENT_TYPE} from {document.issuer} to {document.recipient}",
        )
