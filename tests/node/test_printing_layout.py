"""The printed page: every field, the QR code at ~0.5 mm a module, the signed file attached."""

from __future__ import annotations

import hashlib
import io
from typing import TYPE_CHECKING

import pypdfium2
import pytest
import zxingcpp
from pypdf import PdfReader

from permitnet.node.print_layout import (
    MODULE_MM,
    Field,
    ItemRow,
    PrintError,
    Section,
    Sheet,
    draw_sheet,
    qr_matrix,
)
from permitnet.protocol import sign1
from permitnet.protocol.qr import decode_qr_text, encode_qr_text

if TYPE_CHECKING:
    from pathlib import Path

SIGNED = sign1(b"\xa1\x61v\x01" + b"payload " * 120, bytes(32), b"k" * 16)
INCOMPRESSIBLE = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(60))


def make_sheet(signed: bytes = SIGNED, /, **changes: object) -> Sheet:
    fields = {
        "title": "Import certificate",
        "legal_basis": "Single Convention on Narcotic Drugs, 1961, article 31",
        "issuing_country": "Germany",
        "issuing_authority": "Bundesopiumstelle, Bonn",
        "reference": "DE-IC-2026-000123",
        "date_of_issue": "2026-11-24",
        "sections_before_items": (
            Section(
                heading="Parties",
                columns=2,
                fields=(
                    Field(label="Importer", value="Pharma Import GmbH\nHauptstraße 1, Berlin"),
                    Field(label="Exporter", value="Laboratoires Export SA\nParis"),
                ),
            ),
        ),
        "item_headings": ("No.", "Substance", "Quantity"),
        "item_widths": (10, 100, 70),
        "items": (ItemRow(cells=("1", "Morphine sulfate pentahydrate", "1.5 kg")),),
        "sections_after_items": (
            Section(heading="Conditions", fields=(Field(label="Estimate year", value="2026"),)),
        ),
        "verification": (Field(label="Signing key", value="6b6b6b6b"),),
        "attachment_name": "import-certificate-DE-IC-2026-000123.cose",
        "qr_text": encode_qr_text(signed),
        "signed": signed,
        "issued_at": 1_795_000_000,
    }
    fields.update(changes)
    return Sheet(**fields)  # type: ignore[arg-type]  # the table above has the right types


def page_texts(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_every_field_is_printed() -> None:
    text = page_texts(draw_sheet(make_sheet()))
    for expected in (
        "GERMANY",
        "Bundesopiumstelle, Bonn",
        "IMPORT CERTIFICATE",
        "Single Convention on Narcotic Drugs, 1961, article 31",
        "DE-IC-2026-000123",
        "2026-11-24",
        "Pharma Import GmbH",
        "Hauptstraße 1, Berlin",  # non-ASCII prints as written
        "Laboratoires Export SA",
        "Morphine sulfate pentahydrate",
        "1.5 kg",
        "Estimate year",
        "6b6b6b6b",
        "import-certificate-DE-IC-2026-000123.cose",
        "Page 1 of",
    ):
        assert expected in text, expected


def test_the_signed_bytes_are_attached_exactly() -> None:
    reader = PdfReader(io.BytesIO(draw_sheet(make_sheet())))
    assert reader.attachments == {"import-certificate-DE-IC-2026-000123.cose": [SIGNED]}


def test_printing_is_deterministic() -> None:
    assert draw_sheet(make_sheet()) == draw_sheet(make_sheet())


def test_the_qr_code_renders_and_decodes_to_the_signed_bytes() -> None:
    pdf = draw_sheet(make_sheet())
    document = pypdfium2.PdfDocument(pdf)
    image = document[len(document) - 1].render(scale=200 / 72).to_pil()
    results = zxingcpp.read_barcodes(image)
    assert [r.format for r in results] == [zxingcpp.BarcodeFormat.QRCode]
    assert decode_qr_text(results[0].bytes) == SIGNED
    # Error correction Q is used when it fits, as the EU DCC recommends for paper.
    assert results[0].ec_level == "Q"


def test_a_module_is_half_a_millimetre_on_paper() -> None:
    pdf = draw_sheet(make_sheet())
    code, _ = qr_matrix(encode_qr_text(SIGNED))
    modules = code.symbol_size(border=0)[0]
    # Render at 254 dpi (10 pixels a mm) and measure the dark extent of the code.
    document = pypdfium2.PdfDocument(pdf)
    image = document[len(document) - 1].render(scale=254 / 72, grayscale=True).to_pil()
    result = zxingcpp.read_barcodes(image)[0]
    position = result.position
    width_px = abs(position.top_right.x - position.top_left.x)
    width_mm = width_px / 10
    assert width_mm == pytest.approx(modules * MODULE_MM, abs=1.0)


def test_a_large_document_falls_back_to_a_lower_error_correction_level() -> None:
    # 2,400 bytes of hash output do not compress: too large for level Q at version 40.
    text = encode_qr_text(INCOMPRESSIBLE * 2)
    code, level = qr_matrix(text)
    assert level in {"M", "L"}
    assert code.version == 40 or level == "M"


def test_text_too_large_for_any_qr_code_is_refused() -> None:
    with pytest.raises(PrintError, match="does not fit a QR code"):
        qr_matrix("PN1:" + "0" * 5000)


def test_missing_fonts_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PrintError, match="fonts-dejavu-core"):
        draw_sheet(make_sheet(), font_dir=tmp_path)


def test_long_content_flows_onto_more_pages_with_the_qr_code_whole() -> None:
    many = tuple(ItemRow(cells=(str(n), f"Substance {n}", "1 g")) for n in range(1, 80))
    pdf = draw_sheet(make_sheet(items=many))
    document = pypdfium2.PdfDocument(pdf)
    assert len(document) >= 2
    text = page_texts(pdf)
    assert "Substance 79" in text
    assert f"Page {len(document)} of {len(document)}" in text
    image = document[len(document) - 1].render(scale=200 / 72).to_pil()
    assert decode_qr_text(zxingcpp.read_barcodes(image)[0].bytes) == SIGNED


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        pytest.param(
            {"issuing_authority": "国家药品监督管理局"}, "issuing authority", id="chinese"
        ),
        pytest.param(
            {"items": (ItemRow(cells=("1", "मॉर्फिन", "1 g")),)}, "items table", id="devanagari"
        ),
    ],
)
def test_text_the_font_cannot_draw_is_refused_not_printed_as_boxes(
    changes: dict[str, object], where: str
) -> None:
    with pytest.raises(PrintError, match=f"cannot print '{where}': the font .* has no glyph"):
        draw_sheet(make_sheet(**changes))


def test_greek_and_cyrillic_print_as_written() -> None:
    sheet = make_sheet(issuing_authority="Εθνικός Οργανισμός Φαρμάκων / Минздрав России")
    assert "Минздрав России" in page_texts(draw_sheet(sheet))


def test_later_pages_repeat_the_reference_and_long_footers_are_shortened() -> None:
    many = tuple(ItemRow(cells=(str(n), f"Substance {n}", "1 g")) for n in range(1, 80))
    reference = "DE-IC-2026-" + "9" * 53
    pdf = draw_sheet(make_sheet(items=many, reference=reference))
    pages = [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]
    assert len(pages) >= 2
    assert "(continued)" not in pages[0]
    assert all(f"Import certificate {reference}" in " ".join(p.split()) for p in pages[1:])
    assert all("\u2026" in page for page in pages)  # the footer was shortened to fit


def _y_of(pdf: bytes, needle: str) -> float:
    """The height on the first page (in points, from the bottom) where ``needle`` is printed."""
    found: list[float] = []

    def visit(text: str, _cm: object, tm: list[float], _font: object, _size: object) -> None:
        if needle in text:
            found.append(tm[5])

    PdfReader(io.BytesIO(pdf)).pages[0].extract_text(visitor_text=visit)
    assert found, needle
    return found[0]


def test_an_odd_field_in_a_two_column_section_prints_on_its_own_line() -> None:
    def sheet_with(count: int) -> bytes:
        fields = tuple(Field(label=f"Party {n}", value=f"Name {n}") for n in range(count))
        section = Section(heading="Parties", columns=2, fields=fields)
        return draw_sheet(make_sheet(sections_before_items=(section,)))

    two, three = sheet_with(2), sheet_with(3)
    assert "Name 2" in page_texts(three)
    # The third field takes one plain row (about 5 mm = 14 pt), not a row and a heading band.
    drop = _y_of(two, "SUBSTANCES AND QUANTITIES") - _y_of(three, "SUBSTANCES AND QUANTITIES")
    assert 8 < drop < 20
