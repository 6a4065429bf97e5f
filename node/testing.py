"""Helpers to run nodes in tests: an in-process registry view with chosen keys and estimates.

Like python-tuf's ``RepositorySimulator``: where the registry is not the point, tests build the
verified view directly from registry records instead of fetching a signed snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pycountry

if TYPE_CHECKING:
    from collections.abc import Sequence

from permitnet.protocol.registry_records import CountryRecord, Estimate, KeyRecord
from permitnet.protocol.registry_view import RegistryView, fold

__all__ = ["TestCountry", "estimate", "registry_view"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TestCountry:
    """A participating country for a test registry: its code, key and node URL."""

    __test__ = False  # not a pytest test class

    code: str
    public_key: bytes
    kid: bytes
    endpoint: str = "http://127.0.0.1:9"
    authority: str = ""


def estimate(
    country: str, substance: str, year: int, quantity_mg: int, *, supplementary: int = 0
) -> Estimate:
    """An annual estimate (``supplementary=0``) or the n-th supplementary estimate."""
    return Estimate(
        country=country,
        substance=substance,
        year=year,
        quantity_mg=quantity_mg,
        kind="supplementary" if supplementary else "estimate",
        effective=f"{year}-01-01",
        sequence=supplementary,
    )


def registry_view(
    countries: list[TestCountry],
    estimates: Sequence[Estimate] = (),
    *,
    without_node: Sequence[str] = (),
    version: int = 1,
    issued_at: int = 0,
    expires_at: int = 2**40,
) -> RegistryView:
    """Build a verified-looking registry view from records (no snapshot signature involved).

    ``without_node`` lists participating countries that have no node and no key (they trade on
    paper); their estimates may still be given.
    """
    records: list[CountryRecord | KeyRecord | Estimate] = []
    for c in countries:
        country = pycountry.countries.get(alpha_2=c.code)
        records.append(
            CountryRecord(
                code=c.code,
                name=country.name if country else c.code,
                authority=c.authority or f"Competent authority of {c.code}",
                endpoints=(c.endpoint,),
                contact="",
            )
        )
        records.append(
            KeyRecord(
                country=c.code,
                kid=c.kid,
                public_key=c.public_key,
                valid_from=0,
                valid_until=None,
                status="active",
            )
        )
    for code in without_node:
        country = pycountry.countries.get(alpha_2=code)
        records.append(
            CountryRecord(
                code=code,
                name=country.name if country else code,
                authority=f"Competent authority of {code}",
                endpoints=(),
                contact="",
            )
        )
    records.extend(estimates)
    return RegistryView(
        version=version,
        issued_at=issued_at,
        expires_at=expires_at,
        root_version=1,
        log_size=len(records),
        log_root=bytes(32),
        log_compact=(),
        state=fold(records),
    )
