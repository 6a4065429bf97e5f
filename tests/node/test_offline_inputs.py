"""Finding the signed document in a PDF, a scan or photo of the QR, a QR text or the file."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pypdfium2
import pytest
import segno
from PIL import Image, ImageFilter
from pypdf import PdfReader, PdfWriter
from pypdf.generic import DictionaryObject

from permitnet.node.offline_inputs import (
    MAX_INPUT_SIZE,
    UnreadableInputError,
    extract_signed,
)
from permitnet.node.print_layout import draw_sheet
from permitnet.protocol import sign1
from permitnet.protocol.qr import encode_qr_text

from .test_printing_layout import SIGNED, make_sheet

if TYPE_CHECKING:
    from collections.abc import Callable

OTHER = sign1(b"another document", bytes(32), b"k" * 16)


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return draw_sheet(make_sheet())


def render(pdf: bytes, dpi: int = 200) -> Image.Image:
    document = pypdfium2.PdfDocument(pdf)
    image: Image.Image = document[len(document) - 1].render(scale=dpi / 72).to_pil()
    return image


def encoded(image: Image.Image, kind: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def without_attachments(pdf: bytes) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    names = writer._root_object["/Names"]
    assert isinstance(names, DictionaryObject)
    del names["/EmbeddedFiles"]
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def with_attachment(pdf: bytes, name: str, content: bytes) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.add_attachment(name, content)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_attachment_checked_against_its_qr_code(pdf: bytes) -> None:
    found = extract_signed(pdf)
    assert found.raw == SIGNED
    assert "attachment import-certificate-DE-IC-2026-000123.cose" in found.source
    assert "same as its QR code" in found.source


def test_pdf_without_attachment_falls_back_to_the_rendered_qr_code(pdf: bytes) -> None:
    found = extract_signed(without_attachments(pdf))
    assert found.raw == SIGNED
    assert found.source == "QR code in the PDF (no attachment)"


def test_png_scan(pdf: bytes) -> None:
    found = extract_signed(encoded(render(pdf), "PNG"))
    assert (found.raw, found.source) == (SIGNED, "QR code in image")


def test_jpeg_photo_blurred_rotated_and_compressed(pdf: bytes) -> None:
    photo = render(pdf, 150).convert("L").rotate(7, expand=True, fillcolor=255)
    photo = photo.filter(ImageFilter.GaussianBlur(0.8))
    assert extract_signed(encoded(photo, "JPEG", quality=60)).raw == SIGNED


def test_qr_text_and_signed_file() -> None:
    text = encode_qr_text(SIGNED)
    assert extract_signed(text.encode()).raw == SIGNED
    assert extract_signed((text + "\n").encode()).source == "QR text"
    assert extract_signed(b"\xef\xbb\xbf" + text.encode()).raw == SIGNED
    assert extract_signed(SIGNED) == extract_signed(SIGNED)
    assert extract_signed(SIGNED).source == "signed file"


def qr_image(*texts: str) -> bytes:
    tiles = []
    for text in texts:
        buffer = io.BytesIO()
        segno.make_qr(text, error="M").save(buffer, kind="png", scale=4, border=4)
        tiles.append(Image.open(io.BytesIO(buffer.getvalue())))
    canvas = Image.new("L", (sum(t.width for t in tiles), max(t.height for t in tiles)), 255)
    x = 0
    for tile in tiles:
        canvas.paste(tile.convert("L"), (x, 0))
        x += tile.width
    return encoded(canvas, "PNG")


def tampered_attachment(pdf: bytes) -> bytes:
    return with_attachment(without_attachments(pdf), "forged.cose", OTHER)


BAD_INPUTS: list[tuple[str, object, str]] = [
    ("not bytes", "PN1:ABC", "expected the file's bytes"),
    ("empty", b"", "empty"),
    ("too large", b"\x00" * (MAX_INPUT_SIZE + 1), "larger than"),
    ("unknown kind", b"hello, world", "not a PDF, an image, a QR text"),
    # Pillow would hand EPS to Ghostscript: such files are never opened as images.
    ("EPS file", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not a PDF, an image"),
    ("ICO file", "ico", "not a PDF, an image, a QR text"),
    ("damaged QR text", b"PN1:ABC#", "not a valid permitnet QR text"),
    ("unknown QR version", b"PN9:ABC", "'PN9' is not supported"),
    ("image without a QR code", "blank", "no permitnet QR code was found"),
    ("image with another QR code", "foreign", "no permitnet QR code was found"),
    ("image with two documents", "two", "2 different permitnet QR codes"),
    ("truncated image", "truncated", "cannot be decoded"),
    ("PDF with attachment and QR code that disagree", "swapped", "has been altered"),
    ("PDF with two signed attachments", "two-attachments", "2 different signed attachments"),
    ("PDF with nothing signed", "blank-pdf", "neither a signed attachment"),
    ("damaged PDF", b"%PDF-1.7\n garbage", "cannot be"),
]


def build(case: object, pdf: bytes) -> object:
    if not isinstance(case, str) or case.startswith("PN1"):
        return case
    blank = Image.new("L", (300, 300), 255)
    builders: dict[str, Callable[[], bytes]] = {
        "blank": lambda: encoded(blank, "PNG"),
        "ico": lambda: encoded(blank.resize((64, 64)), "ICO"),
        "foreign": lambda: qr_image("https://example.org/"),
        "two": lambda: qr_image(encode_qr_text(SIGNED), encode_qr_text(OTHER)),
        "truncated": lambda: encoded(render(pdf), "PNG")[:5000],
        "swapped": lambda: tampered_attachment(pdf),
        "two-attachments": lambda: with_attachment(pdf, "other.cose", OTHER),
        "blank-pdf": lambda: encoded(blank.convert("RGB"), "PDF"),
    }
    return builders[case]()


@pytest.mark.parametrize(
    ("case", "message"),
    [pytest.param(case, message, id=name) for name, case, message in BAD_INPUTS],
)
def test_inputs_without_one_document_are_refused_with_the_reason(
    case: object, message: str, pdf: bytes
) -> None:
    with pytest.raises(UnreadableInputError, match=message):
        extract_signed(build(case, pdf))  # type: ignore[arg-type]  # bad types are in the table


def test_phone_photo_at_an_angle_with_uneven_light(pdf: bytes) -> None:
    page = render(pdf, 170).convert("L")
    width, height = page.size
    # A skewed view (Pillow's QUAD maps a quadrilateral of the page onto the picture): the
    # top of the page further from the camera than the bottom, and turned a little.
    corners = (-0.05 * width, 0, -0.02 * width, height, width * 1.03, height * 0.98, width, 0)
    photo = page.transform(page.size, Image.Transform.QUAD, corners, fillcolor=255)
    shade = Image.linear_gradient("L").resize(photo.size).point(lambda v: 60 + v // 3)
    photo = Image.blend(photo, shade, 0.25).filter(ImageFilter.GaussianBlur(0.6))
    assert extract_signed(encoded(photo, "JPEG", quality=55)).raw == SIGNED


def test_a_huge_page_is_rendered_within_the_pixel_limit() -> None:
    from permitnet.node.offline_inputs import MAX_IMAGE_PIXELS, RENDER_DPI, _render_scale

    a4 = (595.0, 842.0)
    assert _render_scale(*a4) == RENDER_DPI / 72
    poster = (14_400.0, 14_400.0)  # 5 m square, the largest page PDF allows
    scale = _render_scale(*poster)
    assert poster[0] * poster[1] * scale * scale <= MAX_IMAGE_PIXELS * 1.000001
    # And a real PDF with such a page is read without exhausting memory.
    writer = PdfWriter()
    writer.add_blank_page(width=poster[0], height=poster[1])
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(UnreadableInputError, match="neither a signed attachment"):
        extract_signed(out.getvalue())
