"""docs/protocol.md stays true: the worked example, the field tables and the rules match the code."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest

from permitnet.protocol import (
    EncodeError,
    RuleViolation,
    decode_cbor,
    encode_cbor,
    errors,
    public_key_from_seed,
)
from permitnet.protocol.catalogue import DEFAULT_CATALOGUE
from permitnet.protocol.cbor import Tag
from permitnet.protocol.doc_base import HEADER_KEYS
from permitnet.protocol.doc_examples import (
    diagnostic_notation,
    example_export_authorization,
    example_import_certificate,
    worked_example,
)
from permitnet.protocol.doc_parts import CertificateReference, Item, Party, ReceivedItem
from permitnet.protocol.documents import DOCUMENT_TYPES
from permitnet.protocol.rules import RULES, check_export_authorization
from permitnet.protocol.signed import SignedDocument

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
_BLOCK = re.compile(r"<!-- example:([a-z-]+) -->\n```[a-z]*\n(.*?)\n```", re.DOTALL)


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _blocks() -> dict[str, str]:
    return dict(_BLOCK.findall(_text()))


def _section(heading_start: str) -> str:
    """Return the text from a heading starting with ``heading_start`` to the next heading."""
    text = _text()
    match = re.search(
        rf"^#+ {re.escape(heading_start)}.*?$(.*?)(?=^#+ |\Z)", text, re.MULTILINE | re.DOTALL
    )
    assert match is not None, heading_start
    return match.group(1)


def _table_fields(section: str) -> set[str]:
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))


@pytest.mark.parametrize("name", sorted(worked_example()))
def test_worked_example_block_is_current(name: str) -> None:
    blocks = _blocks()
    assert name in blocks, f"docs/protocol.md has no example block {name!r}"
    assert blocks[name] == worked_example()[name], f"block {name!r} is out of date"


def test_worked_example_is_self_consistent() -> None:
    # Check the hex with independent steps, not only against the generator.
    blocks = _blocks()
    raw = bytes.fromhex(blocks["signed-hex"].replace("\n", ""))
    public_key = bytes.fromhex(blocks["public-key"])
    assert public_key == public_key_from_seed(bytes.fromhex(blocks["seed"]))
    assert hashlib.sha256(public_key).digest()[:16].hex() == blocks["kid"]
    assert hashlib.sha256(raw).hexdigest() == blocks["id"]
    signed = SignedDocument.verify(raw, public_key)
    assert signed.document == example_import_certificate()
    payload = bytes.fromhex(blocks["payload-hex"].replace("\n", ""))
    assert encode_cbor(decode_cbor(payload)) == payload
    assert payload in raw
    assert bytes.fromhex(blocks["protected-hex"]) in raw


def test_catalogue_digest_is_current() -> None:
    edition, digest = _blocks()["catalogue"].split()
    assert edition == DEFAULT_CATALOGUE.edition
    assert digest == DEFAULT_CATALOGUE.digest().hex()


@pytest.mark.parametrize("document_type", sorted(DOCUMENT_TYPES))
def test_every_field_of_every_type_is_specified(document_type: str) -> None:
    heading = next(
        line.lstrip("# ").strip()
        for line in _text().splitlines()
        if line.startswith("### ") and f"`{document_type}`" in line
    )
    fields = _table_fields(_section(heading))
    assert fields == set(DOCUMENT_TYPES[document_type].FIELDS)


@pytest.mark.parametrize(
    ("title", "keys"),
    [
        ("4.1 Common fields", HEADER_KEYS),
        ("4.2 Parts", Party._KEYS | Item._KEYS | CertificateReference._KEYS | ReceivedItem._KEYS),
    ],
)
def test_common_fields_and_parts_are_specified(title: str, keys: frozenset[str]) -> None:
    assert _table_fields(_section(title)) == set(keys)


def test_every_rule_is_specified() -> None:
    section = _section("7. Convention rules")
    assert set(re.findall(r"^\| `([a-z-]+)` \|", section, re.MULTILINE)) == set(RULES)


def test_companion_specifications_are_named() -> None:
    text = _text()
    assert "docs/registry.md" in text
    assert "docs/exchange.md" in text


def test_rule_message_example_is_what_the_code_says() -> None:
    certificate = dataclasses.replace(example_import_certificate(), several_consignments=True)
    authorization = example_export_authorization(
        bytes(32), items=(Item.create("oxycodone-hydrochloride", 100_001, "bulk powder"),)
    )
    with pytest.raises(RuleViolation) as caught:
        check_export_authorization(
            authorization,
            certificate,
            certificate_id=bytes(32),
            today=dt.date(2026, 1, 20),
            authorized_mg={"oxycodone-hydrochloride": 400_000},
            prior_authorizations=1,
        )
    flat = " ".join(_text().split())
    assert f"`{caught.value}`" in flat


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(None, "null", id="null"),
        pytest.param(True, "true", id="true"),
        pytest.param(False, "false", id="false"),
        pytest.param(-8, "-8", id="negative"),
        pytest.param("a\nb", '"a\\nb"', id="text-escape"),
        pytest.param("für", '"für"', id="text-unicode"),
        pytest.param(b"\x01\xff", "h'01ff'", id="bytes"),
        pytest.param([1, "x"], '[1, "x"]', id="flat-array"),
        pytest.param({}, "{}", id="empty-map"),
        pytest.param(
            {"bb": 1, "a": 2, 10: 3}, '{\n  10: 3,\n  "a": 2,\n  "bb": 1\n}', id="map-order"
        ),
        pytest.param([[1]], "[\n  [1]\n]", id="nested-array"),
        pytest.param(Tag(18, [1]), "18([1])", id="tag"),
    ],
)
def test_diagnostic_notation(value: object, text: str) -> None:
    assert diagnostic_notation(value) == text


def test_diagnostic_notation_refuses_floats() -> None:
    with pytest.raises(EncodeError):
        diagnostic_notation(1.5)


def test_error_table_matches_status_hints() -> None:
    section = _section("8. Versions and errors")
    rows = re.findall(r"^\| `([A-Za-z]+)`[^|]*\| [^|]+ \| (\d{3}) \|$", section, re.MULTILINE)
    assert len(rows) == 6
    for name, status in rows:
        assert getattr(errors, name).status_hint == int(status), name


def test_catalogue_table_is_the_catalogue() -> None:
    text = _text()
    start = text.index("<!-- catalogue-table -->\n") + len("<!-- catalogue-table -->\n")
    end = text.find("\n\n", start)
    table = text[start : len(text) if end < 0 else end].strip().splitlines()
    expected = [
        "| code | name | base | Convention | schedule | regime | formula | factor |",
        "|---|---|---|---|---|---|---|---|",
    ] + [
        f"| `{s.code}` | {s.name} | `{s.base}` | {s.convention} | {s.schedule} | "
        f"`{s.regime}` | {s.formula} | {s.factor} |"
        for s in DEFAULT_CATALOGUE.substances
    ]
    assert table == expected
