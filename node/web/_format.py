"""Template filters: quantities, times, countries and identifiers written for people."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import pycountry

from permitnet.protocol.quantities import QuantityError, format_mg

__all__ = ["FILTERS", "country_name", "mg", "utc"]


def mg(value: int | None) -> str:
    """Write milligrams in the largest whole unit, exactly ("1.5 kg")."""
    if value is None:
        return "-"
    try:
        return format_mg(value)
    except QuantityError:
        return f"{value} mg"


def utc(value: int | None) -> str:
    """Write a Unix time as 'YYYY-MM-DD HH:MM UTC'."""
    if value is None:
        return "-"
    try:
        return dt.datetime.fromtimestamp(value, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (ValueError, OverflowError, OSError):
        # Beyond year 9999 (a registry test view that never expires): say so, do not fail.
        return "far future" if value > 0 else "before 1970"


def country_name(code: str | None) -> str:
    """Write a country code with its name: 'FR (France)'."""
    if not code:
        return "-"
    country = pycountry.countries.get(alpha_2=code)
    return f"{code} ({country.name})" if country is not None else code


def short_id(value: str | None) -> str:
    """The first 12 hex digits of a document identifier, enough to tell documents apart."""
    return "-" if not value else value[:12]


def doc_label(row: Any) -> str:
    """A document row's link text: its number, else the number of what it refers to.

    An endorsement, cancellation or message has no number of its own: "of EA-FR-2026-001"
    tells which authorization it is about, where its identifier would not.
    """
    if row.reference:
        return str(row.reference)
    if row.refers_to_reference:
        return f"of {row.refers_to_reference}"
    return short_id(row.id)


def hexid(value: bytes | str | None) -> str:
    """A document identifier from a payload (32 raw bytes) as lowercase hex."""
    if value is None:
        return ""
    return value.hex() if isinstance(value, bytes) else value


FILTERS: Final[dict[str, Any]] = {
    "mg": mg,
    "utc": utc,
    "country_name": country_name,
    "short_id": short_id,
    "doc_label": doc_label,
    "hexid": hexid,
}
