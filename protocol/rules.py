"""The Convention rules between documents: pure functions that raise :class:`RuleViolation`.

Each violation names its rule (a stable identifier such as ``"quantity-exceeds-certificate"``,
see :data:`RULES`) and the numbers involved, so that an official can see at once what is
wrong. The clock is an argument (``today``); nothing here reads the time or any storage:
the caller supplies what it knows (whether a certificate is cancelled, what has already been
authorized against it, the estimate balance).

Sources: Single Convention on Narcotic Drugs 1961, art. 19 and 21 (estimates and their
limits), art. 31(4)-(7) (import certificates, export authorizations, endorsement);
Convention on Psychotropic Substances 1971, art. 12 (authorizations and declarations), and
ECOSOC resolutions on assessments of annual medical and scientific requirements.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from permitnet.protocol.quantities import format_mg
from permitnet.protocol.rules_balance import BALANCE_KINDS, Balance, base_totals, check_balances
from permitnet.protocol.rules_base import RULES, violation
from permitnet.protocol.rules_followup import (
    Discrepancy,
    check_cancellation,
    check_delivery_receipt,
    check_endorsement,
    check_export_declaration,
    check_message,
    discrepancies,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable, Mapping

    from permitnet.protocol.documents import ExportAuthorization, ImportCertificate, Item

__all__ = [
    "BALANCE_KINDS",
    "RULES",
    "Balance",
    "Discrepancy",
    "base_totals",
    "certificate_usage",
    "check_balances",
    "check_cancellation",
    "check_certificate_usable",
    "check_delivery_receipt",
    "check_endorsement",
    "check_export_authorization",
    "check_export_declaration",
    "check_import_certificate",
    "check_message",
    "discrepancies",
    "remaining_on_certificate",
    "substance_totals",
]


def check_certificate_usable(
    certificate: ImportCertificate, *, today: dt.date, cancelled: bool
) -> None:
    """Check that an import certificate can be acted on today.

    Args:
        certificate: the import certificate.
        today: the current date at the checking authority.
        cancelled: whether its issuer has cancelled it.

    Raises:
        RuleViolation: ``certificate-cancelled``, ``certificate-not-yet-valid`` or
            ``certificate-expired``.
    """
    if cancelled:
        raise violation(
            "certificate-cancelled", f"import certificate {certificate.number} is cancelled"
        )
    if today < certificate.valid_from:
        raise violation(
            "certificate-not-yet-valid",
            f"import certificate {certificate.number} is valid from "
            f"{certificate.valid_from.isoformat()}; today is {today.isoformat()}",
        )
    if today > certificate.valid_until:
        raise violation(
            "certificate-expired",
            f"import certificate {certificate.number} expired on "
            f"{certificate.valid_until.isoformat()}; today is {today.isoformat()}",
        )


def check_import_certificate(certificate: ImportCertificate, *, today: dt.date) -> None:
    """Check that an import certificate may be issued (or accepted) today.

    Raises:
        RuleViolation: ``dated-in-future``, ``certificate-expired`` or ``estimate-year``.
    """
    first, last = certificate.valid_from.year, certificate.valid_until.year
    if not first <= certificate.estimate_year <= last:
        raise violation(
            "estimate-year",
            f"certificate {certificate.number} counts against the {certificate.estimate_year} "
            f"estimate but the import may only take place from "
            f"{certificate.valid_from.isoformat()} to {certificate.valid_until.isoformat()}",
        )
    if certificate.date_of_issue > today:
        raise violation(
            "dated-in-future",
            f"certificate {certificate.number} is dated "
            f"{certificate.date_of_issue.isoformat()}; today is {today.isoformat()}",
        )
    if certificate.valid_until < today:
        raise violation(
            "certificate-expired",
            f"import certificate {certificate.number} expired on "
            f"{certificate.valid_until.isoformat()}; today is {today.isoformat()}",
        )


def substance_totals(items: Iterable[Item]) -> dict[str, int]:
    """Return the quantity as traded per substance code, in mg, summed over ``items``."""
    totals: dict[str, int] = defaultdict(int)
    for item in items:
        totals[item.substance] += item.quantity_mg
    return dict(totals)


def certificate_usage(
    certificate_id: bytes, authorizations: Iterable[ExportAuthorization]
) -> tuple[dict[str, int], int]:
    """Sum what export authorizations issued against a certificate authorize.

    Args:
        certificate_id: the certificate's document identifier.
        authorizations: export authorizations; those citing another certificate are ignored.
            The caller leaves out the cancelled ones.

    Returns:
        The quantity authorized per substance as traded, in mg, and how many authorizations
        cite the certificate: the ``authorized_mg`` and ``prior_authorizations`` arguments
        of :func:`check_export_authorization`.
    """
    totals: dict[str, int] = defaultdict(int)
    count = 0
    for authorization in authorizations:
        if authorization.import_certificate.id != certificate_id:
            continue
        count += 1
        for substance, quantity in substance_totals(authorization.items).items():
            totals[substance] += quantity
    return dict(totals), count


def remaining_on_certificate(
    certificate: ImportCertificate, authorized_mg: Mapping[str, int]
) -> dict[str, int]:
    """Return what a certificate still allows per substance as traded, in mg.

    Args:
        certificate: the import certificate.
        authorized_mg: what export authorizations already issued against it authorize, per
            substance code as traded, in mg.

    Returns:
        The certificate's quantity minus what is authorized, per substance (never below 0).
    """
    return {
        substance: max(0, total - authorized_mg.get(substance, 0))
        for substance, total in substance_totals(certificate.items).items()
    }


def _check_reference(
    authorization: ExportAuthorization, certificate: ImportCertificate, certificate_id: bytes
) -> None:
    reference = authorization.import_certificate
    if reference.id != certificate_id:
        raise violation(
            "certificate-reference",
            f"authorization {authorization.number} refers to certificate id "
            f"{reference.id.hex()}, not {certificate_id.hex()}",
        )
    for name, stated, actual in (
        ("number", reference.number, certificate.number),
        ("date of issue", reference.date_of_issue, certificate.date_of_issue),
        ("authority", reference.authority, certificate.authority),
    ):
        if stated != actual:
            raise violation(
                "certificate-reference",
                f"authorization {authorization.number} gives the certificate's {name} as "
                f"{stated!s}, but the certificate says {actual!s}",
            )
    if certificate.issuer != authorization.recipient:
        raise violation(
            "certificate-from-importing-country",
            f"certificate {certificate.number} was issued by {certificate.issuer}, but the "
            f"authorization is for import into {authorization.recipient}",
        )
    if certificate.recipient != authorization.issuer:
        raise violation(
            "certificate-addressed-to-exporting-country",
            f"certificate {certificate.number} is addressed to {certificate.recipient}, not "
            f"to the exporting country {authorization.issuer}",
        )
    for role, ours, theirs in (
        ("importer", authorization.importer, certificate.importer),
        ("exporter", authorization.exporter, certificate.exporter),
    ):
        if ours != theirs:
            raise violation(
                "parties-match",
                f"the {role} {ours.name!r} (licence {ours.licence}) is not the certificate's "
                f"{theirs.name!r} (licence {theirs.licence})",
            )


def _check_dates(
    authorization: ExportAuthorization, certificate: ImportCertificate, today: dt.date
) -> None:
    if authorization.date_of_issue > today:
        raise violation(
            "dated-in-future",
            f"authorization {authorization.number} is dated "
            f"{authorization.date_of_issue.isoformat()}; today is {today.isoformat()}",
        )
    if authorization.date_of_issue < certificate.date_of_issue:
        raise violation(
            "authorization-before-certificate",
            f"authorization {authorization.number} is dated "
            f"{authorization.date_of_issue.isoformat()}, before certificate "
            f"{certificate.number} of {certificate.date_of_issue.isoformat()}",
        )
    if (
        authorization.valid_from < certificate.valid_from
        or authorization.valid_until > certificate.valid_until
    ):
        raise violation(
            "validity-within-certificate",
            f"authorization validity {authorization.valid_from.isoformat()} to "
            f"{authorization.valid_until.isoformat()} is not within certificate validity "
            f"{certificate.valid_from.isoformat()} to {certificate.valid_until.isoformat()}",
        )
    if authorization.valid_until < today:
        raise violation(
            "authorization-expired",
            f"authorization {authorization.number} is valid until "
            f"{authorization.valid_until.isoformat()}; today is {today.isoformat()}",
        )


def check_export_authorization(
    authorization: ExportAuthorization,
    certificate: ImportCertificate,
    *,
    certificate_id: bytes,
    today: dt.date,
    cancelled: bool = False,
    authorized_mg: Mapping[str, int] | None = None,
    prior_authorizations: int = 0,
) -> None:
    """Check that an export authorization may be issued (or accepted) against a certificate.

    The certificate authorizes substances as traded (a salt or preparation is named as such),
    so quantities are compared per substance code, in mg as traded, and a substance that is
    not on the certificate is refused even if its base is.

    Args:
        authorization: the export authorization.
        certificate: the import certificate it refers to (already verified as signed by the
            importing country's key).
        certificate_id: the certificate's document identifier.
        today: the current date at the checking authority.
        cancelled: whether the certificate has been cancelled.
        authorized_mg: what other export authorizations against this certificate already
            authorize, per substance code as traded, in mg (not counting ``authorization``
            itself).
        prior_authorizations: how many other export authorizations were issued against it.

    Raises:
        RuleViolation: naming the first rule broken (see :data:`RULES`) and the numbers.
    """
    authorized = authorized_mg or {}
    _check_reference(authorization, certificate, certificate_id)
    check_certificate_usable(certificate, today=today, cancelled=cancelled)
    _check_dates(authorization, certificate, today)
    if not certificate.several_consignments and prior_authorizations > 0:
        raise violation(
            "single-consignment",
            f"certificate {certificate.number} allows a single consignment and "
            f"{prior_authorizations} export authorization(s) were already issued against it",
        )
    allowed = substance_totals(certificate.items)
    for substance, requested in sorted(substance_totals(authorization.items).items()):
        if substance not in allowed:
            raise violation(
                "substance-not-on-certificate",
                f"{substance} is not on certificate {certificate.number} (it lists "
                f"{', '.join(sorted(allowed))})",
            )
        already = authorized.get(substance, 0)
        remaining = max(0, allowed[substance] - already)
        if requested > remaining:
            raise violation(
                "quantity-exceeds-certificate",
                f"{substance}: certificate {certificate.number} allows "
                f"{format_mg(allowed[substance])} ({allowed[substance]} mg), {already} mg "
                f"already authorized, {requested} mg requested: "
                f"{requested - remaining} mg too much",
            )
