"""How usable a node's registry data is: :class:`Freshness` and :func:`classify`.

Registry data is fresh before its expiry, stale-in-grace for ``grace_seconds`` after it (keep
exchanging, with warnings), and expired beyond that (store incoming documents as pending until
fresh data arrives). :class:`FreshnessStatus` is what
:meth:`permitnet.node.registry_fetch.RegistryFetcher.status` reports at a given instant.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Freshness", "FreshnessStatus", "classify"]


class Freshness(enum.StrEnum):
    """How usable the node's registry data is."""

    FRESH = "fresh"
    STALE_IN_GRACE = "stale-in-grace"
    EXPIRED = "expired"


def classify(expires_at: int, grace_seconds: int, now: int) -> Freshness:
    """Classify registry data by its expiry: fresh before it, in grace until expiry + grace.

    The one rule for the exchange (accept or hold as pending), ``/readyz`` and the status.
    """
    if now < expires_at:
        return Freshness.FRESH
    if now < expires_at + grace_seconds:
        return Freshness.STALE_IN_GRACE
    return Freshness.EXPIRED


@dataclass(frozen=True, slots=True, kw_only=True)
class FreshnessStatus:
    """The freshness of the registry data at a given instant.

    Attributes:
        state: fresh, stale-in-grace (keep exchanging, warn) or expired (store incoming
            documents as pending).
        version: the snapshot version held, or None without any data.
        age_seconds: how long ago the registry signed the data held, or None.
        expires_at: when the data expired or expires, or None.
        grace_until: until when stale data is still used, or None.
    """

    state: Freshness
    version: int | None
    age_seconds: int | None
    expires_at: int | None
    grace_until: int | None

    @property
    def accepting(self) -> bool:
        """Whether incoming documents may be accepted (fresh or within the grace period)."""
        return self.state is not Freshness.EXPIRED

    def describe(self) -> str:
        """Return one line for logs and the node's status page."""
        if self.version is None:
            return "no registry data: incoming documents are held as pending"
        text = f"registry snapshot v{self.version}, {self.age_seconds} s old: {self.state}"
        if self.state is Freshness.STALE_IN_GRACE:
            text += f" (expired at {self.expires_at}, grace until {self.grace_until})"
        elif self.state is Freshness.EXPIRED:
            text += " beyond the grace period: incoming documents are held as pending"
        return text
