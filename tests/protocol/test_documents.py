"""Documents: round trips, and a named bad-input case for every constraint."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import pytest

from permitnet.protocol import DocumentError, decode_cbor
from permitnet.protocol.doc_examples import (
    example_cancellation,
    example_delivery_receipt,
    example_endorsement,
    example_export_authorization,
    example_export_declaration,
    example_import_certificate,
    example_message,
)
from permitnet.protocol.documents import (
    DOCUMENT_TYPES,
    Document,
    ImportCertificate,
    Item,
    document_from_payload,
)

if TYPE_CHECKING:
    from collections.abc import Callable

ID_A = bytes(range(32))
ID_B = bytes(range(1, 33))

ALL_EXAMPLES: list[Document] = [
    example_import_certificate(),
    example_export_authorization(ID_A),
    example_endorsement(ID_A),
    example_cancellation(ID_A),
    example_message(ID_A),
    example_message(ID_A, in_reply_to=ID_B),
    example_delivery_receipt(ID_A),
    example_delivery_receipt(ID_A, status="rejected", reason="unknown signing key"),
    example_export_declaration(),
]


@pytest.mark.parametrize("document", ALL_EXAMPLES, ids=lambda d: type(d).__name__)
def test_round_trip_through_cbor(document: Document) -> None:
    decoded = decode_cbor(document.to_cbor())
    again = document_from_payload(decoded)
    assert again == document
    assert type(again) is type(document)
    assert again.to_cbor() == document.to_cbor()


def test_every_document_type_has_an_example() -> None:
    assert {type(d).DOCUMENT_TYPE for d in ALL_EXAMPLES} == set(DOCUMENT_TYPES)


def test_item_create_fills_in_the_catalogue() -> None:
    item = Item.create("codeine-phosphate-hemihydrate", 1_000_000, "bulk powder")
    assert (item.base, item.convention, item.schedule) == ("codeine", "1961", "II")
    assert item.factor == "0.7367"
    assert item.base_mg == 736_700


def _ic() -> dict[str, Any]:
    return example_import_certificate().to_payload()


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """Return a mutation that sets ``path`` (dotted, with [i] indexes) to ``value``."""

    def mutate(payload: dict[str, Any]) -> None:
        target: Any = payload
        parts = path.replace("[", ".").replace("]", "").split(".")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = parts[-1]
        if value is _DELETE:
            del target[last]
        else:
            target[int(last) if last.isdigit() else last] = value

    return mutate


_DELETE = object()

# (case name, mutation of the example import certificate payload, words the error must contain)
BAD_IMPORT_CERTIFICATES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("version-2", _set("v", 2), "schema version"),
    ("version-bool", _set("v", True), "schema version"),
    ("version-missing", _set("v", _DELETE), "schema version"),
    ("wrong-type", _set("type", "export_authorization"), "expected"),
    ("unknown-field", _set("colour", "red"), "unknown field"),
    ("missing-number", _set("number", _DELETE), "missing field(s) number"),
    ("issuer-lowercase", _set("issuer", "de"), "issuer"),
    ("issuer-unassigned", _set("issuer", "XX"), "issuer"),
    ("issuer-alpha3", _set("issuer", "DEU"), "issuer"),
    ("recipient-is-issuer", _set("recipient", "DE"), "recipient"),
    ("issued-at-negative", _set("issued_at", -1), "issued_at"),
    ("issued-at-text", _set("issued_at", "1767603600"), "issued_at"),
    ("issued-at-bool", _set("issued_at", True), "issued_at"),
    ("authority-empty", _set("authority", "  "), "authority"),
    ("authority-too-long", _set("authority", "A" * 201), "authority"),
    ("authority-control-char", _set("authority", "BfArM\x00"), "control or bidirectional"),
    ("authority-newline", _set("authority", "BfArM\nX"), "control or bidirectional"),
    ("authority-bidi-override", _set("authority", "BfArM \u202egnp.exe"), "bidirectional"),
    ("importer-bidi-isolate", _set("importer.name", "Pharma \u2067GmbH"), "bidirectional"),
    ("conditions-del", _set("conditions", "bonded\x7f"), "control"),
    ("number-empty", _set("number", ""), "number"),
    ("date-bad-form", _set("date_of_issue", "2026-1-5"), "date_of_issue"),
    ("date-not-real", _set("date_of_issue", "2026-02-30"), "not a real calendar date"),
    ("date-as-int", _set("date_of_issue", 20260105), "date_of_issue"),
    ("importer-not-map", _set("importer", "Beispiel"), "importer"),
    ("importer-missing-licence", _set("importer.licence", _DELETE), "importer"),
    ("exporter-empty-name", _set("exporter.name", ""), "exporter.name"),
    ("exporting-country-not-recipient", _set("exporting_country", "FR"), "exporting_country"),
    ("items-empty", _set("items", []), "items"),
    ("items-not-array", _set("items", {}), "items"),
    ("items-too-many", lambda p: p.__setitem__("items", p["items"] * 51), "items"),
    (
        "item-unknown-substance",
        _set("items[0].substance", "unobtainium"),
        "not in the substance catalogue",
    ),
    ("item-wrong-base", _set("items[0].base", "codeine"), "items[0].base"),
    ("item-wrong-schedule", _set("items[0].schedule", "II"), "items[0].schedule"),
    ("item-wrong-convention", _set("items[0].convention", "1971"), "items[0].convention"),
    ("item-wrong-factor", _set("items[0].factor", "0.75"), "items[0].factor"),
    ("item-zero-quantity", _set("items[0].quantity_mg", 0), "items[0].quantity_mg"),
    ("item-negative-quantity", _set("items[0].quantity_mg", -5), "items[0].quantity_mg"),
    ("item-huge-quantity", _set("items[0].quantity_mg", 10**16), "items[0].quantity_mg"),
    ("item-float-quantity", _set("items[0].quantity_mg", 1000000.0), "items[0].quantity_mg"),
    ("item-bool-quantity", _set("items[0].quantity_mg", True), "items[0].quantity_mg"),
    ("item-text-quantity", _set("items[0].quantity_mg", "1000000"), "items[0].quantity_mg"),
    ("item-float-factor", _set("items[0].factor", 0.7521), "items[0].factor"),
    ("item-base-mg-off-by-one", _set("items[0].base_mg", 752_101), "items[0].base_mg"),
    ("item-extra-field", _set("items[1].grade", "USP"), "items[1]"),
    ("validity-reversed", _set("valid_until", "2026-01-04"), "valid_until"),
    (
        "validity-ends-before-issue",
        lambda p: p.update(valid_from="2025-12-01", valid_until="2025-12-31"),
        "date of issue",
    ),
    ("several-consignments-int", _set("several_consignments", 1), "several_consignments"),
    ("conditions-too-long", _set("conditions", "x" * 2001), "conditions"),
    ("estimate-year-too-early", _set("estimate_year", 1960), "estimate_year"),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(m, e, id=name) for name, m, e in BAD_IMPORT_CERTIFICATES],
)
def test_bad_import_certificate_is_refused(
    mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    payload = copy.deepcopy(_ic())
    mutate(payload)
    with pytest.raises(DocumentError) as caught:
        ImportCertificate.from_payload(payload)
    assert expected in str(caught.value)


def test_conditions_may_be_empty_and_multiline() -> None:
    payload = _ic()
    payload["conditions"] = ""
    assert ImportCertificate.from_payload(payload).conditions == ""
    payload["conditions"] = "line one\nline two"
    assert ImportCertificate.from_payload(payload).conditions == "line one\nline two"


def _ea() -> dict[str, Any]:
    return example_export_authorization(ID_A).to_payload()


BAD_EXPORT_AUTHORIZATIONS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("importing-country-not-recipient", _set("importing_country", "FR"), "importing_country"),
    ("certificate-id-short", _set("import_certificate.id", b"\x00" * 31), "import_certificate.id"),
    ("certificate-id-hex-text", _set("import_certificate.id", ID_A.hex()), "import_certificate.id"),
    (
        "certificate-missing-number",
        _set("import_certificate.number", _DELETE),
        "import_certificate",
    ),
    ("transport-mode-unknown", _set("transport_mode", "teleport"), "transport_mode"),
    ("transit-not-country", _set("transit_countries", ["ZZ"]), "transit_countries[0]"),
    ("transit-twice", _set("transit_countries", ["AE", "AE"]), "listed twice"),
    ("transit-is-importer", _set("transit_countries", ["DE"]), "transit_countries"),
    ("validity-reversed", _set("valid_until", "2026-01-14"), "valid_until"),
    ("route-control-char", _set("route", "HYD\tFRA"), "control or bidirectional"),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(m, e, id=name) for name, m, e in BAD_EXPORT_AUTHORIZATIONS],
)
def test_bad_export_authorization_is_refused(
    mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    payload = copy.deepcopy(_ea())
    mutate(payload)
    with pytest.raises(DocumentError) as caught:
        document_from_payload(payload)
    assert expected in str(caught.value)


BAD_OTHERS: list[tuple[str, Callable[[], object], str]] = [
    (
        "endorsement-line-twice",
        lambda: _with(
            example_endorsement(ID_A),
            "received",
            [{"line": 0, "substance": "morphine", "quantity_mg": 1}] * 2,
        ),
        "listed twice",
    ),
    (
        "endorsement-negative",
        lambda: _with(
            example_endorsement(ID_A),
            "received",
            [{"line": 0, "substance": "morphine", "quantity_mg": -1}],
        ),
        "quantity_mg",
    ),
    ("endorsement-no-lines", lambda: _with(example_endorsement(ID_A), "received", []), "received"),
    (
        "endorsement-line-out-of-range",
        lambda: _with(
            example_endorsement(ID_A),
            "received",
            [{"line": 100, "substance": "morphine", "quantity_mg": 1}],
        ),
        "line",
    ),
    (
        "endorsement-unknown-substance",
        lambda: _with(
            example_endorsement(ID_A),
            "received",
            [{"line": 0, "substance": "unobtainium", "quantity_mg": 1}],
        ),
        "received[0].substance",
    ),
    ("cancellation-no-reason", lambda: _with(example_cancellation(ID_A), "reason", ""), "reason"),
    (
        "cancellation-id-none",
        lambda: _with(example_cancellation(ID_A), "document", None),
        "document",
    ),
    ("message-empty", lambda: _with(example_message(ID_A), "text", ""), "text"),
    (
        "message-reply-short",
        lambda: _with(example_message(ID_A), "in_reply_to", b"x"),
        "in_reply_to",
    ),
    (
        "receipt-status-unknown",
        lambda: _with(example_delivery_receipt(ID_A), "status", "lost"),
        "status",
    ),
    (
        "receipt-rejected-no-reason",
        lambda: _with(example_delivery_receipt(ID_A), "status", "rejected"),
        "must say why",
    ),
    (
        "receipt-accepted-with-reason",
        lambda: _with(example_delivery_receipt(ID_A), "reason", "fine"),
        "acceptance",
    ),
    (
        "declaration-importing-country",
        lambda: _with(example_export_declaration(), "importing_country", "FR"),
        "importing_country",
    ),
    ("not-a-map", lambda: [1, 2], "map"),
    ("unknown-type", lambda: {"type": "permit", "v": 1}, "not a document type"),
    ("type-not-text", lambda: {"type": 7, "v": 1}, "not a document type"),
]


def _with(document: Document, key: str, value: object) -> dict[str, Any]:
    payload = document.to_payload()
    payload[key] = value
    return payload


@pytest.mark.parametrize(
    ("make", "expected"), [pytest.param(m, e, id=name) for name, m, e in BAD_OTHERS]
)
def test_bad_documents_are_refused(make: Callable[[], object], expected: str) -> None:
    with pytest.raises(DocumentError) as caught:
        document_from_payload(make())
    assert expected in str(caught.value)


def test_refers_to_follows_the_hash_linked_chain() -> None:
    from permitnet.protocol import doc_examples as ex
    from permitnet.protocol.documents import refers_to

    a, b = bytes(range(32)), bytes(range(1, 33))
    assert refers_to(ex.example_import_certificate()) is None
    assert refers_to(ex.example_export_declaration()) is None
    assert refers_to(ex.example_export_authorization(a)) == a
    assert refers_to(ex.example_endorsement(a)) == a
    assert refers_to(ex.example_cancellation(b)) == b
    assert refers_to(ex.example_message(b)) == b
    assert refers_to(ex.example_delivery_receipt(a)) == a
