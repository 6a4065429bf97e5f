"""The export declaration (1971 art. 12(2)), for substances that need no export authorization.

Substances in Schedules III and IV of the 1971 Convention travel with a declaration sent by
the exporting country; :func:`permitnet.protocol.rules.check_export_declaration` checks that
every item's regime allows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from permitnet.protocol.doc_base import DocumentBase
from permitnet.protocol.doc_parts import Item, Party
from permitnet.protocol.doc_trade import read_items
from permitnet.protocol.errors import DocumentError

if TYPE_CHECKING:
    import datetime as dt

    from permitnet.protocol.catalogue import Catalogue

__all__ = ["ExportDeclaration"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportDeclaration(DocumentBase):
    """An export declaration (1971 art. 12(2)), for substances that need no authorization.

    Attributes:
        number: the issuer's reference number of the declaration.
        exporter: the exporter.
        importer: the importer.
        importing_country: the importing country (equal to ``recipient``).
        items: the substances and quantities exported.
        date_of_export: the date of export.
    """

    DOCUMENT_TYPE: ClassVar[str] = "export_declaration"
    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"number", "exporter", "importer", "importing_country", "items", "date_of_export"}
    )

    number: str
    exporter: Party
    importer: Party
    importing_country: str
    items: tuple[Item, ...]
    date_of_export: dt.date

    def to_payload(self) -> dict[str, Any]:
        """Return the declaration as a CBOR-ready map."""
        return self.header_payload() | {
            "number": self.number,
            "exporter": self.exporter.to_payload(),
            "importer": self.importer.to_payload(),
            "importing_country": self.importing_country,
            "items": [item.to_payload() for item in self.items],
            "date_of_export": self.date_of_export.isoformat(),
        }

    @classmethod
    def from_payload(
        cls, payload: object, *, catalogue: Catalogue | None = None
    ) -> ExportDeclaration:
        """Build an export declaration from a decoded payload, checking every field.

        Raises:
            DocumentError: a missing, unknown or invalid field, named by its path, or an
                importing country other than the recipient.
        """
        read, header = cls.open_payload(payload)
        document = cls(
            **header,
            number=read.text("number", max_length=64),
            exporter=Party.from_payload(read.raw("exporter"), "exporter"),
            importer=Party.from_payload(read.raw("importer"), "importer"),
            importing_country=read.country("importing_country"),
            items=read_items(read, catalogue),
            date_of_export=read.date("date_of_export"),
        )
        if document.importing_country != document.recipient:
            raise DocumentError(
                f"importing_country: {document.importing_country} but the declaration is "
                f"addressed to {document.recipient}"
            )
        return document
