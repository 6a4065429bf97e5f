"""The Convention checks the node applies before signing or accepting a document.

Pure functions over typed documents and figures the lifecycle services read from the store and
the registry view; each raises :class:`RuleViolation` naming the rule and the numbers (or, for the
estimate, returns the reason a certificate is held). Quantities are integer milligrams.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from permitnet.protocol.errors import RuleViolation

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable, Mapping

    from permitnet.protocol.documents import (
        Endorsement,
        ExportAuthorization,
        ImportCertificate,
        Item,
    )
    from permitnet.protocol.registry_view import RegistryView

__all__ = [
    "Balance",
    "balance_for",
    "check_authorization_against_certificate",
    "check_importer_estimate",
    "endorsement_discrepancies",
    "estimate_shortfalls",
    "sum_base_by_substance",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Balance:
    """A country's balance for one substance (base) and year.

    Attributes:
        substance: the base substance code.
        year: the estimate year.
        estimate_mg: the estimate (or assessment) published, None if none is.
        supplementary_mg: the total of supplementary estimates.
        authorized_mg: what the country's import certificates already cover.
    """

    substance: str
    year: int
    estimate_mg: int | None
    supplementary_mg: int
    authorized_mg: int

    @property
    def total_mg(self) -> int | None:
        """Estimate plus supplementary estimates, or None without an estimate."""
        return None if self.estimate_mg is None else self.estimate_mg + self.supplementary_mg

    @property
    def remaining_mg(self) -> int | None:
        """What may still be authorized (negative if already exceeded), or None."""
        total = self.total_mg
        return None if total is None else total - self.authorized_mg

    def to_json(self) -> dict[str, object]:
        """Return the balance as a JSON object."""
        return {
            "substance": self.substance,
            "year": self.year,
            "estimate_mg": self.estimate_mg,
            "supplementary_mg": self.supplementary_mg,
            "total_mg": self.total_mg,
            "authorized_mg": self.authorized_mg,
            "remaining_mg": self.remaining_mg,
        }


def balance_for(
    view: RegistryView, country: str, substance: str, year: int, authorized_mg: int
) -> Balance:
    """Combine the registry's figures with what is already authorized."""
    estimate, supplementary = view.balance_inputs(country, substance, year)
    return Balance(
        substance=substance,
        year=year,
        estimate_mg=estimate,
        supplementary_mg=supplementary,
        authorized_mg=authorized_mg,
    )


def sum_base_by_substance(items: Iterable[Item]) -> dict[str, int]:
    """Total anhydrous base per base substance."""
    totals: dict[str, int] = defaultdict(int)
    for item in items:
        totals[item.base] += item.base_mg
    return dict(totals)


def estimate_shortfalls(requested: Mapping[str, int], balances: Mapping[str, Balance]) -> list[str]:
    """Return one message per substance whose request exceeds its balance (empty if it fits).

    Each message names the substance, year, estimate, supplementary estimates, amount already
    authorized and amount requested, as the Convention's estimate system needs.
    """
    reasons = []
    for substance, mg in sorted(requested.items()):
        b = balances[substance]
        if b.total_mg is None:
            reasons.append(
                f"{substance} {b.year}: no estimate or assessment is published for this "
                f"country; requested {mg} mg"
            )
        elif b.authorized_mg + mg > b.total_mg:
            reasons.append(
                f"{substance} {b.year}: estimate {b.estimate_mg} mg + supplementary "
                f"{b.supplementary_mg} mg = {b.total_mg} mg, already authorized "
                f"{b.authorized_mg} mg, requested {mg} mg: exceeds by "
                f"{b.authorized_mg + mg - b.total_mg} mg"
            )
    return reasons


def check_authorization_against_certificate(
    authorization: ExportAuthorization,
    certificate: ImportCertificate,
    *,
    certificate_state: str,
    exporting_country: str,
    already_by_substance: Mapping[str, int],
    prior_authorizations: int,
    today: dt.date,
) -> None:
    """Check an export authorization against the import certificate it cites.

    Args:
        authorization: the authorization to issue (or received).
        certificate: the cited import certificate.
        certificate_state: its state in the store ("active", "cancelled", ...).
        exporting_country: the country issuing the authorization.
        already_by_substance: quantity (as traded) already authorized against the certificate
            by other, uncancelled authorizations, per substance code.
        prior_authorizations: how many uncancelled authorizations already cite it.
        today: the date of the check.

    Raises:
        RuleViolation: the first rule broken, with the numbers.
    """
    if certificate_state == "cancelled":
        raise RuleViolation("certificate-cancelled", "the import certificate was cancelled")
    if certificate.exporting_country != exporting_country:
        raise RuleViolation(
            "certificate-other-exporter",
            f"the import certificate is addressed to {certificate.exporting_country}, "
            f"not {exporting_country}",
        )
    if authorization.importing_country != certificate.issuer:
        raise RuleViolation(
            "certificate-other-importer",
            f"the authorization is for {authorization.importing_country} but the certificate "
            f"was issued by {certificate.issuer}",
        )
    if today > certificate.valid_until:
        raise RuleViolation(
            "certificate-expired",
            f"the import certificate expired on {certificate.valid_until.isoformat()}",
        )
    if (
        authorization.valid_from < certificate.valid_from
        or authorization.valid_until > certificate.valid_until
    ):
        raise RuleViolation(
            "validity-outside-certificate",
            f"authorization valid {authorization.valid_from.isoformat()} to "
            f"{authorization.valid_until.isoformat()}, certificate valid "
            f"{certificate.valid_from.isoformat()} to {certificate.valid_until.isoformat()}",
        )
    if prior_authorizations and not certificate.several_consignments:
        raise RuleViolation(
            "single-consignment",
            "the import certificate allows one consignment and an authorization already "
            "draws on it",
        )
    allowed: dict[str, int] = defaultdict(int)
    for item in certificate.items:
        allowed[item.substance] += item.quantity_mg
    requested: dict[str, int] = defaultdict(int)
    for item in authorization.items:
        requested[item.substance] += item.quantity_mg
    for substance, mg in sorted(requested.items()):
        if substance not in allowed:
            raise RuleViolation(
                "substance-not-on-certificate",
                f"{substance} is not on the import certificate",
            )
        already = already_by_substance.get(substance, 0)
        if already + mg > allowed[substance]:
            raise RuleViolation(
                "quantity-exceeds-certificate",
                f"{substance}: certificate allows {allowed[substance]} mg, already authorized "
                f"{already} mg, requested {mg} mg, remaining {allowed[substance] - already} mg",
            )


def check_importer_estimate(
    authorization: ExportAuthorization, view: RegistryView, year: int
) -> None:
    """Defence in depth: the authorization must fit the importing country's published estimate.

    Raises:
        RuleViolation: no estimate is published, or the quantity exceeds it.
    """
    for substance, mg in sorted(sum_base_by_substance(authorization.items).items()):
        estimate, supplementary = view.balance_inputs(
            authorization.importing_country, substance, year
        )
        if estimate is None:
            raise RuleViolation(
                "importer-no-estimate",
                f"{authorization.importing_country} has no published estimate or assessment "
                f"for {substance} in {year}",
            )
        if mg > estimate + supplementary:
            raise RuleViolation(
                "importer-estimate-exceeded",
                f"{substance} {year}: {mg} mg exceeds {authorization.importing_country}'s "
                f"estimate {estimate} mg + supplementary {supplementary} mg",
            )


def endorsement_discrepancies(
    endorsement: Endorsement, authorization: ExportAuthorization
) -> list[str]:
    """Return one line per item whose received quantity differs from the authorized one.

    Raises:
        RuleViolation: the endorsement names a line the authorization does not have, or a
            substance other than that line's.
    """
    received = {r.line: r for r in endorsement.received}
    problems = []
    for line, item in enumerate(authorization.items):
        r = received.pop(line, None)
        got = 0 if r is None else r.quantity_mg
        if r is not None and r.substance != item.substance:
            raise RuleViolation(
                "endorsement-substance",
                f"line {line}: endorsed {r.substance} but the authorization has {item.substance}",
            )
        if got != item.quantity_mg:
            word = "less" if got < item.quantity_mg else "more"
            problems.append(
                f"line {line} {item.substance}: authorized {item.quantity_mg} mg, received "
                f"{got} mg ({abs(item.quantity_mg - got)} mg {word})"
            )
    if received:
        raise RuleViolation(
            "endorsement-line",
            f"lines {sorted(received)} are not lines of the export authorization",
        )
    return problems
