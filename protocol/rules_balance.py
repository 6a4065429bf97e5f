"""Estimates and assessments: what remains of a country's balance, and checking against it.

Narcotic drugs have annual estimates, confirmed by the INCB, plus supplementary estimates
(1961 art. 19, 21 and 31(1)(b)); psychotropic substances have assessments (ECOSOC resolutions
1981/7 and 1991/44). Both are kept per base substance in mg of anhydrous base.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from permitnet.protocol.errors import DocumentError
from permitnet.protocol.quantities import check_mg, format_mg
from permitnet.protocol.rules_base import violation

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from permitnet.protocol.documents import Item

__all__ = ["BALANCE_KINDS", "Balance", "base_totals", "check_balances"]

#: The kinds of balance: estimates for narcotic drugs, assessments for psychotropics.
BALANCE_KINDS: Final = ("estimate", "assessment")


def base_totals(items: Iterable[Item]) -> dict[str, int]:
    """Return the anhydrous-base quantity per base substance, in mg, summed over ``items``."""
    totals: dict[str, int] = defaultdict(int)
    for item in items:
        totals[item.base] += item.base_mg
    return dict(totals)


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
            raise violation(
                f"{self.kind}-exceeded",
                # Officials read this when a certificate is held: exact quantities in the
                # largest fitting unit ("10 kg"), never seven-digit milligram figures.
                f"{self.country} {self.substance} {self.year}: {self.kind} "
                f"{format_mg(self.estimate_mg)} + supplementary "
                f"{format_mg(self.supplementary_mg)}, already authorized "
                f"{format_mg(self.authorized_mg)}, requested {format_mg(requested_mg)}: "
                f"{format_mg(requested_mg - remaining)} over the remaining "
                f"{format_mg(remaining)}",
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
            raise violation(
                "no-estimate",
                f"{base}: no estimate or assessment, {format_mg(requested)} requested",
            )
        balance.check(requested)
