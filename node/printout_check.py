"""Is a PDF the printout of the signed document inside it, or were its pages altered?

A person reads the words on a printout, not its attachment. A PDF whose attachment is authentic
but whose printed quantity was edited must not pass as authentic; this module compares the
PDF's pages with the reprint of its signed document. Printing is deterministic, so an untouched
printout is byte for byte its reprint; only a PDF that differs has its text extracted (pypdf),
after its page count is checked, so that a hostile PDF of a million pages costs nothing.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from pypdf import PdfReader
from pypdf.errors import PyPdfError

from permitnet.node.printing import print_document

if TYPE_CHECKING:
    from permitnet.protocol.catalogue import Catalogue
    from permitnet.protocol.signed import SignedDocument

__all__ = ["compare_printout"]


def _words(pdf: bytes, pages: int | None = None) -> list[str]:
    """Return the words printed on a PDF's pages.

    Raises:
        _PageCountError: ``pages`` is given and the PDF has another number of pages (checked
            before any text is extracted, so a PDF of a million pages costs nothing).
    """
    reader = PdfReader(io.BytesIO(pdf), strict=False)
    if pages is not None and len(reader.pages) != pages:
        raise _PageCountError(len(reader.pages))
    return " ".join(page.extract_text() for page in reader.pages).split()


class _PageCountError(Exception):
    def __init__(self, pages: int) -> None:
        super().__init__(pages)
        self.pages = pages


def compare_printout(
    data: bytes, signed: SignedDocument, *, catalogue: Catalogue, warnings: list[str]
) -> tuple[str | None, bytes | None]:
    """Compare a PDF's pages with the printout of its signed document.

    Returns ``(reason, printout)``: why the pages are not that printout (None when they are),
    and the printout itself (None when it could not be made), which a caller printing the
    document may reuse rather than print it again.

    Args:
        data: the PDF as given.
        signed: the authentic signed document found in it.
        catalogue: the catalogue printing uses.
        warnings: where to add a warning when the comparison cannot be made at all.

    The reason is None when the PDF is byte for byte the reprint, or prints the same words;
    otherwise it names the first word that differs or the page count.
    """
    try:
        reprinted = print_document(signed, catalogue=catalogue)
    except Exception as e:  # noqa: BLE001 - a printing failure must not hide the verdict
        warnings.append(f"the printed text of the PDF could not be compared: {e}")
        return None, None
    return _difference(data, reprinted), reprinted


def _difference(data: bytes, reprinted: bytes) -> str | None:
    if reprinted == data:
        # Printing is deterministic: an untouched printout is byte for byte the reprint, and
        # comparing bytes spares extracting the text of both (the slow part).
        return None
    expected_pages = len(PdfReader(io.BytesIO(reprinted)).pages)
    expected = _words(reprinted)
    try:
        actual = _words(data, expected_pages)
    except _PageCountError as e:
        return (
            f"the PDF has been altered: it has {e.pages} pages where its signed document "
            f"prints on {expected_pages}; the signed document inside it is authentic, the "
            "printout is not"
        )
    except (PyPdfError, ValueError, KeyError, TypeError) as e:
        return f"the PDF's printed text cannot be read: {e}"
    if actual == expected:
        return None
    for position, (got, wanted) in enumerate(zip(actual, expected, strict=False)):
        if got != wanted:
            context = " ".join(actual[max(0, position - 4) : position + 4])
            return (
                f"the PDF's printed text was altered: it reads {got!r} where the signed "
                f'document says {wanted!r} (near "{context}"); the signed document inside it '
                "is authentic, the printout is not"
            )
    return (
        "the PDF's printed text was altered: text was added or removed; the signed document "
        "inside it is authentic, the printout is not"
    )
