"""What each printable document says on paper, field by field, in the Conventions' words.

Each document type has one function here that turns it into labelled sections and the rows of
its table; :mod:`permitnet.node.printing` puts them on the page, and the verify page shows the
same fields. Values are written for people: country names from ISO 3166 (pycountry), exact
quantities in the largest fitting unit and in milligrams, dates as ``YYYY-MM-DD``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Final

import pycountry

from permitnet.node.print_layout import Field, ItemRow, Section
from permitnet.protocol.documents import (
    Cancellation,
    DeliveryReceipt,
    Endorsement,
    ExportAuthorization,
    ExportDeclaration,
    ImportCertificate,
    Message,
)
from permitnet.protocol.quantities import format_mg

if TYPE_CHECKING:
    from permitnet.protocol.catalogue import Catalogue
    from permitnet.protocol.documents import Item, Party
    from permitnet.protocol.signed import SignedDocument

__all__ = [
    "TITLES",
    "Content",
    "content",
    "country_name",
    "date_of_issue",
    "format_instant",
    "grouped_hex",
    "legal_basis",
    "reference",
]

#: The printable document types and their titles.
TITLES: Final = {
    ImportCertificate.DOCUMENT_TYPE: "Import certificate",
    ExportAuthorization.DOCUMENT_TYPE: "Export authorization",
    Endorsement.DOCUMENT_TYPE: "Endorsement of export authorization",
    ExportDeclaration.DOCUMENT_TYPE: "Export declaration",
}
#: The articles that require each document, per Convention.
_LEGAL_BASIS: Final = {
    ImportCertificate.DOCUMENT_TYPE: {
        "1961": "Single Convention on Narcotic Drugs, 1961, article 31, paragraphs 4 and 5",
        "1971": "Convention on Psychotropic Substances, 1971, article 12, paragraph 1",
    },
    ExportAuthorization.DOCUMENT_TYPE: {
        "1961": "Single Convention on Narcotic Drugs, 1961, article 31, paragraphs 4 to 6",
        "1971": "Convention on Psychotropic Substances, 1971, article 12, paragraph 1",
    },
    Endorsement.DOCUMENT_TYPE: {
        "1961": "Single Convention on Narcotic Drugs, 1961, article 31, paragraph 7",
        "1971": "Convention on Psychotropic Substances, 1971, article 12, paragraph 1 (f)",
    },
    ExportDeclaration.DOCUMENT_TYPE: {
        "1971": "Convention on Psychotropic Substances, 1971, article 12, paragraph 2",
    },
}
_ITEM_HEADINGS: Final = (
    "No.",
    "Substance (as traded)",
    "Convention, schedule",
    "Preparation, form",
    "Quantity",
    "Factor",
    "Anhydrous base",
)
_ITEM_WIDTHS: Final = (8, 51, 20, 24, 25, 14, 38)


@dataclass(frozen=True, slots=True, kw_only=True)
class Content:
    """A document's fields: sections before its table, the table, sections after it."""

    before: tuple[Section, ...]
    items_heading: str = "Substances and quantities"
    item_headings: tuple[str, ...] = _ITEM_HEADINGS
    item_widths: tuple[int, ...] = _ITEM_WIDTHS
    items: tuple[ItemRow, ...] = ()
    after: tuple[Section, ...] = ()


def content(signed: SignedDocument, catalogue: Catalogue) -> Content:
    """Return the fields of any document.

    The certificate, authorization, endorsement and declaration as they print; a
    cancellation, message or delivery receipt (which have no paper form) for display only.
    """
    document = signed.document
    if isinstance(document, ImportCertificate):
        return _import_certificate(document, catalogue)
    if isinstance(document, ExportAuthorization):
        return _export_authorization(document, catalogue)
    if isinstance(document, Endorsement):
        return _endorsement(document, catalogue)
    if isinstance(document, ExportDeclaration):
        return _export_declaration(document, catalogue)
    return _notice(signed)


def country_name(code: str, *, official: bool = False) -> str:
    """Return a country's name from ISO 3166 (pycountry), or the code if it has none."""
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return code
    if official:
        return str(getattr(country, "official_name", country.name))
    return str(country.name)


def format_instant(seconds: int) -> str:
    """Write Unix seconds as ``YYYY-MM-DD HH:MM:SS UTC``."""
    return dt.datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def grouped_hex(identifier: bytes) -> str:
    """Write an identifier in lowercase hex, in groups of eight, to be read aloud or compared."""
    text = identifier.hex()
    return " ".join(text[i : i + 8] for i in range(0, len(text), 8))


def reference(signed: SignedDocument) -> str:
    """Return the document's reference: its number, or what it endorses."""
    document = signed.document
    if isinstance(document, Endorsement):
        return f"Endorsement of {document.export_authorization_number}"
    number = getattr(document, "number", None)
    return str(number) if number else signed.id_hex[:16]


def date_of_issue(signed: SignedDocument) -> str:
    """Return the date of issue, or the UTC date of signing for documents without one."""
    document = signed.document
    date = getattr(document, "date_of_issue", None)
    if isinstance(date, dt.date):
        return date.isoformat()
    return dt.datetime.fromtimestamp(document.issued_at, UTC).date().isoformat()


def legal_basis(signed: SignedDocument, catalogue: Catalogue) -> str:
    """Return the Convention articles that require the document, for the Conventions it covers."""
    document = signed.document
    bases = _LEGAL_BASIS.get(document.DOCUMENT_TYPE, {})
    if isinstance(document, Endorsement):
        codes = [received.substance for received in document.received]
        conventions = {catalogue.get(c).convention for c in codes if c in catalogue}
    else:
        conventions = {item.convention for item in getattr(document, "items", ())}
    return "; ".join(bases[c] for c in sorted(conventions or set(bases)) if c in bases)


def _country(code: str) -> str:
    return f"{country_name(code)} ({code})"


def _party(party: Party, country: str) -> str:
    return f"{party.name}\n{party.address}\n{_country(country)}\nLicence: {party.licence}"


def _parties(importer: Party, importing: str, exporter: Party, exporting: str) -> Section:
    """The importer and exporter side by side, each with their country."""
    return Section(
        heading="Importer and exporter",
        columns=2,
        fields=(
            Field(label="Importer", value=_party(importer, importing)),
            Field(label="Exporter", value=_party(exporter, exporting)),
        ),
    )


def _quantity(quantity_mg: int) -> str:
    # A thin space groups the digits: unambiguous in every locale, unlike a comma or a point.
    return f"{format_mg(quantity_mg)}\n{quantity_mg:,} mg".replace(",", "\u2009")


def _substance(code: str, catalogue: Catalogue) -> str:
    return f"{catalogue.get(code).name}\n({code})" if code in catalogue else code


def _item_rows(items: tuple[Item, ...], catalogue: Catalogue) -> tuple[ItemRow, ...]:
    return tuple(
        ItemRow(
            cells=(
                str(number),
                _substance(item.substance, catalogue),
                f"{item.convention}, {item.schedule}",
                item.preparation,
                _quantity(item.quantity_mg),
                item.factor,
                f"{_quantity(item.base_mg)} {item.base}",
            )
        )
        for number, item in enumerate(items, start=1)
    )


def _period(start: dt.date, end: dt.date) -> str:
    return f"{start.isoformat()} to {end.isoformat()} (both days included)"


def _import_certificate(document: ImportCertificate, catalogue: Catalogue) -> Content:
    consignments = (
        "Allowed" if document.several_consignments else "Not allowed: one consignment only"
    )
    return Content(
        before=(
            _parties(
                document.importer, document.issuer, document.exporter, document.exporting_country
            ),
        ),
        items=_item_rows(document.items, catalogue),
        after=(
            Section(
                heading="Conditions of import",
                fields=(
                    Field(
                        label="Import to take place",
                        value=_period(document.valid_from, document.valid_until),
                    ),
                    Field(label="Several consignments", value=consignments),
                    Field(
                        label="Counts against",
                        value=f"The estimates or assessments of {document.estimate_year}",
                    ),
                    Field(label="Conditions", value=document.conditions or "None"),
                ),
            ),
        ),
    )


def _export_authorization(document: ExportAuthorization, catalogue: Catalogue) -> Content:
    certificate = document.import_certificate
    transit = ", ".join(_country(c) for c in document.transit_countries)
    return Content(
        before=(
            _parties(
                document.importer, document.importing_country, document.exporter, document.issuer
            ),
            Section(
                heading="Import certificate",
                fields=(
                    Field(label="Import certificate number", value=certificate.number),
                    Field(
                        label="Import certificate issued",
                        value=f"{certificate.date_of_issue.isoformat()} by {certificate.authority}",
                    ),
                    Field(label="Import certificate identifier", value=grouped_hex(certificate.id)),
                ),
            ),
        ),
        items=_item_rows(document.items, catalogue),
        after=(
            Section(
                heading="Conditions of export",
                fields=(
                    Field(
                        label="Export to take place",
                        value=_period(document.valid_from, document.valid_until),
                    ),
                    Field(label="Mode of transport", value=document.transport_mode),
                    Field(label="Route", value=document.route or "Not specified"),
                    Field(label="Countries of transit", value=transit or "None"),
                ),
            ),
        ),
    )


def _endorsement(document: Endorsement, catalogue: Catalogue) -> Content:
    return Content(
        before=(
            Section(
                heading="Export authorization endorsed",
                fields=(
                    Field(label="Authorization number", value=document.export_authorization_number),
                    Field(
                        label="Authorization identifier",
                        value=grouped_hex(document.export_authorization),
                    ),
                    Field(label="Exporting country", value=_country(document.recipient)),
                    Field(label="Importing country", value=_country(document.issuer)),
                    Field(
                        label="Consignment received on", value=document.date_received.isoformat()
                    ),
                ),
            ),
        ),
        items_heading="Quantities actually received",
        item_headings=("Line of the authorization", "Substance (as traded)", "Quantity received"),
        item_widths=(40, 90, 50),
        items=tuple(
            ItemRow(
                cells=(
                    str(received.line + 1),
                    _substance(received.substance, catalogue),
                    _quantity(received.quantity_mg),
                )
            )
            for received in document.received
        ),
        after=(
            Section(
                heading="Remarks",
                fields=(Field(label="Remarks", value=document.remarks or "None"),),
            ),
        ),
    )


def _export_declaration(document: ExportDeclaration, catalogue: Catalogue) -> Content:
    return Content(
        before=(
            _parties(
                document.importer, document.importing_country, document.exporter, document.issuer
            ),
            Section(
                heading="Export",
                fields=(Field(label="Date of export", value=document.date_of_export.isoformat()),),
            ),
        ),
        items=_item_rows(document.items, catalogue),
    )


def _notice(signed: SignedDocument) -> Content:
    """The fields of a cancellation, message or delivery receipt, for display."""
    document = signed.document
    fields: tuple[Field, ...] = ()
    if isinstance(document, Cancellation):
        fields = (
            Field(label="Cancels document", value=grouped_hex(document.document)),
            Field(label="Reason", value=document.reason),
        )
    elif isinstance(document, Message):
        fields = (
            Field(label="About document", value=grouped_hex(document.about)),
            Field(
                label="In reply to message",
                value="-" if document.in_reply_to is None else grouped_hex(document.in_reply_to),
            ),
            Field(label="Text", value=document.text),
        )
    elif isinstance(document, DeliveryReceipt):
        fields = (
            Field(label="Document received", value=grouped_hex(document.document)),
            Field(label="Status", value=document.status),
            Field(label="Reason", value=document.reason or "-"),
            Field(label="Received at", value=format_instant(document.received_at)),
        )
    return Content(before=(Section(heading="Content", fields=fields),) if fields else ())
