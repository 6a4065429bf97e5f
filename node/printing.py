"""Printing a signed document as a PDF: every field, the issuing authority, a QR code, the file.

:func:`print_document` is what the web pages' print button and the command line call. The
printout shows every field of the signed document in the Conventions' words, under the name of
the issuing country and competent authority (:mod:`permitnet.node.print_content`); a QR code
that holds the whole signed document (:mod:`permitnet.protocol.qr`); and the signed bytes
themselves as an attachment, so that the PDF file alone can be verified exactly, and its paper
copy by scanning the code (:mod:`permitnet.node.offline_verify` does both).

:func:`document_sections` gives the same labelled fields without the PDF, for the verify page
and the command line to show what a verified document says.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from permitnet.node.print_content import (
    TITLES,
    content,
    country_name,
    date_of_issue,
    format_instant,
    grouped_hex,
    legal_basis,
    reference,
)
from permitnet.node.print_layout import FONT_DIR, Field, PrintError, Section, Sheet, draw_sheet
from permitnet.protocol.catalogue import DEFAULT_CATALOGUE, Catalogue
from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.qr import encode_qr_text

if TYPE_CHECKING:
    from pathlib import Path

    from permitnet.protocol.signed import SignedDocument

__all__ = [
    "PRINTABLE_TYPES",
    "PrintError",
    "attachment_name",
    "document_sections",
    "document_sheet",
    "document_title",
    "print_document",
]

#: The document types that print; the others (messages, receipts, ...) are not paper documents.
PRINTABLE_TYPES: Final = frozenset(TITLES)


def print_document(
    signed: SignedDocument,
    *,
    catalogue: Catalogue = DEFAULT_CATALOGUE,
    font_dir: Path = FONT_DIR,
) -> bytes:
    """Print a signed document as a PDF with its QR code and the signed file attached.

    Args:
        signed: the signed document (as issued, or as received and verified).
        catalogue: where substance names come from.
        font_dir: where the DejaVu fonts are.

    Returns:
        The PDF bytes; the same document always prints to the same bytes. Printing is CPU
        work (a few hundred milliseconds): from async code, run it in a worker thread.

    Raises:
        PrintError: the document type does not print (a message, a receipt, ...), the fonts
            are missing, or the document is too large for a QR code.
    """
    return draw_sheet(document_sheet(signed, catalogue=catalogue), font_dir=font_dir)


def document_sheet(signed: SignedDocument, *, catalogue: Catalogue = DEFAULT_CATALOGUE) -> Sheet:
    """Return what the printout of a signed document shows, before it is laid out.

    Raises:
        PrintError: the document type does not print, or is too large for a QR code.
    """
    document = signed.document
    if document.DOCUMENT_TYPE not in PRINTABLE_TYPES:
        raise PrintError(
            f"a {document.DOCUMENT_TYPE.replace('_', ' ')} is not a paper document and does not "
            "print; print the certificate, authorization, endorsement or declaration"
        )
    try:
        qr_text = encode_qr_text(signed.raw)
    except ProtocolError as e:
        raise PrintError(f"the document cannot be put in a QR code: {e}") from e
    fields = content(signed, catalogue)
    return Sheet(
        title=document_title(signed),
        legal_basis=legal_basis(signed, catalogue),
        issuing_country=country_name(document.issuer, official=True),
        issuing_authority=document.authority,
        reference=reference(signed),
        date_of_issue=date_of_issue(signed),
        sections_before_items=fields.before,
        items_heading=fields.items_heading,
        item_headings=fields.item_headings,
        item_widths=fields.item_widths,
        items=fields.items,
        sections_after_items=fields.after,
        verification=_verification_fields(signed),
        attachment_name=attachment_name(signed),
        qr_text=qr_text,
        signed=signed.raw,
        issued_at=document.issued_at,
    )


def document_title(signed: SignedDocument) -> str:
    """Return the document's title in the Conventions' words, e.g. ``"Import certificate"``."""
    kind = signed.document.DOCUMENT_TYPE
    return TITLES.get(kind, kind.replace("_", " ").capitalize())


def attachment_name(signed: SignedDocument) -> str:
    """Return the file name of the signed document: its type and reference, safe for any OS."""
    kind = signed.document.DOCUMENT_TYPE.replace("_", "-")
    safe = re.sub(r"[^A-Za-z0-9.-]+", "-", reference(signed)).strip(".-")[:60]
    return f"{kind}-{safe or signed.id_hex[:16]}.cose"


def document_sections(
    signed: SignedDocument, *, catalogue: Catalogue = DEFAULT_CATALOGUE
) -> tuple[Section, ...]:
    """Return every field of a document as labelled sections, table rows included.

    Args:
        signed: a verified signed document.
        catalogue: where substance names come from.

    Returns:
        The sections in reading order: the header (country, authority, reference, date), the
        document's own sections, and one field per table row.
    """
    document = signed.document
    header = Section(
        heading=document_title(signed),
        fields=(
            Field(
                label="Issuing country",
                value=f"{country_name(document.issuer)} ({document.issuer})",
            ),
            Field(label="Competent authority", value=document.authority),
            Field(label="Reference", value=reference(signed)),
            Field(label="Date of issue", value=date_of_issue(signed)),
            Field(
                label="Addressed to",
                value=f"{country_name(document.recipient)} ({document.recipient})",
            ),
        ),
    )
    fields = content(signed, catalogue)
    table: tuple[Section, ...] = ()
    if fields.items:
        rows = tuple(
            Field(
                label=f"{fields.item_headings[0]} {row.cells[0]}",
                value="; ".join(
                    f"{heading}: {cell}".replace("\n", " ")
                    for heading, cell in zip(fields.item_headings[1:], row.cells[1:], strict=True)
                ),
            )
            for row in fields.items
        )
        table = (Section(heading=fields.items_heading, fields=rows),)
    return (header, *fields.before, *table, *fields.after)


def _verification_fields(signed: SignedDocument) -> tuple[Field, ...]:
    document = signed.document
    return (
        Field(
            label="Signed electronically by",
            value=f"{document.authority}, {country_name(document.issuer)}",
        ),
        Field(label="Signed at", value=format_instant(document.issued_at)),
        Field(label="Signing key identifier", value=grouped_hex(signed.kid)),
        Field(
            label="Document identifier (SHA-256 of the signed file)", value=grouped_hex(signed.id)
        ),
    )
