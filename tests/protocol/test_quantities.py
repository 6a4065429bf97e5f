"""Quantities: exact parsing, formatting and base-equivalent arithmetic, never floats."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from permitnet.protocol.quantities import (
    MAX_QUANTITY_MG,
    QuantityError,
    base_equivalent_mg,
    format_decimal,
    format_factor,
    format_mg,
    parse_decimal,
    parse_factor,
    parse_quantity,
)

quantities = st.integers(min_value=0, max_value=MAX_QUANTITY_MG)
factors = st.builds(
    lambda n, places: format_factor(Fraction(n, 10**places)),
    st.integers(min_value=1, max_value=10**4),
    st.just(4),
)


@pytest.mark.parametrize(
    ("text", "mg"),
    [
        pytest.param("250 mg", 250, id="mg"),
        pytest.param("1.5 kg", 1_500_000, id="kg-decimal"),
        pytest.param("12.345 g", 12_345, id="g-three-places"),
        pytest.param("1 000 g", 1_000_000, id="grouped-space"),
        pytest.param("1_000 g", 1_000_000, id="grouped-underscore"),
        pytest.param("0.000001 kg", 1, id="one-mg-in-kg"),
        pytest.param("2KG", 2_000_000, id="upper-case-unit"),
        pytest.param(" 7 mg ", 7, id="surrounding-space"),
        pytest.param("0 mg", 0, id="zero"),
    ],
)
def test_parse_quantity(text: str, mg: int) -> None:
    assert parse_quantity(text) == mg


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("250", "is not a quantity", id="no-unit"),
        pytest.param("1 lb", "unknown unit", id="pounds"),
        pytest.param("0.5 mg", "whole number of milligrams", id="half-mg"),
        pytest.param("1.0000001 kg", "whole number of milligrams", id="sub-mg-in-kg"),
        pytest.param("-5 mg", "is not a quantity", id="negative"),
        pytest.param("1e3 mg", "is not a quantity", id="exponent"),
        pytest.param("1,5 g", "is not a quantity", id="decimal-comma"),
        pytest.param("2000000000 kg", "outside", id="too-large"),
        pytest.param("1" * 100 + " mg", "too long", id="too-long"),
        pytest.param("", "is not a quantity", id="empty"),
        pytest.param(".5 g", "is not a quantity", id="bare-point"),
    ],
)
def test_parse_quantity_refuses(text: str, words: str) -> None:
    with pytest.raises(QuantityError, match=words):
        parse_quantity(text)


def test_parse_quantity_refuses_non_text() -> None:
    with pytest.raises(QuantityError):
        parse_quantity(250)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("0", r"not in \(0, 1\]", id="zero"),
        pytest.param("1.5", r"not in \(0, 1\]", id="above-one"),
        pytest.param("0.50", "trailing zeros", id="trailing-zero"),
        pytest.param("1.0", "trailing zeros", id="one-point-zero"),
        pytest.param("0.123456789", "more than 8", id="too-many-places"),
        pytest.param("00.5", "plain decimal", id="leading-zero"),
        pytest.param("0.5 ", "plain decimal", id="space"),
        pytest.param("-0.5", "plain decimal", id="negative"),
        pytest.param("5e-1", "plain decimal", id="exponent"),
        pytest.param(".5", "plain decimal", id="bare-point"),
        pytest.param("0." + "1" * 5000, "at most 64", id="huge"),
    ],
)
def test_parse_factor_refuses(text: str, words: str) -> None:
    with pytest.raises(QuantityError, match=words):
        parse_factor(text)


def test_parse_factor_accepts() -> None:
    assert parse_factor("0.7521") == Fraction(7521, 10_000)
    assert parse_factor("1") == 1


@pytest.mark.parametrize(
    ("quantity", "factor", "base"),
    [
        pytest.param(1_000_000, "0.7521", 752_100, id="morphine-sulfate-kg"),
        pytest.param(1, "0.5", 0, id="tie-rounds-to-even-0"),
        pytest.param(3, "0.5", 2, id="tie-rounds-to-even-2"),
        pytest.param(5, "0.5", 2, id="tie-rounds-down-to-even"),
        pytest.param(7, "0.5", 4, id="tie-rounds-up-to-even"),
        pytest.param(3, "0.6", 2, id="nearest-up"),
        pytest.param(3, "0.1", 0, id="nearest-down"),
        pytest.param(MAX_QUANTITY_MG, "0.00000001", 10**7, id="largest"),
    ],
)
def test_base_equivalent(quantity: int, factor: str, base: int) -> None:
    assert base_equivalent_mg(quantity, factor) == base


@pytest.mark.parametrize("bad", [1.5, True, -1, MAX_QUANTITY_MG + 1, "10"])
def test_base_equivalent_refuses_bad_quantities(bad: object) -> None:
    with pytest.raises(QuantityError):
        base_equivalent_mg(bad, "0.5")  # type: ignore[arg-type]


@given(quantities)
def test_format_then_parse_is_identity(mg: int) -> None:
    assert parse_quantity(format_mg(mg)) == mg
    for unit in ("mg", "g", "kg"):
        assert parse_quantity(format_mg(mg, unit)) == mg


@given(quantities)
def test_format_uses_the_largest_unit_not_above(mg: int) -> None:
    text = format_mg(mg)
    number, unit = text.split(" ")
    assert "e" not in number
    assert not number.endswith(".")
    assert not (("." in number) and number.endswith("0"))
    assert Fraction(number) >= 1 or mg == 0
    assert unit == ("kg" if mg >= 10**6 else "g" if mg >= 1000 else "mg")


@given(quantities, quantities, factors)
def test_base_equivalent_is_monotonic(a: int, b: int, factor: str) -> None:
    low, high = sorted((a, b))
    assert base_equivalent_mg(low, factor) <= base_equivalent_mg(high, factor)


@given(quantities, factors)
def test_base_equivalent_is_within_half_a_mg_and_never_above(mg: int, factor: str) -> None:
    base = base_equivalent_mg(mg, factor)
    exact = Fraction(mg) * Fraction(factor)
    assert isinstance(base, int)
    assert abs(base - exact) <= Fraction(1, 2)
    assert base <= mg


@given(st.fractions(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=12))
def test_decimal_round_trip(value: Fraction, places: int) -> None:
    text = format_decimal(value, places)
    assert parse_decimal(text) == Fraction(round(value * 10**places), 10**places)
    assert format_decimal(parse_decimal(text)) == text


def test_format_decimal_refuses() -> None:
    with pytest.raises(QuantityError, match="negative"):
        format_decimal(Fraction(-1, 2))
    with pytest.raises(QuantityError, match="finite decimal"):
        format_decimal(Fraction(1, 3))
    with pytest.raises(QuantityError, match="unknown unit"):
        format_mg(5, "lb")


def test_format_examples() -> None:
    assert format_mg(1_500_000) == "1.5 kg"
    assert format_mg(999) == "999 mg"
    assert format_mg(12_345) == "12.345 g"
    assert format_mg(0) == "0 mg"
    assert format_mg(1, "kg") == "0.000001 kg"


@given(quantities, st.integers(min_value=1, max_value=10**8), st.integers(min_value=0, max_value=8))
def test_base_equivalent_equals_fraction_rounding(mg: int, numerator: int, places: int) -> None:
    value = Fraction(numerator, 10**places)
    if value > 1:
        value = Fraction(1)
    factor = format_factor(value)
    assert base_equivalent_mg(mg, factor) == round(Fraction(mg) * Fraction(factor))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(
            Fraction(10**40 + 1, 10**12),
            "10000000000000000000000000000.000000000001",
            id="40-digits",
        ),
        pytest.param(Fraction(1, 2**20), "0.00000095367431640625", id="power-of-two"),
        pytest.param(Fraction(7, 1000), "0.007", id="leading-zeros-after-point"),
        pytest.param(Fraction(120), "120", id="integer-keeps-zeros"),
        pytest.param(Fraction(0), "0", id="zero"),
        pytest.param(Fraction(25, 10), "2.5", id="trailing-zero-dropped"),
    ],
)
def test_format_decimal_is_exact_at_any_length(value: Fraction, text: str) -> None:
    assert format_decimal(value) == text
    assert parse_decimal(text) == value
