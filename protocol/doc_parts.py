"""The parts documents are made of: parties, items, references to other documents.

Each part is a frozen dataclass with ``to_payload()`` and a validating ``from_payload``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from permitnet.protocol.catalogue import DEFAULT_CATALOGUE, Catalogue
from permitnet.protocol.doc_fields import PayloadReader
from permitnet.protocol.errors import DocumentError
from permitnet.protocol.quantities import MAX_QUANTITY_MG, base_equivalent_mg

if TYPE_CHECKING:
    import datetime as dt

__all__ = [
    "MAX_ITEMS",
    "CertificateReference",
    "Item",
    "Party",
    "ReceivedItem",
]

#: The most items one document may carry.
MAX_ITEMS: Final = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class Party:
    """An importer or exporter: a licensed company or institution.

    Attributes:
        name: the registered name (1-200 characters).
        address: the postal address (1-500 characters, may span lines).
        licence: the number of the licence the competent authority granted (1-64 characters).
    """

    name: str
    address: str
    licence: str

    _KEYS: ClassVar[frozenset[str]] = frozenset({"name", "address", "licence"})

    def to_payload(self) -> dict[str, Any]:
        """Return the party as a CBOR-ready map."""
        return {"name": self.name, "address": self.address, "licence": self.licence}

    @classmethod
    def from_payload(cls, payload: object, where: str = "party") -> Party:
        """Build a party from a decoded map.

        Raises:
            DocumentError: a missing, unknown or invalid field, named by its path.
        """
        read = PayloadReader(payload, where, cls._KEYS)
        return cls(
            name=read.text("name"),
            address=read.text("address", max_length=500, multiline=True),
            licence=read.text("licence", max_length=64),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """One line of a certificate, authorization or declaration: a substance and its quantity.

    Attributes:
        substance: catalogue code of the substance, salt or preparation as traded.
        base: catalogue code of the controlled base substance.
        convention: ``"1961"`` or ``"1971"``.
        schedule: ``"I"`` to ``"IV"``.
        preparation: the preparation and pharmaceutical form, e.g. ``"tablets 10 mg"`` or
            ``"bulk powder"``.
        quantity_mg: the quantity as traded, in milligrams (positive).
        base_mg: the anhydrous-base equivalent, ``round(quantity_mg x factor)``.
        factor: the conversion factor used, a decimal string (the catalogue's).
    """

    substance: str
    base: str
    convention: str
    schedule: str
    preparation: str
    quantity_mg: int
    base_mg: int
    factor: str

    _KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "substance",
            "base",
            "convention",
            "schedule",
            "preparation",
            "quantity_mg",
            "base_mg",
            "factor",
        }
    )

    @classmethod
    def create(
        cls,
        substance: str,
        quantity_mg: int,
        preparation: str,
        *,
        catalogue: Catalogue = DEFAULT_CATALOGUE,
    ) -> Item:
        """Make an item from a substance code and quantity, filling in the rest from the catalogue.

        Raises:
            DocumentError: an unknown substance, or an invalid quantity or preparation.
        """
        entry = catalogue.get(substance)
        base_mg = base_equivalent_mg(quantity_mg, entry.factor)
        return cls.from_payload(
            {
                "substance": substance,
                "base": entry.base,
                "convention": entry.convention,
                "schedule": entry.schedule,
                "preparation": preparation,
                "quantity_mg": quantity_mg,
                "base_mg": base_mg,
                "factor": entry.factor,
            },
            catalogue=catalogue,
        )

    def to_payload(self) -> dict[str, Any]:
        """Return the item as a CBOR-ready map."""
        return {
            "substance": self.substance,
            "base": self.base,
            "convention": self.convention,
            "schedule": self.schedule,
            "preparation": self.preparation,
            "quantity_mg": self.quantity_mg,
            "base_mg": self.base_mg,
            "factor": self.factor,
        }

    @classmethod
    def from_payload(
        cls, payload: object, where: str = "item", *, catalogue: Catalogue | None = None
    ) -> Item:
        """Build an item from a decoded map, checking it against the catalogue.

        Raises:
            DocumentError: a missing, unknown or invalid field; a substance not in the
                catalogue; a base, Convention, schedule or factor other than the catalogue's;
                or a base_mg other than ``round(quantity_mg x factor)``.
        """
        catalogue = catalogue or DEFAULT_CATALOGUE
        read = PayloadReader(payload, where, cls._KEYS)
        substance = read.text("substance", max_length=100)
        if substance not in catalogue:
            raise DocumentError(
                f"{read.path('substance')}: {substance!r} is not in the substance catalogue "
                f"(edition {catalogue.edition})"
            )
        entry = catalogue.get(substance)
        item = cls(
            substance=substance,
            base=read.text("base", max_length=100),
            convention=read.text("convention", max_length=4),
            schedule=read.text("schedule", max_length=3),
            preparation=read.text("preparation"),
            quantity_mg=read.integer("quantity_mg", minimum=1, maximum=MAX_QUANTITY_MG),
            base_mg=read.integer("base_mg", minimum=0, maximum=MAX_QUANTITY_MG),
            factor=read.text("factor", max_length=12),
        )
        for key in ("base", "convention", "schedule", "factor"):
            expected = getattr(entry, key)
            if getattr(item, key) != expected:
                raise DocumentError(
                    f"{read.path(key)}: {getattr(item, key)!r} but the catalogue (edition "
                    f"{catalogue.edition}) gives {expected!r} for {substance}"
                )
        expected_base = base_equivalent_mg(item.quantity_mg, item.factor)
        if item.base_mg != expected_base:
            raise DocumentError(
                f"{read.path('base_mg')}: {item.base_mg} mg but {item.quantity_mg} mg x "
                f"{item.factor} = {expected_base} mg (rounded to the nearest mg, ties to even)"
            )
        return item


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateReference:
    """The import certificate an export authorization is issued against.

    Attributes:
        id: the certificate's document identifier (SHA-256 of its signed bytes).
        number: the certificate's reference number, as issued by the importing country.
        date_of_issue: the certificate's date of issue.
        authority: the competent authority that issued the certificate.
    """

    id: bytes
    number: str
    date_of_issue: dt.date
    authority: str

    _KEYS: ClassVar[frozenset[str]] = frozenset({"id", "number", "date_of_issue", "authority"})

    def to_payload(self) -> dict[str, Any]:
        """Return the reference as a CBOR-ready map."""
        return {
            "id": self.id,
            "number": self.number,
            "date_of_issue": self.date_of_issue.isoformat(),
            "authority": self.authority,
        }

    @classmethod
    def from_payload(
        cls, payload: object, where: str = "import_certificate"
    ) -> CertificateReference:
        """Build the reference from a decoded map.

        Raises:
            DocumentError: a missing, unknown or invalid field.
        """
        read = PayloadReader(payload, where, cls._KEYS)
        return cls(
            id=read.required_id("id"),
            number=read.text("number", max_length=64),
            date_of_issue=read.date("date_of_issue"),
            authority=read.text("authority"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedItem:
    """The quantity actually received for one line of an export authorization.

    Attributes:
        line: the zero-based index of the item in the export authorization.
        substance: the catalogue code of that item (repeated so that a mismatch is caught).
        quantity_mg: the quantity received, as traded, in milligrams (zero if none arrived).
    """

    line: int
    substance: str
    quantity_mg: int

    _KEYS: ClassVar[frozenset[str]] = frozenset({"line", "substance", "quantity_mg"})

    def to_payload(self) -> dict[str, Any]:
        """Return the received item as a CBOR-ready map."""
        return {"line": self.line, "substance": self.substance, "quantity_mg": self.quantity_mg}

    @classmethod
    def from_payload(
        cls, payload: object, where: str = "received", *, catalogue: Catalogue | None = None
    ) -> ReceivedItem:
        """Build the received item from a decoded map.

        Raises:
            DocumentError: a missing, unknown or invalid field, or a substance that is not
                in the catalogue.
        """
        catalogue = catalogue or DEFAULT_CATALOGUE
        read = PayloadReader(payload, where, cls._KEYS)
        item = cls(
            line=read.integer("line", minimum=0, maximum=MAX_ITEMS - 1),
            substance=read.text("substance", max_length=100),
            quantity_mg=read.integer("quantity_mg", minimum=0, maximum=MAX_QUANTITY_MG),
        )
        if item.substance not in catalogue:
            raise DocumentError(
                f"{read.path('substance')}: {item.substance!r} is not in the substance "
                f"catalogue (edition {catalogue.edition})"
            )
        return item
