"""The template filters: what people read for quantities, times, countries and documents."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from permitnet.node.web._format import FILTERS, country_name, doc_label, mg, short_id, utc

DOC_ID = "ab" * 32


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "-"), (0, "0 mg"), (1_500_000, "1.5 kg"), (14_734_000, "14.734 kg")],
)
def test_mg(value: int | None, expected: str) -> None:
    assert mg(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "-"),
        (0, "1970-01-01 00:00 UTC"),
        (1_795_000_000, "2026-11-18 11:06 UTC"),
        (10**15, "far future"),
        (-(10**15), "before 1970"),
    ],
)
def test_utc(value: int | None, expected: str) -> None:
    assert utc(value) == expected


@pytest.mark.parametrize(
    ("code", "expected"), [("FR", "FR (France)"), ("XX", "XX"), ("", "-"), (None, "-")]
)
def test_country_name(code: str | None, expected: str) -> None:
    assert country_name(code) == expected


def test_short_id() -> None:
    assert short_id(DOC_ID) == DOC_ID[:12]
    assert short_id(None) == "-"
    assert short_id("") == "-"


@pytest.mark.parametrize(
    ("reference", "refers_to_reference", "expected"),
    [
        ("EA-FR-2026-001", None, "EA-FR-2026-001"),
        # A number of its own wins over the one it refers to.
        ("EA-FR-2026-002", "IC-DE-2026-001", "EA-FR-2026-002"),
        # An endorsement, cancellation or message: named by what it is about.
        (None, "EA-FR-2026-001", "of EA-FR-2026-001"),
        ("", "EA-FR-2026-001", "of EA-FR-2026-001"),
        # Nothing to name it by: its identifier, shortened.
        (None, None, DOC_ID[:12]),
        (None, "", DOC_ID[:12]),
    ],
)
def test_doc_label(reference: str | None, refers_to_reference: str | None, expected: str) -> None:
    row = SimpleNamespace(id=DOC_ID, reference=reference, refers_to_reference=refers_to_reference)
    assert doc_label(row) == expected


def test_every_filter_is_registered() -> None:
    assert {"mg", "utc", "country_name", "short_id", "doc_label", "hexid"} <= set(FILTERS)
