"""The node's side of the Convention checks: balances, held reasons, alert wording.

The rules themselves are the protocol's pure functions (:mod:`permitnet.protocol.rules`); this
module feeds them figures the lifecycle reads from the store and the registry view, turns an
estimate shortfall into the reason a certificate is *held* (rather than refused), and words
endorsement discrepancies for alerts. Quantities are integer milligrams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from permitnet.protocol import rules
from permitnet.protocol.catalogue import DEFAULT_CATALOGUE
from permitnet.protocol.errors import RuleViolation
from permitnet.protocol.quantities import format_mg

if TYPE_CHECKING:
    from collections.abc import Mapping

    from permitnet.protocol.documents import ExportAuthorization
    from permitnet.protocol.registry_view import RegistryView

__all__ = [
    "Balance",
    "balance_for",
    "check_importer_estimate",
    "describe_discrepancies",
    "estimate_shortfalls",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Balance:
    """A country's balance for one substance (base) and year, as the API and pages show it.

    Attributes:
        substance: the base substance code.
        year: the estimate year.
        estimate_mg: the estimate (or assessment) published, None if none is.
        supplementary_mg: the total of supplementary estimates.
        authorized_mg: what the country's import certificates already cover.
        country: the country.
        kind: ``"estimate"`` (narcotic drugs, 1961) or ``"assessment"`` (psychotropics, 1971).
    """

    substance: str
    year: int
    estimate_mg: int | None
    supplementary_mg: int
    authorized_mg: int
    country: str = ""
    kind: str = "estimate"

    @property
    def total_mg(self) -> int | None:
        """Estimate plus supplementary estimates, or None without an estimate."""
        return None if self.estimate_mg is None else self.estimate_mg + self.supplementary_mg

    @property
    def remaining_mg(self) -> int | None:
        """What may still be authorized (negative if already exceeded), or None."""
        total = self.total_mg
        return None if total is None else total - self.authorized_mg

    def to_rule(self) -> rules.Balance | None:
        """The protocol's balance for the rule check, or None without an estimate."""
        if self.estimate_mg is None:
            return None
        return rules.Balance(
            country=self.country,
            substance=self.substance,
            year=self.year,
            kind=self.kind,
            estimate_mg=self.estimate_mg,
            supplementary_mg=self.supplementary_mg,
            authorized_mg=self.authorized_mg,
        )

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


def _kind(substance: str) -> str:
    if substance in DEFAULT_CATALOGUE and DEFAULT_CATALOGUE.get(substance).convention == "1971":
        return "assessment"
    return "estimate"


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
        country=country,
        kind=_kind(substance),
    )


def estimate_shortfalls(requested: Mapping[str, int], balances: Mapping[str, Balance]) -> list[str]:
    """Return one reason per substance whose request does not fit its balance (empty if all fit).

    Each reason is the protocol rule's message (``estimate-exceeded``, ``assessment-exceeded``
    or ``no-estimate``): it names the country, substance, year, estimate, supplementary
    estimates, amount already authorized and amount requested.
    """
    reasons = []
    for substance, mg in sorted(requested.items()):
        balance = balances[substance]
        rule = balance.to_rule()
        if rule is None:
            reasons.append(
                f"no-estimate: {balance.country} {substance} {balance.year}: no estimate or "
                f"assessment is published; requested {mg} mg"
            )
            continue
        try:
            rule.check(mg)
        except RuleViolation as e:
            reasons.append(str(e))
    return reasons


def check_importer_estimate(
    authorization: ExportAuthorization, view: RegistryView, year: int
) -> None:
    """Defence in depth: the authorization must fit the importing country's published estimate.

    The exporter cannot see what else the importer authorized, so the whole estimate (plus
    supplementary estimates) is the limit.

    Raises:
        RuleViolation: ``importer-no-estimate`` or ``importer-estimate-exceeded``.
    """
    for substance, mg in sorted(rules.base_totals(authorization.items).items()):
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


def describe_discrepancies(found: list[rules.Discrepancy]) -> list[str]:
    """Word each discrepancy for an alert: item, substance, authorized, received, difference.

    Items are numbered from 1, as printed on the authorization; quantities are written exactly
    in the largest fitting unit (``format_mg``), so "5 kg" rather than "5000000 mg".
    """
    return [
        f"item {d.line + 1} {d.substance}: authorized {format_mg(d.authorized_mg)}, received "
        f"{format_mg(d.received_mg)} ({format_mg(abs(d.difference_mg))} "
        f"{'less' if d.difference_mg < 0 else 'more'})"
        for d in found
    ]
