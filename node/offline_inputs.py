"""Finding the signed document in whatever a person has: a PDF, a scan or photo, a QR text, a file.

A printed permitnet document carries its signed bytes twice: as a PDF attachment and in the QR
code. From a PDF both are read: the attachment with pypdf, the QR code by rendering each page
with PDFium and decoding it with zxing-cpp. When both are there they must be the same bytes; a
PDF whose attachment and QR code disagree has been tampered with, and is refused as such. A
scan or photo (PNG, JPEG, or any image Pillow reads) is decoded with zxing-cpp, which returns
the code's content bytes exactly. Text starting with the QR prefix is a QR text; bytes that
start like a COSE_Sign1 message are the signed file itself.

Nothing here checks a signature: what comes out is to be verified against the registry.
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass
from typing import Final

import pypdfium2
import zxingcpp
from PIL import Image, UnidentifiedImageError
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from permitnet.node.errors import NodeError
from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.qr import QR_PREFIX, decode_qr_text

__all__ = [
    "IMAGE_FORMATS",
    "IMAGE_SOURCE",
    "MAX_IMAGE_PIXELS",
    "MAX_INPUT_SIZE",
    "MAX_PDF_PAGES",
    "Extracted",
    "UnreadableInputError",
    "extract_signed",
    "read_qr_texts",
]

#: The largest file accepted: a phone photo or a multi-page scan, with room to spare.
MAX_INPUT_SIZE: Final = 32 * 1024 * 1024
#: The largest image decoded (a 12-megapixel photo is 12 M): bounds memory per request.
MAX_IMAGE_PIXELS: Final = 60_000_000
#: The image formats read. Only raster formats Pillow decodes itself: never EPS or PostScript,
#: which Pillow hands to Ghostscript, a program no upload from the public should reach.
IMAGE_FORMATS: Final = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
#: How many pages of a PDF are rendered to look for the QR code.
MAX_PDF_PAGES: Final = 10
#: Rendering resolution: 200 dpi gives about 4 pixels per 0.5 mm module.
RENDER_DPI: Final = 200
#: The signed file's first byte: CBOR tag 18 (COSE_Sign1), or an untagged 4-item array.
_COSE_FIRST_BYTES: Final = frozenset({0xD2, 0x84})
_PDF_MAGIC: Final = b"%PDF-"
#: The source of a document read from the QR code of a scan or photo.
IMAGE_SOURCE: Final = "QR code in image"
#: PDFium is not thread-safe (pypdfium2's documentation says so): one rendering at a time, so
#: that a web server may call this module from several worker threads.
_PDFIUM_LOCK: Final = threading.Lock()


class UnreadableInputError(NodeError):
    """A file in which no permitnet document can be found, or found in two different versions."""

    status_hint = 422
    code = "unreadable_input"


@dataclass(frozen=True, slots=True, kw_only=True)
class Extracted:
    """Signed bytes found in an input, and where they were found, for the verdict."""

    raw: bytes
    source: str


def extract_signed(data: bytes) -> Extracted:
    """Find the signed document in ``data``: a PDF, an image of the QR, a QR text or the file.

    Args:
        data: the whole file as uploaded or read from disk.

    Returns:
        The signed bytes (not yet verified) and a description of where they came from.

    Raises:
        UnreadableInputError: the input is empty, too large, of no kind recognized, or holds no
            permitnet document, or (a PDF) holds two different ones; the message says which.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise UnreadableInputError(f"expected the file's bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise UnreadableInputError("the file is empty")
    if len(data) > MAX_INPUT_SIZE:
        raise UnreadableInputError(
            f"the file is {len(data)} bytes, larger than the {MAX_INPUT_SIZE} accepted"
        )
    if data.startswith(_PDF_MAGIC):
        return _from_pdf(data)
    text = _as_qr_text(data)
    if text is not None:
        return Extracted(raw=_decode_text(text, "the QR text"), source="QR text")
    if data[0] in _COSE_FIRST_BYTES:
        return Extracted(raw=data, source="signed file")
    image = _open_image(data)
    if image is None:
        raise UnreadableInputError("not a PDF, an image, a QR text or a signed permitnet document")
    texts = read_qr_texts(image)
    return Extracted(
        raw=_single(texts, f"the {image.format or 'image'} image"), source=IMAGE_SOURCE
    )


def read_qr_texts(image: Image.Image) -> list[str]:
    """Return the text of every permitnet QR code zxing-cpp finds in ``image``, in order.

    QR codes that are not permitnet's (another prefix) are left out.
    """
    try:
        results = zxingcpp.read_barcodes(
            image, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
        )
    except (ValueError, RuntimeError) as e:
        raise UnreadableInputError(f"the QR decoder could not read the image: {e}") from e
    texts: list[str] = []
    for result in results:
        content: bytes = result.bytes
        if content.startswith(QR_PREFIX.encode()):
            texts.append(content.decode("ascii", errors="replace"))
    return texts


def _as_qr_text(data: bytes) -> str | None:
    """Return the data as text if it looks like a QR text (any version), else None."""
    head = data.removeprefix(b"\xef\xbb\xbf")
    if head[:2] != QR_PREFIX[:2].encode():
        return None
    try:
        return head.decode("ascii")
    except UnicodeDecodeError:
        return None


def _decode_text(text: str, where: str) -> bytes:
    try:
        return decode_qr_text(text)
    except ProtocolError as e:
        raise UnreadableInputError(f"{where} is not a valid permitnet QR text: {e}") from e


def _single(texts: list[str], where: str) -> bytes:
    if not texts:
        raise UnreadableInputError(f"no permitnet QR code was found in {where}")
    documents = {_decode_text(text, f"the QR code in {where}") for text in texts}
    if len(documents) > 1:
        raise UnreadableInputError(
            f"{where} holds {len(documents)} different permitnet QR codes: verify one at a time"
        )
    return documents.pop()


def _open_image(data: bytes) -> Image.Image | None:
    # Pillow's decompression-bomb guard turns into an error above our own pixel limit.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise UnreadableInputError(
                    f"the image is {image.width} x {image.height} pixels, more than the "
                    f"{MAX_IMAGE_PIXELS} accepted"
                )
            image.load()
        except UnidentifiedImageError:
            return None
        except (OSError, ValueError, Image.DecompressionBombError, Warning) as e:
            raise UnreadableInputError(f"the image cannot be decoded: {e}") from e
    return image


def _from_pdf(data: bytes) -> Extracted:
    attached = _pdf_attachments(data)
    qr_texts = _pdf_qr_texts(data)
    from_qr = _single(qr_texts, "the PDF's pages") if qr_texts else None
    if len(attached) > 1:
        raise UnreadableInputError(
            f"the PDF has {len(attached)} different signed attachments: verify one at a time"
        )
    if attached:
        name, raw = attached[0]
        if from_qr is not None and from_qr != raw:
            raise UnreadableInputError(
                f"the PDF has been altered: its attachment {name} and its QR code hold "
                "different documents"
            )
        source = f"PDF attachment {name}" + (", same as its QR code" if from_qr else "")
        return Extracted(raw=raw, source=source)
    if from_qr is not None:
        return Extracted(raw=from_qr, source="QR code in the PDF (no attachment)")
    raise UnreadableInputError(
        "the PDF has neither a signed attachment (.cose) nor a permitnet QR code"
    )


def _pdf_attachments(data: bytes) -> list[tuple[str, bytes]]:
    """Return the distinct ``.cose`` attachments of a PDF, by name."""
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        attachments = reader.attachments
        found: dict[bytes, str] = {}
        for name in sorted(attachments):
            if not name.lower().endswith(".cose"):
                continue
            for content in attachments[name]:
                found.setdefault(bytes(content), name)
    except (PyPdfError, OSError, ValueError, KeyError, TypeError) as e:
        raise UnreadableInputError(f"the PDF cannot be read: {e}") from e
    return [(name, content) for content, name in found.items()]


def _render_scale(width_pt: float, height_pt: float) -> float:
    """Return the scale that renders a page at :data:`RENDER_DPI`, within the pixel limit.

    A page may declare any size (a 5 m poster): its rendering is scaled down so that it never
    needs more than :data:`MAX_IMAGE_PIXELS` pixels of memory.
    """
    scale = RENDER_DPI / 72
    area = max(width_pt * height_pt, 1.0)
    if area * scale * scale > MAX_IMAGE_PIXELS:
        scale = (MAX_IMAGE_PIXELS / area) ** 0.5
    return scale


def _pdf_qr_texts(data: bytes) -> list[str]:
    """Render the PDF's first pages and return the permitnet QR texts found on them."""
    images: list[Image.Image] = []
    with _PDFIUM_LOCK:
        try:
            document = pypdfium2.PdfDocument(data)
        except pypdfium2.PdfiumError as e:
            raise UnreadableInputError(f"the PDF cannot be rendered: {e}") from e
        try:
            for index in range(min(len(document), MAX_PDF_PAGES)):
                page = document[index]
                bitmap = page.render(scale=_render_scale(*page.get_size()), grayscale=True)
                images.append(bitmap.to_pil().copy())
                bitmap.close()
                page.close()
        except pypdfium2.PdfiumError as e:
            raise UnreadableInputError(f"the PDF cannot be rendered: {e}") from e
        finally:
            document.close()
    texts: list[str] = []
    for image in images:
        texts.extend(read_qr_texts(image))
    return texts
