"""Exact quantities: integer milligrams, decimal conversion factors, human units.

Every quantity in permitnet is an integer number of milligrams; conversion factors to the
anhydrous base are exact decimal strings such as ``"0.7521"``. Arithmetic is done with
:class:`fractions.Fraction`, never with floats, so that two nodes always compute the same
base equivalent: base mg = quantity mg x factor, rounded to the nearest milligram, ties to
even (Python's ``round`` of a ``Fraction``).

Human units (``mg``, ``g``, ``kg``) exist for display and for typing quantities in; a
quantity written in grams or kilograms must still be a whole number of milligrams.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache
from typing import Final

from permitnet.protocol.errors import DocumentError

__all__ = [
    "MAX_DECIMAL_LENGTH",
    "MAX_QUANTITY_MG",
    "UNITS_MG",
    "QuantityError",
    "base_equivalent_mg",
    "check_mg",
    "format_decimal",
    "format_factor",
    "format_mg",
    "parse_decimal",
    "parse_factor",
    "parse_quantity",
]

#: Milligrams per unit for the units people type and read.
UNITS_MG: Final[dict[str, int]] = {"mg": 1, "g": 1_000, "kg": 1_000_000}
#: The largest quantity a document may carry: 10^15 mg is a million tonnes, far beyond any
#: legitimate trade, and keeps every value inside CBOR's 64-bit integers.
MAX_QUANTITY_MG: Final = 10**15
#: The longest decimal string read: far beyond any quantity or factor, and short enough that
#: parsing can never be slow (or hit Python's limit on digits in an integer).
MAX_DECIMAL_LENGTH: Final = 64
#: A factor is written with at most this many decimal places.
MAX_FACTOR_PLACES: Final = 8

_DECIMAL: Final = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")
_QUANTITY: Final = re.compile(r"\s*([0-9][0-9_ ]*(?:\.[0-9]+)?)\s*([a-zA-Z]+)\s*")


class QuantityError(DocumentError):
    """A quantity or conversion factor that is not exact, not in range, or not well written."""


def parse_decimal(text: str) -> Fraction:
    """Parse a plain decimal string exactly: digits, optionally a point and more digits.

    No sign, exponent, leading zeros (``"007"``), spaces, or bare point (``"1."``, ``".5"``):
    there is exactly one way to write each value's digits, so signatures cover one meaning.

    Args:
        text: the decimal string, e.g. ``"0.7521"``.

    Returns:
        The exact value.

    Raises:
        QuantityError: ``text`` is not a string, longer than 64 characters, or not a plain
            decimal.
    """
    if not isinstance(text, str) or len(text) > MAX_DECIMAL_LENGTH:
        raise QuantityError(
            f"a decimal number is text of at most {MAX_DECIMAL_LENGTH} characters such as '0.7521'"
        )
    if _DECIMAL.fullmatch(text) is None:
        raise QuantityError(f"{text!r} is not a plain decimal number such as '0.7521'")
    return Fraction(text)


def parse_factor(text: str) -> Fraction:
    """Parse a conversion factor to the anhydrous base: a decimal in (0, 1].

    A factor is the mass fraction of the base in the substance as traded, so it is positive
    and at most 1 (exactly ``"1"`` for the base itself). It has no trailing zeros after the
    point, so each factor has one spelling.

    Raises:
        QuantityError: not a plain decimal, outside (0, 1], more than 8 decimal places, or
            written with trailing zeros (``"0.50"``) or a redundant point (``"1.0"``).
    """
    if not isinstance(text, str):
        raise QuantityError(f"factor {text!r} is not a decimal string such as '0.7521'")
    return _parse_factor(text)


@lru_cache(maxsize=4096)
def _parse_factor(text: str) -> Fraction:
    # Documents repeat the same few catalogue factors, and parsing a Fraction from text is
    # slow; errors are not cached, so bad input is checked every time.
    value = parse_decimal(text)
    _, _, places = text.partition(".")
    if places.endswith("0"):
        raise QuantityError(f"factor {text!r} has trailing zeros: write {format_factor(value)!r}")
    if len(places) > MAX_FACTOR_PLACES:
        raise QuantityError(f"factor {text!r} has more than {MAX_FACTOR_PLACES} decimal places")
    if not 0 < value <= 1:
        raise QuantityError(f"factor {text!r} is not in (0, 1]")
    return value


def format_decimal(value: Fraction | int, places: int | None = None) -> str:
    """Write an exact decimal value as a plain decimal string without trailing zeros.

    Args:
        value: a non-negative value whose decimal expansion terminates (or ``places`` given).
        places: if given, round to this many places first (ties to even).

    Raises:
        QuantityError: negative, or the expansion does not terminate and no ``places`` given.
    """
    value = Fraction(value)
    if value < 0:
        raise QuantityError(f"{value} is negative")
    if places is not None:
        value = Fraction(round(value * 10**places), 10**places)
    # Find the number of decimal places k with value x 10^k an integer; Decimal division
    # would round to its context precision (28 digits), so this stays in integers.
    denominator, twos, fives = value.denominator, 0, 0
    while denominator % 2 == 0:
        denominator, twos = denominator // 2, twos + 1
    while denominator % 5 == 0:
        denominator, fives = denominator // 5, fives + 1
    if denominator != 1:
        raise QuantityError(f"{value} has no finite decimal expansion")
    scale = max(twos, fives)
    digits = str(value.numerator * 10**scale // value.denominator)
    if scale == 0:
        return digits
    whole, fraction = digits[:-scale] or "0", digits[-scale:].rjust(scale, "0")
    fraction = fraction.rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


def format_factor(value: Fraction) -> str:
    """Write a factor in its one canonical spelling (see :func:`parse_factor`)."""
    return format_decimal(value)


def base_equivalent_mg(quantity_mg: int, factor: str) -> int:
    """Return the anhydrous-base equivalent of a quantity, in whole milligrams.

    Args:
        quantity_mg: the quantity as traded, in milligrams (a non-negative integer).
        factor: the conversion factor as a decimal string in (0, 1].

    Returns:
        ``round(quantity_mg x factor)``, ties to even, computed exactly.

    Raises:
        QuantityError: the quantity is not a non-negative integer within
            :data:`MAX_QUANTITY_MG`, or the factor is not valid.
    """
    check_mg(quantity_mg, "quantity")
    ratio = parse_factor(factor)
    # round(Fraction(quantity_mg) * ratio) in integers: the same result (nearest, ties to
    # even), without building a Fraction per item on the hot path of every received document.
    quotient, remainder = divmod(quantity_mg * ratio.numerator, ratio.denominator)
    twice = 2 * remainder
    if twice > ratio.denominator or (twice == ratio.denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def check_mg(value: object, what: str) -> int:
    """Return ``value`` if it is an integer number of mg in [0, MAX_QUANTITY_MG].

    Raises:
        QuantityError: naming ``what``, when it is not.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise QuantityError(f"{what} must be an integer number of milligrams")
    if not 0 <= value <= MAX_QUANTITY_MG:
        raise QuantityError(f"{what} {value} mg is outside 0..{MAX_QUANTITY_MG} mg")
    return value


def parse_quantity(text: str) -> int:
    """Parse a quantity typed by a person, such as ``"1.5 kg"`` or ``"250 mg"``, into mg.

    Digits may be grouped with spaces or underscores (``"1 000 g"``). The unit is required,
    so that nobody types grams meaning milligrams.

    Raises:
        QuantityError: no unit or an unknown unit, not a plain decimal, not a whole number of
            milligrams (``"0.5 mg"``), larger than :data:`MAX_QUANTITY_MG`, or longer than 64
            characters.
    """
    if not isinstance(text, str):
        raise QuantityError("a quantity must be text such as '1.5 kg'")
    if len(text) > 64:
        raise QuantityError(f"quantity text is too long ({len(text)} characters, at most 64)")
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise QuantityError(f"{text!r} is not a quantity such as '250 mg', '12.5 g' or '1 kg'")
    number, unit = match.group(1).replace(" ", "").replace("_", ""), match.group(2)
    if unit.lower() not in UNITS_MG:
        raise QuantityError(f"unknown unit {unit!r} in {text!r}: use mg, g or kg")
    # The pattern admits only digits and at most one point followed by digits.
    value = Fraction(number) * UNITS_MG[unit.lower()]
    if value.denominator != 1:
        raise QuantityError(f"{text!r} is not a whole number of milligrams")
    return check_mg(int(value), "quantity")


def format_mg(quantity_mg: int, unit: str | None = None) -> str:
    """Write a quantity for people, exactly: ``1500000`` becomes ``"1.5 kg"``.

    Args:
        quantity_mg: the quantity in milligrams.
        unit: ``"mg"``, ``"g"`` or ``"kg"``; by default the largest unit in which the
            quantity is at least 1.

    Returns:
        The exact number in the unit, without trailing zeros or digit grouping, so that
        :func:`parse_quantity` reads it back to the same integer.

    Raises:
        QuantityError: not a valid quantity, or an unknown unit.
    """
    check_mg(quantity_mg, "quantity")
    if unit is None:
        unit = "mg"
        for name, size in UNITS_MG.items():
            if quantity_mg >= size:
                unit = name
    if unit not in UNITS_MG:
        raise QuantityError(f"unknown unit {unit!r}: use mg, g or kg")
    return f"{format_decimal(Fraction(quantity_mg, UNITS_MG[unit]))} {unit}"
