"""The substance catalogue: controlled substances, their salts, and anhydrous-base factors.

Each entry is a :class:`Substance`: a controlled base (``"morphine"``) or one of its salts or
hydrates as traded (``"morphine-sulfate-pentahydrate"``), with the Convention and schedule of
its base, the control regime, and the conversion factor to the anhydrous base.

Factors are computed, not typed in: factor = (base molecules per formula unit x molecular
weight of the base) / molecular weight of the salt's formula unit, from the IUPAC/CIAAW
abridged standard atomic weights (2021) in :mod:`permitnet.protocol.catalogue_data`, then
rounded to four decimal places, ties to even. Morphine sulfate pentahydrate, for example,
is 2 x 285.34 / 758.83 = 0.7521. The factor of a base is ``"1"``.

Control regime, from the Conventions: substances in the 1961 Schedules I, II and IV (every
Schedule IV drug is also in Schedule I) and the 1971 Schedules I and II need an import
certificate and an export authorization (1961 art. 31; 1971 art. 12(1)): regime
``"import_certificate"``. 1961 Schedule III preparations need neither (1961 art. 2(4)) and
are not catalogued. Substances in the 1971
Schedules III and IV need only an export declaration (1971 art. 12(2)), unless the
importing country asks for more: regime ``"export_declaration"``.

The catalogue has an edition identifier and a digest (SHA-256 of its deterministic CBOR), so
that the registry can say which edition is in force and nodes can tell they agree.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final

from permitnet.protocol import catalogue_data
from permitnet.protocol.cbor import encode_cbor
from permitnet.protocol.errors import DocumentError
from permitnet.protocol.quantities import format_decimal, parse_decimal, parse_factor

__all__ = [
    "CONVENTIONS",
    "DEFAULT_CATALOGUE",
    "Catalogue",
    "CatalogueError",
    "Substance",
    "formula_weight",
    "regime_for",
]

#: The Conventions and their schedules.
CONVENTIONS: Final[dict[str, tuple[str, ...]]] = {
    "1961": ("I", "II", "III", "IV"),
    "1971": ("I", "II", "III", "IV"),
}
#: Decimal places of computed factors.
FACTOR_PLACES: Final = 4

_MAX_ENTRY_TEXT: Final = 200
_MAX_ENTRIES: Final = 10_000
_CODE: Final = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_ELEMENT: Final = re.compile(r"([A-Z][a-z]?)([0-9]*)")
_SUBSTANCE_KEYS: Final = frozenset(
    {"code", "name", "base", "convention", "schedule", "regime", "formula", "factor"}
)


class CatalogueError(DocumentError):
    """An unknown substance code, or a catalogue that is not internally consistent."""


def regime_for(convention: str, schedule: str) -> str:
    """Return the control regime the Conventions set for a Convention and schedule.

    Raises:
        CatalogueError: an unknown Convention or schedule.
    """
    if schedule not in CONVENTIONS.get(convention, ()):
        raise CatalogueError(f"unknown Convention {convention!r} or schedule {schedule!r}")
    if convention == "1961" and schedule == "III":
        # 1961 art. 2(4): art. 31(3)-(15) need not apply to Schedule III preparations, so
        # they travel without import certificate or export authorization: not a regime here.
        raise CatalogueError(
            "1961 Schedule III preparations need no import certificate or export "
            "authorization: they are not in the permitnet catalogue"
        )
    if convention == "1971" and schedule in {"III", "IV"}:
        return "export_declaration"
    return "import_certificate"


def formula_weight(formula: str) -> Fraction:
    """Return the exact molecular weight of a formula such as ``"C17H19NO3"``.

    Raises:
        CatalogueError: the formula is empty or names an element without a weight here.
    """
    if not formula or _ELEMENT.sub("", formula):
        raise CatalogueError(f"{formula!r} is not a molecular formula such as 'C17H19NO3'")
    total = Fraction(0)
    for element, count in _ELEMENT.findall(formula):
        if element not in catalogue_data.ATOMIC_WEIGHTS:
            raise CatalogueError(f"no atomic weight for element {element!r} in {formula!r}")
        total += Fraction(catalogue_data.ATOMIC_WEIGHTS[element]) * int(count or "1")
    return total


@dataclass(frozen=True, slots=True, kw_only=True)
class Substance:
    """A catalogue entry: a controlled base substance, or a salt or hydrate of one.

    Attributes:
        code: stable lowercase ASCII code, e.g. ``"codeine-phosphate-hemihydrate"``.
        name: the designation (INN where there is one).
        base: the code of the controlled base; equal to ``code`` for a base.
        convention: ``"1961"`` or ``"1971"``.
        schedule: ``"I"`` to ``"IV"``.
        regime: ``"import_certificate"`` or ``"export_declaration"``.
        formula: the molecular formula, e.g. ``"(C17H19NO3)2·H2SO4·5H2O"``.
        factor: the conversion factor to the anhydrous base, a decimal string in (0, 1].
    """

    code: str
    name: str
    base: str
    convention: str
    schedule: str
    regime: str
    formula: str
    factor: str

    @property
    def is_base(self) -> bool:
        """Whether this entry is the controlled base itself."""
        return self.code == self.base

    def to_payload(self) -> dict[str, Any]:
        """Return the entry as a CBOR-ready map."""
        return {
            "code": self.code,
            "name": self.name,
            "base": self.base,
            "convention": self.convention,
            "schedule": self.schedule,
            "regime": self.regime,
            "formula": self.formula,
            "factor": self.factor,
        }

    @classmethod
    def from_payload(cls, payload: object) -> Substance:
        """Build an entry from a decoded map, checking every field.

        Raises:
            CatalogueError: a missing or unknown key, or a field of the wrong type or form.
        """
        if not isinstance(payload, dict):
            raise CatalogueError("a catalogue entry must be a map")
        keys = set(payload)
        if keys != _SUBSTANCE_KEYS:
            missing, extra = _SUBSTANCE_KEYS - keys, keys - _SUBSTANCE_KEYS
            raise CatalogueError(
                f"catalogue entry: missing keys {sorted(missing)}, "
                f"unknown keys {sorted(map(str, extra))}"
            )
        for key in _SUBSTANCE_KEYS:
            value = payload[key]
            if not isinstance(value, str) or not value or len(value) > _MAX_ENTRY_TEXT:
                raise CatalogueError(
                    f"catalogue entry field {key!r} must be text of 1 to {_MAX_ENTRY_TEXT} "
                    "characters"
                )
        entry = cls(**payload)
        for key in ("code", "base"):
            if _CODE.fullmatch(getattr(entry, key)) is None:
                raise CatalogueError(
                    f"catalogue {key} {getattr(entry, key)!r} is not a lowercase ASCII code"
                )
        if entry.regime != regime_for(entry.convention, entry.schedule):
            raise CatalogueError(
                f"{entry.code}: regime {entry.regime!r} does not match "
                f"{entry.convention} Schedule {entry.schedule}"
            )
        try:
            parse_factor(entry.factor)
        except DocumentError as e:
            raise CatalogueError(f"{entry.code}: {e}") from e
        if entry.is_base and entry.factor != "1":
            raise CatalogueError(f"{entry.code}: a base substance has factor '1'")
        return entry


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalogue:
    """A catalogue edition: every substance that documents may name, with lookups by code.

    Attributes:
        edition: the edition identifier, e.g. ``"permitnet-2026.1"``.
        substances: the entries, sorted by code.
    """

    edition: str
    substances: tuple[Substance, ...]
    _by_code: dict[str, Substance] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_code: dict[str, Substance] = {}
        for entry in self.substances:
            if entry.code in by_code:
                raise CatalogueError(f"substance code {entry.code!r} appears twice")
            by_code[entry.code] = entry
        for entry in self.substances:
            base = by_code.get(entry.base)
            if base is None or not base.is_base:
                raise CatalogueError(f"{entry.code}: base {entry.base!r} is not a base substance")
            if (base.convention, base.schedule) != (entry.convention, entry.schedule):
                raise CatalogueError(
                    f"{entry.code}: Convention and schedule differ from those of {base.code}"
                )
        # Frozen dataclasses set derived fields through object.__setattr__.
        object.__setattr__(self, "_by_code", by_code)

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in self._by_code

    def __len__(self) -> int:
        return len(self.substances)

    def get(self, code: str) -> Substance:
        """Return the entry for ``code``.

        Raises:
            CatalogueError: no such code in this edition.
        """
        entry = self._by_code.get(code)
        if entry is None:
            raise CatalogueError(
                f"substance {code!r} is not in the catalogue (edition {self.edition})"
            )
        return entry

    def base_of(self, code: str) -> Substance:
        """Return the controlled base of a substance or salt.

        Raises:
            CatalogueError: no such code in this edition.
        """
        return self._by_code[self.get(code).base]

    def regime(self, code: str) -> str:
        """Return the control regime of a substance or salt.

        Raises:
            CatalogueError: no such code in this edition.
        """
        return self.get(code).regime

    def salts_of(self, base: str) -> tuple[Substance, ...]:
        """Return the salts and hydrates of a base (not the base itself), sorted by code."""
        return tuple(e for e in self.substances if e.base == base and not e.is_base)

    def to_payload(self) -> dict[str, Any]:
        """Return the catalogue as a CBOR-ready map."""
        return {
            "edition": self.edition,
            "substances": [entry.to_payload() for entry in self.substances],
        }

    def to_cbor(self) -> bytes:
        """Return the catalogue's deterministic CBOR encoding."""
        return encode_cbor(self.to_payload())

    def digest(self) -> bytes:
        """Return SHA-256 of the catalogue's deterministic CBOR: equal digests, same catalogue."""
        return hashlib.sha256(self.to_cbor()).digest()

    def check_published(self, edition: str, digest: bytes) -> None:
        """Check that this catalogue is the edition the registry publishes as in force.

        Args:
            edition: the edition identifier in the registry snapshot.
            digest: the SHA-256 digest in the registry snapshot.

        Raises:
            CatalogueError: another edition, or the same edition name with other contents.
        """
        if edition != self.edition:
            raise CatalogueError(
                f"the registry publishes catalogue edition {edition!r}; this node has "
                f"{self.edition!r}"
            )
        if digest != self.digest():
            raise CatalogueError(
                f"catalogue edition {edition!r} differs from the registry's: digest "
                f"{self.digest().hex()} here, {digest.hex()} published"
            )

    @classmethod
    def from_payload(cls, payload: object) -> Catalogue:
        """Build a catalogue from a decoded map (as published by the registry).

        Raises:
            CatalogueError: not a catalogue, an invalid entry, a duplicate code, entries not
                sorted by code, or a salt whose base is missing.
        """
        if not isinstance(payload, dict) or set(payload) != {"edition", "substances"}:
            raise CatalogueError("a catalogue is a map of exactly 'edition' and 'substances'")
        edition, entries = payload["edition"], payload["substances"]
        if not isinstance(edition, str) or not edition or len(edition) > 64:
            raise CatalogueError("catalogue edition must be text of 1 to 64 characters")
        if not isinstance(entries, list) or not entries or len(entries) > _MAX_ENTRIES:
            raise CatalogueError(
                f"catalogue substances must be an array of 1 to {_MAX_ENTRIES} entries"
            )
        substances = tuple(Substance.from_payload(entry) for entry in entries)
        codes = [entry.code for entry in substances]
        if codes != sorted(codes):
            raise CatalogueError("catalogue substances must be sorted by code")
        return cls(edition=edition, substances=substances)


def _salt_factor(
    base_formula: str, base_units: int, components: tuple[tuple[str, str], ...]
) -> str:
    salt_weight = sum(
        (parse_decimal(count) * formula_weight(formula) for count, formula in components),
        Fraction(0),
    )
    return format_decimal(base_units * formula_weight(base_formula) / salt_weight, FACTOR_PLACES)


def _salt_formula(components: tuple[tuple[str, str], ...]) -> str:
    parts = []
    for index, (count, formula) in enumerate(components):
        if count == "1":
            parts.append(formula)
        elif index == 0:
            parts.append(f"({formula}){count}")
        else:
            parts.append(f"{count}{formula}")
    return "\u00b7".join(parts)


def _build_default() -> Catalogue:
    entries: list[Substance] = []
    bases: dict[str, tuple[str, str, str]] = {}
    for code, name, convention, schedule, formula in catalogue_data.BASES:
        bases[code] = (convention, schedule, formula)
        regime = regime_for(convention, schedule)
        entries.append(
            Substance(
                code=code,
                name=name,
                base=code,
                convention=convention,
                schedule=schedule,
                regime=regime,
                formula=formula,
                factor="1",
            )
        )
    for code, name, base, base_units, components in catalogue_data.SALTS:
        convention, schedule, base_formula = bases[base]
        entries.append(
            Substance(
                code=code,
                name=name,
                base=base,
                convention=convention,
                schedule=schedule,
                regime=regime_for(convention, schedule),
                formula=_salt_formula(components),
                factor=_salt_factor(base_formula, base_units, components),
            )
        )
    entries.sort(key=lambda entry: entry.code)
    return Catalogue(edition=catalogue_data.EDITION, substances=tuple(entries))


#: The built-in catalogue edition.
DEFAULT_CATALOGUE: Final = _build_default()
