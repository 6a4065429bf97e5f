"""The trade documents: import certificate, export authorization, endorsement.

Field names follow the Conventions: the Single Convention 1961, art. 31(4)-(7), and the
Convention on Psychotropic Substances 1971, art. 12. Every ``from_payload`` checks the
payload completely and raises :class:`DocumentError` naming the field; the cross-document
Convention rules (an authorization within its certificate, quantities, estimates) are in
:mod:`permitnet.protocol.rules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from permitnet.protocol.doc_base import DocumentBase
from permitnet.protocol.doc_fields import PayloadReader, check_country
from permitnet.protocol.doc_parts import (
    MAX_ITEMS,
    CertificateReference,
    Item,
    Party,
    ReceivedItem,
)
from permitnet.protocol.errors import DocumentError

if TYPE_CHECKING:
    import datetime as dt

    from permitnet.protocol.catalogue import Catalogue

__all__ = [
    "TRANSPORT_MODES",
    "Endorsement",
    "ExportAuthorization",
    "ImportCertificate",
    "read_items",
]

#: The modes of transport an export authorization may name.
TRANSPORT_MODES: Final = ("air", "sea", "road", "rail", "post", "courier", "multimodal")
#: The most transit countries an export authorization may list.
MAX_TRANSIT: Final = 20


def read_items(read: PayloadReader, catalogue: Catalogue | None) -> tuple[Item, ...]:
    """Read the ``items`` array of a document: 1 to :data:`MAX_ITEMS` items."""
    return read.array(
        "items",
        lambda element, where: Item.from_payload(element, where, catalogue=catalogue),
        minimum=1,
        maximum=MAX_ITEMS,
    )


def _check_window(valid_from: dt.date, valid_until: dt.date) -> None:
    if valid_until < valid_from:
        raise DocumentError(
            f"valid_until: {valid_until.isoformat()} is before valid_from {valid_from.isoformat()}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportCertificate(DocumentBase):
    """An import certificate, issued by the importing country to the exporting country.

    Attributes:
        number: the issuer's reference number of the certificate.
        date_of_issue: the date of issue.
        importer: the importer (name, address, licence).
        exporter: the exporter (name, address, licence).
        exporting_country: the exporting country (equal to ``recipient``).
        items: the substances and quantities that may be imported.
        valid_from: first day on which the import may take place.
        valid_until: last day on which the import may take place.
        several_consignments: whether the quantities may be imported in several consignments.
        conditions: conditions of import (e.g. "into bonded warehouse"), possibly empty.
        estimate_year: the year of the estimate (or assessment) the import counts against.
    """

    DOCUMENT_TYPE: ClassVar[str] = "import_certificate"
    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "number",
            "date_of_issue",
            "importer",
            "exporter",
            "exporting_country",
            "items",
            "valid_from",
            "valid_until",
            "several_consignments",
            "conditions",
            "estimate_year",
        }
    )

    number: str
    date_of_issue: dt.date
    importer: Party
    exporter: Party
    exporting_country: str
    items: tuple[Item, ...]
    valid_from: dt.date
    valid_until: dt.date
    several_consignments: bool
    conditions: str
    estimate_year: int

    def to_payload(self) -> dict[str, Any]:
        """Return the certificate as a CBOR-ready map."""
        return self.header_payload() | {
            "number": self.number,
            "date_of_issue": self.date_of_issue.isoformat(),
            "importer": self.importer.to_payload(),
            "exporter": self.exporter.to_payload(),
            "exporting_country": self.exporting_country,
            "items": [item.to_payload() for item in self.items],
            "valid_from": self.valid_from.isoformat(),
            "valid_until": self.valid_until.isoformat(),
            "several_consignments": self.several_consignments,
            "conditions": self.conditions,
            "estimate_year": self.estimate_year,
        }

    @classmethod
    def from_payload(
        cls, payload: object, *, catalogue: Catalogue | None = None
    ) -> ImportCertificate:
        """Build an import certificate from a decoded payload, checking every field.

        Raises:
            DocumentError: a missing, unknown or invalid field, named by its path;
                an exporting country other than the recipient; a validity that ends
                before it starts or before the date of issue.
        """
        read, header = cls.open_payload(payload)
        document = cls(
            **header,
            number=read.text("number", max_length=64),
            date_of_issue=read.date("date_of_issue"),
            importer=Party.from_payload(read.raw("importer"), "importer"),
            exporter=Party.from_payload(read.raw("exporter"), "exporter"),
            exporting_country=read.country("exporting_country"),
            items=read_items(read, catalogue),
            valid_from=read.date("valid_from"),
            valid_until=read.date("valid_until"),
            several_consignments=read.boolean("several_consignments"),
            conditions=read.text("conditions", max_length=2000, multiline=True, empty=True),
            estimate_year=read.integer("estimate_year", minimum=1961, maximum=9999),
        )
        if document.exporting_country != document.recipient:
            raise DocumentError(
                f"exporting_country: {document.exporting_country} but the certificate is "
                f"addressed to {document.recipient}"
            )
        _check_window(document.valid_from, document.valid_until)
        if document.valid_until < document.date_of_issue:
            raise DocumentError(
                f"valid_until: {document.valid_until.isoformat()} is before the date of issue "
                f"{document.date_of_issue.isoformat()}"
            )
        return document


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportAuthorization(DocumentBase):
    """An export authorization, issued by the exporting country against an import certificate.

    Attributes:
        number: the issuer's reference number of the authorization.
        date_of_issue: the date of issue.
        importer: the importer, as on the certificate.
        exporter: the exporter, as on the certificate.
        importing_country: the importing country (equal to ``recipient``).
        items: the substances and quantities authorized for export.
        import_certificate: the certificate it is issued against.
        valid_from: first day on which the export may take place.
        valid_until: last day on which the export may take place.
        route: the route of the consignment, free text (possibly empty).
        transport_mode: one of :data:`TRANSPORT_MODES`.
        transit_countries: the countries of transit, in order (possibly none).
    """

    DOCUMENT_TYPE: ClassVar[str] = "export_authorization"
    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "number",
            "date_of_issue",
            "importer",
            "exporter",
            "importing_country",
            "items",
            "import_certificate",
            "valid_from",
            "valid_until",
            "route",
            "transport_mode",
            "transit_countries",
        }
    )

    number: str
    date_of_issue: dt.date
    importer: Party
    exporter: Party
    importing_country: str
    items: tuple[Item, ...]
    import_certificate: CertificateReference
    valid_from: dt.date
    valid_until: dt.date
    route: str
    transport_mode: str
    transit_countries: tuple[str, ...]

    def to_payload(self) -> dict[str, Any]:
        """Return the authorization as a CBOR-ready map."""
        return self.header_payload() | {
            "number": self.number,
            "date_of_issue": self.date_of_issue.isoformat(),
            "importer": self.importer.to_payload(),
            "exporter": self.exporter.to_payload(),
            "importing_country": self.importing_country,
            "items": [item.to_payload() for item in self.items],
            "import_certificate": self.import_certificate.to_payload(),
            "valid_from": self.valid_from.isoformat(),
            "valid_until": self.valid_until.isoformat(),
            "route": self.route,
            "transport_mode": self.transport_mode,
            "transit_countries": list(self.transit_countries),
        }

    @classmethod
    def from_payload(
        cls, payload: object, *, catalogue: Catalogue | None = None
    ) -> ExportAuthorization:
        """Build an export authorization from a decoded payload, checking every field.

        Raises:
            DocumentError: a missing, unknown or invalid field, named by its path; an
                importing country other than the recipient; a validity that ends before it
                starts; a transit country listed twice or equal to either party's country.
        """
        read, header = cls.open_payload(payload)
        document = cls(
            **header,
            number=read.text("number", max_length=64),
            date_of_issue=read.date("date_of_issue"),
            importer=Party.from_payload(read.raw("importer"), "importer"),
            exporter=Party.from_payload(read.raw("exporter"), "exporter"),
            importing_country=read.country("importing_country"),
            items=read_items(read, catalogue),
            import_certificate=CertificateReference.from_payload(
                read.raw("import_certificate"), "import_certificate"
            ),
            valid_from=read.date("valid_from"),
            valid_until=read.date("valid_until"),
            route=read.text("route", max_length=500, multiline=True, empty=True),
            transport_mode=read.choice("transport_mode", TRANSPORT_MODES),
            transit_countries=read.array(
                "transit_countries", check_country, minimum=0, maximum=MAX_TRANSIT
            ),
        )
        if document.importing_country != document.recipient:
            raise DocumentError(
                f"importing_country: {document.importing_country} but the authorization is "
                f"addressed to {document.recipient}"
            )
        _check_window(document.valid_from, document.valid_until)
        seen: set[str] = {document.issuer, document.recipient}
        for country in document.transit_countries:
            if country in seen:
                raise DocumentError(
                    f"transit_countries: {country} is listed twice or is the exporting or "
                    "importing country"
                )
            seen.add(country)
        return document


@dataclass(frozen=True, slots=True, kw_only=True)
class Endorsement(DocumentBase):
    """The importing authority's endorsement of an export authorization (1961 art. 31(7)).

    It states the quantity actually received for each line of the authorization, and is
    sent back to the exporting country.

    Attributes:
        export_authorization: the document identifier of the endorsed export authorization.
        export_authorization_number: that authorization's reference number.
        date_received: the date the consignment was received.
        received: the quantity received per line; every line of the authorization once.
        remarks: the authority's remarks, possibly empty.
    """

    DOCUMENT_TYPE: ClassVar[str] = "endorsement"
    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "export_authorization",
            "export_authorization_number",
            "date_received",
            "received",
            "remarks",
        }
    )

    export_authorization: bytes
    export_authorization_number: str
    date_received: dt.date
    received: tuple[ReceivedItem, ...]
    remarks: str

    def to_payload(self) -> dict[str, Any]:
        """Return the endorsement as a CBOR-ready map."""
        return self.header_payload() | {
            "export_authorization": self.export_authorization,
            "export_authorization_number": self.export_authorization_number,
            "date_received": self.date_received.isoformat(),
            "received": [item.to_payload() for item in self.received],
            "remarks": self.remarks,
        }

    @classmethod
    def from_payload(cls, payload: object, *, catalogue: Catalogue | None = None) -> Endorsement:
        """Build an endorsement from a decoded payload, checking every field.

        Args:
            payload: the decoded payload map.
            catalogue: the substance catalogue (default: the built-in edition); that each
                line matches the authorization is a rule (``endorsement-line``).

        Raises:
            DocumentError: a missing, unknown or invalid field, an unknown substance, or a
                line listed twice.
        """
        read, header = cls.open_payload(payload)
        document = cls(
            **header,
            export_authorization=read.required_id("export_authorization"),
            export_authorization_number=read.text("export_authorization_number", max_length=64),
            date_received=read.date("date_received"),
            received=read.array(
                "received",
                lambda element, where: ReceivedItem.from_payload(
                    element, where, catalogue=catalogue
                ),
                minimum=1,
                maximum=MAX_ITEMS,
            ),
            remarks=read.text("remarks", max_length=2000, multiline=True, empty=True),
        )
        lines = [item.line for item in document.received]
        if len(set(lines)) != len(lines):
            raise DocumentError("received: a line of the export authorization is listed twice")
        return document
