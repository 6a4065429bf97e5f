"""Drawing a printed document: an A4 page with every field, the issuing authority and a QR code.

This module knows nothing about document types: :mod:`permitnet.node.printing` turns a signed
document into a :class:`Sheet` (what to print, in the Conventions' words), and
:func:`draw_sheet` lays it out. Keeping the two apart means the layout is tested on its own and
every document type is printed the same, recognizable way.

The QR code is drawn as vector squares, not as a picture, so it is sharp at any printer
resolution and each module is exactly :data:`MODULE_MM` wide on paper.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import segno
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.errors import FPDFException
from fpdf.fonts import FontFace

from permitnet.node.print_fonts import FONT_DIR, FONT_FILES, PrintError, check_printable

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "ERROR_CORRECTION_LEVELS",
    "FONT_DIR",
    "MODULE_MM",
    "Field",
    "ItemRow",
    "PrintError",
    "Section",
    "Sheet",
    "draw_sheet",
    "qr_matrix",
]

#: Width of one QR module on paper. About 0.5 mm scans reliably from paper with a phone or a
#: desk scanner at 200 dpi (4 pixels a module), and keeps even a large code under 9 cm.
MODULE_MM: Final = 0.5
#: The blank margin the QR standard requires around the code, in modules.
QUIET_ZONE_MODULES: Final = 4
#: Error correction levels tried in order. Q (about 25 % of the code may be damaged) is the
#: level the EU Digital COVID Certificate specification recommends for paper: printed
#: documents are folded, stamped, signed across and photocopied. A document too large for
#: Q at version 40 falls back to M (15 %), then L (7 %), rather than not printing at all.
ERROR_CORRECTION_LEVELS: Final = ("Q", "M", "L")
_FONT = "DejaVu"
_PAGE_WIDTH: Final = 210.0
_MARGIN: Final = 15.0
_CONTENT_WIDTH: Final = _PAGE_WIDTH - 2 * _MARGIN
_INK: Final = (20, 33, 61)
_GREY: Final = (90, 90, 90)
_BAND: Final = (228, 233, 242)


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    """One labelled value on the sheet."""

    label: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Section:
    """A headed group of fields; ``columns`` = 2 prints them side by side (the parties)."""

    heading: str
    fields: tuple[Field, ...]
    columns: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemRow:
    """One line of the items table: the cells, in the order of :attr:`Sheet.item_headings`."""

    cells: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Sheet:
    """Everything printed on a document, in reading order."""

    title: str
    legal_basis: str
    issuing_country: str
    issuing_authority: str
    reference: str
    date_of_issue: str
    sections_before_items: tuple[Section, ...]
    item_headings: tuple[str, ...]
    item_widths: tuple[int, ...]
    items: tuple[ItemRow, ...]
    items_heading: str = "Substances and quantities"
    sections_after_items: tuple[Section, ...]
    verification: tuple[Field, ...]
    attachment_name: str
    qr_text: str
    signed: bytes
    issued_at: int


@functools.lru_cache(maxsize=64)
def qr_matrix(text: str) -> tuple[segno.QRCode, str]:
    """Build the QR code for ``text`` in alphanumeric mode, at the first level that fits.

    Choosing the mask takes tens of milliseconds; the last codes made are kept, so that
    verifying a PDF (which reprints it) does not build its code twice.

    Returns:
        The code and the error correction level used (``"Q"``, ``"M"`` or ``"L"``).

    Raises:
        PrintError: the text does not fit a QR code at any level.
    """
    for level in ERROR_CORRECTION_LEVELS:
        try:
            code = segno.make_qr(text, error=level, mode="alphanumeric", boost_error=False)
        except segno.DataOverflowError:
            continue
        return code, level
    raise PrintError(f"the QR text of {len(text)} characters does not fit a QR code")


def draw_sheet(sheet: Sheet, *, font_dir: Path = FONT_DIR) -> bytes:
    """Lay out ``sheet`` on A4 pages and return the PDF, with the signed file attached.

    Args:
        sheet: what to print.
        font_dir: where DejaVuSans.ttf and DejaVuSans-Bold.ttf are.

    Returns:
        The PDF bytes. Printing the same sheet twice gives the same bytes.

    Raises:
        PrintError: the fonts are missing, or the QR text does not fit a QR code.
    """
    code, level = qr_matrix(sheet.qr_text)
    check_printable(_texts(sheet), font_dir)
    pdf = _Pdf(sheet)
    try:
        for style, name in FONT_FILES.items():
            pdf.add_font(_FONT, style, str(font_dir / name))
    except (OSError, FPDFException) as e:
        raise PrintError(
            f"cannot load the DejaVu fonts from {font_dir} (Debian package fonts-dejavu-core): {e}"
        ) from e
    issued = datetime.fromtimestamp(sheet.issued_at, UTC)
    pdf.set_creation_date(issued)
    pdf.set_title(f"{sheet.title} {sheet.reference}")
    pdf.set_author(sheet.issuing_authority)
    pdf.set_subject(sheet.legal_basis)
    pdf.set_creator("permitnet")
    pdf.set_lang("en")
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    _header(pdf, sheet)
    for section in sheet.sections_before_items:
        _section(pdf, section)
    if sheet.items:
        _items(pdf, sheet)
    for section in sheet.sections_after_items:
        _section(pdf, section)
    _verification(pdf, sheet, code, level)
    pdf.embed_file(
        bytes=sheet.signed,
        basename=sheet.attachment_name,
        desc=f"The signed {sheet.title.lower()} (COSE_Sign1), the original of this printout",
        mime_type="application/cose",
        creation_date=issued,
        modification_date=issued,
    )
    try:
        return bytes(pdf.output())
    except FPDFException as e:  # pragma: no cover - fpdf2 refuses only malformed layouts
        raise PrintError(f"cannot write the PDF: {e}") from e


def _texts(sheet: Sheet) -> list[tuple[str, str]]:
    """Every text the sheet prints in the regular or bold face, named by where it stands."""
    texts: list[tuple[str, str]] = [
        ("issuing authority", sheet.issuing_authority),
        ("reference", sheet.reference),
    ]
    for section in (*sheet.sections_before_items, *sheet.sections_after_items):
        texts.extend((field.label, field.value) for field in section.fields)
    texts.extend(("items table", cell) for row in sheet.items for cell in row.cells)
    texts.extend((field.label, field.value) for field in sheet.verification)
    return texts


class _Pdf(FPDF):
    """An FPDF page with the document's reference and page number in every footer."""

    def __init__(self, sheet: Sheet) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.sheet = sheet
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)

    def _fit(self, text: str, width: float) -> str:
        """Shorten ``text`` with an ellipsis until it fits ``width`` in the current font."""
        if self.get_string_width(text) <= width:
            return text
        while text and self.get_string_width(text + "\u2026") > width:
            text = text[:-1]
        return text + "\u2026"

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self.set_font(_FONT, "", 8)
        self.set_text_color(*_GREY)
        self.multi_cell(
            _CONTENT_WIDTH,
            4,
            f"{self.sheet.title} {self.sheet.reference}, {self.sheet.issuing_authority} "
            "(continued)",
            align="L",
            new_x=XPos.LMARGIN,
        )
        self.ln(2)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font(_FONT, "", 7.5)
        self.set_text_color(*_GREY)
        self.cell(
            _CONTENT_WIDTH * 0.75,
            4,
            self._fit(
                f"{self.sheet.title} {self.sheet.reference} - {self.sheet.issuing_country}",
                _CONTENT_WIDTH * 0.75 - 2,
            ),
        )
        self.cell(
            _CONTENT_WIDTH * 0.25,
            4,
            f"Page {self.page_no()} of {{nb}}",
            align="R",
        )


def _header(pdf: FPDF, sheet: Sheet) -> None:
    pdf.set_text_color(*_INK)
    pdf.set_font(_FONT, "B", 11)
    pdf.multi_cell(
        _CONTENT_WIDTH, 5.5, sheet.issuing_country.upper(), new_x=XPos.LMARGIN, align="L"
    )
    pdf.set_font(_FONT, "", 10)
    pdf.multi_cell(_CONTENT_WIDTH, 5, sheet.issuing_authority, new_x=XPos.LMARGIN, align="L")
    pdf.ln(2)
    pdf.set_draw_color(*_INK)
    pdf.set_line_width(0.6)
    pdf.line(_MARGIN, pdf.get_y(), _PAGE_WIDTH - _MARGIN, pdf.get_y())
    pdf.ln(2.5)
    pdf.set_font(_FONT, "B", 17)
    pdf.multi_cell(_CONTENT_WIDTH, 8, sheet.title.upper(), align="C", new_x=XPos.LMARGIN)
    pdf.set_font(_FONT, "", 8.5)
    pdf.set_text_color(*_GREY)
    pdf.multi_cell(_CONTENT_WIDTH, 4.2, sheet.legal_basis, align="C", new_x=XPos.LMARGIN)
    pdf.ln(2.5)
    half = _CONTENT_WIDTH / 2
    pdf.set_text_color(*_INK)
    pdf.set_font(_FONT, "", 8)
    pdf.cell(half, 4, "Reference number")
    pdf.cell(half, 4, "Date of issue", align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_FONT, "B", 12)
    pdf.cell(half, 6.5, sheet.reference)
    pdf.cell(half, 6.5, sheet.date_of_issue, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_line_width(0.2)
    pdf.line(_MARGIN, pdf.get_y() + 1.5, _PAGE_WIDTH - _MARGIN, pdf.get_y() + 1.5)
    pdf.ln(3)


def _heading(pdf: FPDF, text: str) -> None:
    pdf.ln(2)
    pdf.set_fill_color(*_BAND)
    pdf.set_text_color(*_INK)
    pdf.set_font(_FONT, "B", 9)
    pdf.cell(_CONTENT_WIDTH, 6, "  " + text.upper(), fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1.5)


def _section(pdf: FPDF, section: Section) -> None:
    _heading(pdf, section.heading)
    if section.columns == 2:
        _two_columns(pdf, section.fields)
    else:
        _rows(pdf, section.fields)


def _rows(pdf: FPDF, fields: tuple[Field, ...]) -> None:
    """Print fields one a line: the label on the left, the value beside it."""
    label_width = 45.0
    for field in fields:
        top = pdf.get_y()
        pdf.set_font(_FONT, "", 8.5)
        pdf.set_text_color(*_GREY)
        pdf.multi_cell(label_width - 2, 4.6, field.label, new_x=XPos.LMARGIN, align="L")
        label_bottom = pdf.get_y()
        pdf.set_xy(_MARGIN + label_width, top)
        pdf.set_font(_FONT, "", 9.5)
        pdf.set_text_color(0, 0, 0)
        pdf.multi_cell(
            _CONTENT_WIDTH - label_width, 4.6, field.value or "-", new_x=XPos.LMARGIN, align="L"
        )
        pdf.set_y(max(pdf.get_y(), label_bottom) + 0.5)


def _two_columns(pdf: FPDF, fields: tuple[Field, ...]) -> None:
    """Print pairs of fields side by side: (left label, left value) | (right label, right ...)."""
    width = _CONTENT_WIDTH / 2 - 2
    for left, right in zip(fields[0::2], fields[1::2], strict=False):
        top = pdf.get_y()
        bottoms = []
        for column, field in ((0, left), (1, right)):
            pdf.set_xy(_MARGIN + column * (width + 4), top)
            pdf.set_font(_FONT, "", 8)
            pdf.set_text_color(*_GREY)
            pdf.multi_cell(width, 4, field.label, new_x=XPos.LEFT, align="L")
            pdf.set_font(_FONT, "", 9.5)
            pdf.set_text_color(0, 0, 0)
            pdf.multi_cell(width, 4.6, field.value or "-", new_x=XPos.LEFT, align="L")
            bottoms.append(pdf.get_y())
        pdf.set_xy(_MARGIN, max(bottoms) + 1)
    if len(fields) % 2:
        _rows(pdf, fields[-1:])


def _items(pdf: FPDF, sheet: Sheet) -> None:
    _heading(pdf, sheet.items_heading)
    pdf.set_font(_FONT, "", 8)
    pdf.set_text_color(0, 0, 0)
    pdf.set_fill_color(255, 255, 255)
    pdf.set_draw_color(*_GREY)
    pdf.set_line_width(0.15)
    with pdf.table(
        col_widths=sheet.item_widths,
        width=_CONTENT_WIDTH,
        line_height=4.2,
        padding=1,
        headings_style=FontFace(emphasis="BOLD", color=_INK, fill_color=_BAND, size_pt=7.5),
        first_row_as_headings=True,
        text_align="LEFT",
    ) as table:
        table.row(sheet.item_headings)
        for item in sheet.items:
            table.row(item.cells)
    pdf.ln(1)


def _verification(pdf: FPDF, sheet: Sheet, code: segno.QRCode, level: str) -> None:
    size = code.symbol_size(border=QUIET_ZONE_MODULES)[0] * MODULE_MM
    # The heading takes 9.5 mm; the code may come down to 3 mm above the footer.
    needed = max(size, 4.6 * (len(sheet.verification) + 6)) + 9.5
    if pdf.get_y() + needed > pdf.h - 16:
        pdf.add_page()
    _heading(pdf, "Electronic signature and verification")
    top = pdf.get_y()
    _draw_qr(pdf, code, _MARGIN, top)
    text_x = _MARGIN + size + 4
    text_width = _PAGE_WIDTH - _MARGIN - text_x
    pdf.set_xy(text_x, top + 1)
    for field in sheet.verification:
        pdf.set_x(text_x)
        pdf.set_font(_FONT, "", 7.5)
        pdf.set_text_color(*_GREY)
        pdf.multi_cell(text_width, 3.6, field.label, new_x=XPos.LEFT, align="L")
        pdf.set_font(_FONT, "", 8.5)
        pdf.set_text_color(0, 0, 0)
        pdf.multi_cell(text_width, 4.2, field.value, new_x=XPos.LEFT, align="L")
        pdf.ln(0.8)
    pdf.set_x(text_x)
    pdf.set_font(_FONT, "", 7.5)
    pdf.set_text_color(*_GREY)
    pdf.multi_cell(
        text_width,
        3.6,
        f"This printout carries the signed document twice: in the QR code (error correction "
        f"level {level}, version {code.version}) and as the "
        f"attached file {sheet.attachment_name}. Verify either with the verify page of any "
        "permitnet node or with: permitnet verify FILE. The QR code, not the printed text, is "
        "authoritative: do not stamp or sign across it.",
        align="L",
        new_x=XPos.LEFT,
    )
    pdf.set_y(max(pdf.get_y(), top + size) + 2)


def _draw_qr(pdf: FPDF, code: segno.QRCode, x: float, y: float) -> None:
    """Draw the code with its quiet zone as vector squares, merging runs of dark modules."""
    offset = QUIET_ZONE_MODULES * MODULE_MM
    pdf.set_fill_color(0, 0, 0)
    for row_number, row in enumerate(code.matrix):
        top = y + offset + row_number * MODULE_MM
        column = 0
        width = len(row)
        while column < width:
            if not row[column] & 1:
                column += 1
                continue
            start = column
            while column < width and row[column] & 1:
                column += 1
            pdf.rect(
                x + offset + start * MODULE_MM,
                top,
                (column - start) * MODULE_MM,
                MODULE_MM,
                style="F",
            )
