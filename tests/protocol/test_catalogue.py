"""The substance catalogue: factors from atomic weights, lookups, edition digest, payload."""

from __future__ import annotations

import copy
import hashlib
from fractions import Fraction
from typing import Any

import pytest

from permitnet.protocol import decode_cbor
from permitnet.protocol.catalogue import (
    DEFAULT_CATALOGUE,
    Catalogue,
    CatalogueError,
    formula_weight,
    regime_for,
)
from permitnet.protocol.catalogue_data import BASES, EDITION, SALTS
from permitnet.protocol.quantities import parse_factor

# Molecular weights as printed in the pharmacopoeial monographs (USP / Ph. Eur.), two
# decimals: (base weight x base molecules) / salt weight must agree with the factor computed
# from atomic weights to within the rounding of the printed figures.
MONOGRAPH_WEIGHTS: dict[str, tuple[str, int, str]] = {
    "morphine-sulfate-pentahydrate": ("285.34", 2, "758.83"),
    "morphine-hydrochloride-trihydrate": ("285.34", 1, "375.84"),
    "codeine-phosphate-hemihydrate": ("299.36", 1, "406.37"),
    "codeine-phosphate-sesquihydrate": ("299.36", 1, "424.38"),
    "oxycodone-hydrochloride": ("315.36", 1, "351.82"),
    "fentanyl-citrate": ("336.47", 1, "528.59"),
    "hydromorphone-hydrochloride": ("285.34", 1, "321.80"),
    "methadone-hydrochloride": ("309.45", 1, "345.91"),
    "pethidine-hydrochloride": ("247.33", 1, "283.79"),
    "cocaine-hydrochloride": ("303.35", 1, "339.81"),
    "buprenorphine-hydrochloride": ("467.64", 1, "504.10"),
    "methylphenidate-hydrochloride": ("233.31", 1, "269.77"),
    "phenobarbital-sodium": ("232.24", 1, "254.22"),
    "dexamfetamine-sulfate": ("135.21", 2, "368.49"),
}


@pytest.mark.parametrize(("code", "weights"), sorted(MONOGRAPH_WEIGHTS.items()))
def test_factor_matches_monograph_weights(code: str, weights: tuple[str, int, str]) -> None:
    base_weight, count, salt_weight = weights
    expected = Fraction(base_weight) * count / Fraction(salt_weight)
    factor = parse_factor(DEFAULT_CATALOGUE.get(code).factor)
    assert abs(factor - expected) <= Fraction(2, 10_000)


def test_molecular_weights() -> None:
    assert formula_weight("C17H19NO3") == Fraction("285.343")  # morphine
    assert formula_weight("H2O") == Fraction("18.015")
    assert formula_weight("HCl") == Fraction("36.458")


@pytest.mark.parametrize("formula", ["", "c17", "C17H19NO3+", "Xx2", "C17 H19"])
def test_bad_formula(formula: str) -> None:
    with pytest.raises(CatalogueError):
        formula_weight(formula)


def test_size_and_coverage() -> None:
    assert len(BASES) >= 40
    schedules = {(s.convention, s.schedule) for s in DEFAULT_CATALOGUE.substances}
    assert schedules == {
        ("1961", "I"),
        ("1961", "II"),
        ("1971", "I"),
        ("1971", "II"),
        ("1971", "III"),
        ("1971", "IV"),
    }
    assert len(DEFAULT_CATALOGUE) == len(BASES) + len(SALTS)


def test_lookups() -> None:
    salt = DEFAULT_CATALOGUE.get("codeine-phosphate-hemihydrate")
    assert salt.base == "codeine"
    assert not salt.is_base
    assert DEFAULT_CATALOGUE.base_of(salt.code).code == "codeine"
    assert DEFAULT_CATALOGUE.base_of("codeine").is_base
    assert DEFAULT_CATALOGUE.regime("morphine") == "import_certificate"
    assert DEFAULT_CATALOGUE.regime("buprenorphine-hydrochloride") == "export_declaration"
    assert DEFAULT_CATALOGUE.regime("diazepam") == "export_declaration"
    assert DEFAULT_CATALOGUE.regime("methylphenidate") == "import_certificate"
    assert "morphine" in DEFAULT_CATALOGUE
    assert "unobtainium" not in DEFAULT_CATALOGUE
    assert [s.code for s in DEFAULT_CATALOGUE.salts_of("morphine")] == [
        "morphine-hydrochloride-trihydrate",
        "morphine-sulfate",
        "morphine-sulfate-pentahydrate",
    ]
    with pytest.raises(CatalogueError, match="unobtainium"):
        DEFAULT_CATALOGUE.get("unobtainium")


@pytest.mark.parametrize(
    ("convention", "schedule", "regime"),
    [
        ("1961", "I", "import_certificate"),
        ("1961", "II", "import_certificate"),
        ("1961", "IV", "import_certificate"),
        ("1971", "I", "import_certificate"),
        ("1971", "II", "import_certificate"),
        ("1971", "III", "export_declaration"),
        ("1971", "IV", "export_declaration"),
    ],
)
def test_regime_for(convention: str, schedule: str, regime: str) -> None:
    assert regime_for(convention, schedule) == regime


@pytest.mark.parametrize(
    ("convention", "schedule", "words"),
    [
        pytest.param("1988", "I", "unknown Convention", id="1988-convention"),
        pytest.param("1971", "V", "unknown Convention", id="schedule-v"),
        pytest.param("1961", "III", "need no import certificate", id="1961-schedule-iii"),
    ],
)
def test_regime_for_refuses(convention: str, schedule: str, words: str) -> None:
    with pytest.raises(CatalogueError, match=words):
        regime_for(convention, schedule)


def test_every_factor_is_canonical_and_bases_are_one() -> None:
    for entry in DEFAULT_CATALOGUE.substances:
        value = parse_factor(entry.factor)
        assert (value == 1) == entry.is_base, entry.code


def test_digest_is_sha256_of_deterministic_cbor_and_stable() -> None:
    catalogue = DEFAULT_CATALOGUE
    assert catalogue.edition == EDITION
    assert catalogue.digest() == hashlib.sha256(catalogue.to_cbor()).digest()
    again = Catalogue.from_payload(decode_cbor(catalogue.to_cbor()))
    assert again == catalogue
    assert again.digest() == catalogue.digest()


def _payload() -> dict[str, Any]:
    return copy.deepcopy(DEFAULT_CATALOGUE.to_payload())


def _entry(code: str, payload: dict[str, Any]) -> dict[str, Any]:
    return next(e for e in payload["substances"] if e["code"] == code)


BAD_CATALOGUES: list[tuple[str, Any, str]] = [
    ("not-a-map", lambda p: [p], "map"),
    ("extra-key", lambda p: p | {"extra": 1}, "exactly"),
    ("empty-edition", lambda p: p | {"edition": ""}, "edition"),
    ("no-substances", lambda p: p | {"substances": []}, "1 to 10000 entries"),
    ("unsorted", lambda p: p | {"substances": p["substances"][::-1]}, "sorted"),
    ("duplicate", lambda p: p | {"substances": [p["substances"][0]] * 2}, "twice"),
    ("missing-base", lambda p: p | {"substances": [_entry("fentanyl-citrate", p)]}, "base"),
    (
        "wrong-regime",
        lambda p: (_entry("diazepam", p).update(regime="import_certificate"), p)[1],
        "regime",
    ),
    ("bad-factor", lambda p: (_entry("fentanyl-citrate", p).update(factor="1.2"), p)[1], "factor"),
    (
        "base-factor-not-one",
        lambda p: (_entry("fentanyl", p).update(factor="0.5"), p)[1],
        "factor '1'",
    ),
    (
        "upper-case-code",
        lambda p: (_entry("fentanyl-citrate", p).update(code="Fentanyl-citrate"), p)[1],
        "code",
    ),
    (
        "salt-schedule-differs",
        lambda p: (_entry("fentanyl-citrate", p).update(schedule="II"), p)[1],
        "schedule",
    ),
    ("entry-missing-key", lambda p: (_entry("fentanyl", p).pop("formula"), p)[1], "missing"),
    ("entry-int-field", lambda p: (_entry("fentanyl", p).update(name=5), p)[1], "text"),
    ("entry-huge-name", lambda p: (_entry("fentanyl", p).update(name="F" * 201), p)[1], "1 to 200"),
    (
        "huge-factor",
        lambda p: (_entry("fentanyl-citrate", p).update(factor="0." + "1" * 5000), p)[1],
        "1 to 200",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "words"), [pytest.param(m, w, id=name) for name, m, w in BAD_CATALOGUES]
)
def test_bad_catalogue_is_refused(mutate: Any, words: str) -> None:
    with pytest.raises(CatalogueError) as caught:
        Catalogue.from_payload(mutate(_payload()))
    assert words in str(caught.value)


def test_check_published() -> None:
    DEFAULT_CATALOGUE.check_published(DEFAULT_CATALOGUE.edition, DEFAULT_CATALOGUE.digest())
    with pytest.raises(CatalogueError, match=r"edition 'permitnet-2027\.1'"):
        DEFAULT_CATALOGUE.check_published("permitnet-2027.1", DEFAULT_CATALOGUE.digest())
    with pytest.raises(CatalogueError, match="differs"):
        DEFAULT_CATALOGUE.check_published(DEFAULT_CATALOGUE.edition, bytes(32))
