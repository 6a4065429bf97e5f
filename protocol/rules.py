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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from permitnet.protocol.catalogue import DEFAULT_CATALOGUE, Catalogue
from permitnet.protocol.errors import DocumentError, RuleViolation
from permitnet.protocol.quantities import check_mg, format_mg

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable, Mapping

    from permitnet.protocol.documents import (
        Cancellation,
        Document,
        Endorsement,
        ExportAuthorization,
        ExportDeclaration,
        ImportCertificate,
        Item,
    )

__all__ = [
    "BALANCE_KINDS",
    "RULES",
    "Balance",
    "Discrepancy",
    "base_totals",
    "check_balances",
    "check_cancellation",
    "check_certificate_usable",
    "check_endorsement",
    "check_export_authorization",
    "check_export_declaration",
    "check_import_certificate",
    "discrepancies",
    "remaining_on_certificate",
    "substance_totals",
]

#: The kinds of balance: estimates for narcotic drugs, assessments for psychotropics.
BALANCE_KINDS: Final = ("estimate", "assessment")

#: Every rule identifier this module raises, with what it means.
RULES: Final[dict[str, str]] = {
    "certificate-cancelled": "the import certificate has been cancelled by its issuer",
    "certificate-not-yet-valid": "today is before the import certificate's validity",
    "certificate-expired": "today is after the import certificate's validity",
    "certificate-reference": "the authorization's reference does not match the certificate",
    "certificate-from-importing-country": "the certificate was not issued by the importing country",
    "certificate-addressed-to-exporting-country": "the certificate is not addressed to the "
    "exporting country",
    "parties-match": "the importer or exporter differs from the certificate's",
    "dated-in-future": "a date of issue is after today",
    "authorization-before-certificate": "the authorization is dated before the certificate",
    "validity-within-certificate": "the authorization's validity goes beyond the certificate's",
    "authorization-expired": "the authorization's validity has already ended",
    "single-consignment": "the certificate allows one consignment, already authorized",
    "substance-not-on-certificate": "a substance is not on the certificate",
    "quantity-exceeds-certificate": "more than the certificate still allows",
    "no-estimate": "no estimate or assessment is published for the substance and year",
    "estimate-exceeded": "more than the estimate still allows",
    "assessment-exceeded": "more than the assessment still allows",
    "endorsement-reference": "the endorsement does not refer to this authorization",
    "endorsement-by-importing-country": "the endorsement is not from the importing country",
    "endorsement-line": "an endorsed line is not a line of the authorization",
    "received-before-authorization": "received before the authorization was issued",
    "cancellation-by-issuer": "only the issuer of a document may cancel it",
    "cancellation-reference": "the cancellation does not refer to this document",
    "declaration-not-allowed": "the substance needs an import certificate and export "
    "authorization, not a declaration",
}


def _violation(rule: str, message: str) -> RuleViolation:
    assert rule in RULES, rule  # every rule raised is documented in RULES
    return RuleViolation(rule, message)


def base_totals(items: Iterable[Item]) -> dict[str, int]:
    """Return the anhydrous-base quantity per base substance, in mg, summed over ``items``."""
    totals: dict[str, int] = defaultdict(int)
    for item in items:
        totals[item.base] += item.base_mg
    return dict(totals)


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
        raise _violation(
            "certificate-cancelled", f"import certificate {certificate.number} is cancelled"
        )
    if today < certificate.valid_from:
        raise _violation(
            "certificate-not-yet-valid",
            f"import certificate {certificate.number} is valid from "
            f"{certificate.valid_from.isoformat()}; today is {today.isoformat()}",
        )
    if today > certificate.valid_until:
        raise _violation(
            "certificate-expired",
            f"import certificate {certificate.number} expired on "
            f"{certificate.valid_until.isoformat()}; today is {today.isoformat()}",
        )


def check_import_certificate(certificate: ImportCertificate, *, today: dt.date) -> None:
    """Check that an import certificate may be issued (or accepted) today.

    Raises:
        RuleViolation: ``dated-in-future`` or ``certificate-expired``.
    """
    if certificate.date_of_issue > today:
        raise _violation(
            "dated-in-future",
            f"certificate {certificate.number} is dated "
            f"{certificate.date_of_issue.isoformat()}; today is {today.isoformat()}",
        )
    if certificate.valid_until < today:
        raise _violation(
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
        raise _violation(
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
            raise _violation(
                "certificate-reference",
                f"authorization {authorization.number} gives the certificate's {name} as "
                f"{stated!s}, but the certificate says {actual!s}",
            )
    if certificate.issuer != authorization.recipient:
        raise _violation(
            "certificate-from-importing-country",
            f"certificate {certificate.number} was issued by {certificate.issuer}, but the "
            f"authorization is for import into {authorization.recipient}",
        )
    if certificate.recipient != authorization.issuer:
        raise _violation(
            "certificate-addressed-to-exporting-country",
            f"certificate {certificate.number} is addressed to {certificate.recipient}, not "
            f"to the exporting country {authorization.issuer}",
        )
    for role, ours, theirs in (
        ("importer", authorization.importer, certificate.importer),
        ("exporter", authorization.exporter, certificate.exporter),
    ):
        if ours != theirs:
            raise _violation(
                "parties-match",
                f"the {role} {ours.name!r} (licence {ours.licence}) is not the certificate's "
                f"{theirs.name!r} (licence {theirs.licence})",
            )


def _check_dates(
    authorization: ExportAuthorization, certificate: ImportCertificate, today: dt.date
) -> None:
    if authorization.date_of_issue > today:
        raise _violation(
            "dated-in-future",
            f"authorization {authorization.number} is dated "
            f"{authorization.date_of_issue.isoformat()}; today is {today.isoformat()}",
        )
    if authorization.date_of_issue < certificate.date_of_issue:
        raise _violation(
            "authorization-before-certificate",
            f"authorization {authorization.number} is dated "
            f"{authorization.date_of_issue.isoformat()}, before certificate "
            f"{certificate.number} of {certificate.date_of_issue.isoformat()}",
        )
    if (
        authorization.valid_from < certificate.valid_from
        or authorization.valid_until > certificate.valid_until
    ):
        raise _violation(
            "validity-within-certificate",
            f"authorization validity {authorization.valid_from.isoformat()} to "
            f"{authorization.valid_until.isoformat()} is not within certificate validity "
            f"{certificate.valid_from.isoformat()} to {certificate.valid_until.isoformat()}",
        )
    if authorization.valid_until < today:
        raise _violation(
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
        raise _violation(
            "single-consignment",
            f"certificate {certificate.number} allows a single consignment and "
            f"{prior_authorizations} export authorization(s) were already issued against it",
        )
    allowed = substance_totals(certificate.items)
    for substance, requested in sorted(substance_totals(authorization.items).items()):
        if substance not in allowed:
            raise _violation(
                "substance-not-on-certificate",
                f"{substance} is not on certificate {certificate.number} (it lists "
                f"{', '.join(sorted(allowed))})",
            )
        already = authorized.get(substance, 0)
        remaining = max(0, allowed[substance] - already)
        if requested > remaining:
            raise _violation(
                "quantity-exceeds-certificate",
                f"{substance}: certificate {certificate.number} allows "
                f"{format_mg(allowed[substance])} ({allowed[substance]} mg), {already} mg "
                f"already authorized, {requested} mg requested: "
                f"{requested - remaining} mg too much",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Balance:
    """What remains of a country's estimate (or assessment) for a substance and year.

    Attributes:
        country: the importing country.
        substance: the base substance code.
        year: the estimate year.
        kind: ``"estimate"`` (narcotic drugs) or ``"assessment"`` (psychotropic substances).
        estimate_mg: the annual estimate or assessment, in mg of anhydrous base.
        supplementary_mg: the total of supplementary estimates confirmed for the year.
        authorized_mg: what is already imported or authorized against it.
    """

    country: str
    substance: str
    year: int
    kind: str
    estimate_mg: int
    supplementary_mg: int
    authorized_mg: int

    def __post_init__(self) -> None:
        if self.kind not in BALANCE_KINDS:
            raise DocumentError(f"balance kind {self.kind!r} is not one of {BALANCE_KINDS}")
        for name in ("estimate_mg", "supplementary_mg", "authorized_mg"):
            check_mg(getattr(self, name), f"balance {name}")

    @property
    def available_mg(self) -> int:
        """Estimate plus supplementary estimates minus what is authorized (may be negative)."""
        return self.estimate_mg + self.supplementary_mg - self.authorized_mg

    def check(self, requested_mg: int) -> None:
        """Check that ``requested_mg`` more of the substance fits within the balance.

        Raises:
            RuleViolation: ``estimate-exceeded`` or ``assessment-exceeded``, with the numbers.
        """
        check_mg(requested_mg, "requested quantity")
        # Asking for nothing never exceeds a balance, even one already overdrawn.
        if requested_mg > 0 and requested_mg > self.available_mg:
            remaining = max(0, self.available_mg)
            raise _violation(
                f"{self.kind}-exceeded",
                f"{self.country} {self.substance} {self.year}: {self.kind} "
                f"{self.estimate_mg} mg + supplementary {self.supplementary_mg} mg, "
                f"already authorized {self.authorized_mg} mg, requested {requested_mg} mg: "
                f"{requested_mg - remaining} mg over the remaining {remaining} mg",
            )


def check_balances(items: Iterable[Item], balances: Mapping[str, Balance]) -> None:
    """Check the base quantities of ``items`` against the balances, per base substance.

    Args:
        items: the items of a certificate or authorization.
        balances: the balance of each base substance, keyed by base code.

    Raises:
        RuleViolation: ``no-estimate`` when a substance has no balance, or
            ``estimate-exceeded`` / ``assessment-exceeded``.
    """
    for base, requested in sorted(base_totals(items).items()):
        balance = balances.get(base)
        if balance is None:
            raise _violation(
                "no-estimate", f"{base}: no estimate or assessment, {requested} mg requested"
            )
        balance.check(requested)


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
            raise _violation(
                "endorsement-line",
                f"line {entry.line} is endorsed but authorization "
                f"{authorization.number} has {len(authorization.items)} line(s)",
            )
        expected = authorization.items[entry.line].substance
        if entry.substance != expected:
            raise _violation(
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
    endorsement: Endorsement, authorization: ExportAuthorization, *, authorization_id: bytes
) -> list[Discrepancy]:
    """Check that an endorsement belongs to an authorization, and return the discrepancies.

    Raises:
        RuleViolation: ``endorsement-reference``, ``endorsement-by-importing-country``,
            ``received-before-authorization`` or ``endorsement-line``.
    """
    if endorsement.export_authorization != authorization_id:
        raise _violation(
            "endorsement-reference",
            f"the endorsement refers to {endorsement.export_authorization.hex()}, not "
            f"{authorization_id.hex()}",
        )
    if endorsement.export_authorization_number != authorization.number:
        raise _violation(
            "endorsement-reference",
            f"the endorsement gives number {endorsement.export_authorization_number}, the "
            f"authorization is {authorization.number}",
        )
    if (endorsement.issuer, endorsement.recipient) != (
        authorization.recipient,
        authorization.issuer,
    ):
        raise _violation(
            "endorsement-by-importing-country",
            f"endorsement from {endorsement.issuer} to {endorsement.recipient}; the "
            f"authorization is from {authorization.issuer} to {authorization.recipient}",
        )
    if endorsement.date_received < authorization.date_of_issue:
        raise _violation(
            "received-before-authorization",
            f"received on {endorsement.date_received.isoformat()}, before authorization "
            f"{authorization.number} of {authorization.date_of_issue.isoformat()}",
        )
    return discrepancies(authorization, endorsement)


def check_cancellation(cancellation: Cancellation, target: Document, *, target_id: bytes) -> None:
    """Check that a cancellation refers to ``target`` and comes from its issuer.

    Raises:
        RuleViolation: ``cancellation-reference`` or ``cancellation-by-issuer``.
    """
    if cancellation.document != target_id:
        raise _violation(
            "cancellation-reference",
            f"the cancellation refers to {cancellation.document.hex()}, not {target_id.hex()}",
        )
    if cancellation.issuer != target.issuer or cancellation.recipient != target.recipient:
        raise _violation(
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
            raise _violation(
                "declaration-not-allowed",
                f"{item.substance} ({item.convention} Schedule {item.schedule}) needs an "
                "import certificate and an export authorization",
            )
