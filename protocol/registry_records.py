"""The facts the INCB registry publishes, one typed record each, as leaves of its log.

Every record is a leaf of the registry's append-only Merkle log. A later record with the
same identity supersedes an earlier one (a revised estimate, a key that was revoked); the
earlier one stays in the log as the publication history. The leaf data is the record's
deterministic CBOR encoding, kept as the exact bytes that were logged.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Final, Literal

import pycountry

from permitnet.protocol.cbor import decode_cbor, encode_cbor
from permitnet.protocol.cose import key_id
from permitnet.protocol.errors import DecodeError
from permitnet.protocol.registry_errors import RecordError

__all__ = [
    "ESTIMATE_KINDS",
    "CatalogueEdition",
    "CountryRecord",
    "Estimate",
    "EstimateKind",
    "KeyRecord",
    "KeyStatus",
    "Record",
    "check_country",
    "decode_record",
    "encode_record",
]

KeyStatus = Literal["active", "retired", "revoked"]
EstimateKind = Literal["estimate", "supplementary", "assessment"]
KEY_STATUSES: Final = ("active", "retired", "revoked")
ESTIMATE_KINDS: Final = ("estimate", "supplementary", "assessment")
_SUBSTANCE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_RECORD_SIZE: Final = 8 * 1024
_MAX_TEXT: Final = 500


@functools.cache
def _country_codes() -> frozenset[str]:
    # Looked up once: pycountry's own lookup costs more than decoding a record.
    return frozenset(c.alpha_2 for c in pycountry.countries)


def check_country(code: object) -> str:
    """Return ``code`` if it is an ISO 3166-1 alpha-2 code known to pycountry.

    Raises:
        RecordError: it is not.
    """
    if not isinstance(code, str) or len(code) != 2 or not code.isupper():
        raise RecordError(f"country must be an upper-case ISO 3166-1 alpha-2 code, got {code!r}")
    if code not in _country_codes():
        raise RecordError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def _text(name: str, value: object, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()) or len(value) > _MAX_TEXT:
        raise RecordError(f"{name} must be non-empty text of at most {_MAX_TEXT} characters")
    return value


def _int(name: str, value: object, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RecordError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _optional_int(name: str, value: object) -> int | None:
    return None if value is None else _int(name, value)


def _date(name: str, value: object) -> str:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise RecordError(f"{name} must be a YYYY-MM-DD date, got {value!r}")
    try:
        dt.date.fromisoformat(value)
    except ValueError as e:
        raise RecordError(f"{name} {value!r} is not a calendar date") from e
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class CountryRecord:
    """A participating country: its competent national authority and node endpoints."""

    code: str
    name: str
    authority: str
    endpoints: tuple[str, ...]
    contact: str

    def __post_init__(self) -> None:
        check_country(self.code)
        _text("country name", self.name)
        _text("competent authority", self.authority)
        _text("contact", self.contact, empty=True)
        if not isinstance(self.endpoints, tuple) or len(self.endpoints) > 16:
            raise RecordError("endpoints must be a tuple of at most 16 URLs")
        for url in self.endpoints:
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise RecordError(f"endpoint {url!r} is not an http(s) URL")

    def to_payload(self) -> dict[str, object]:
        """Return the record as a CBOR-ready map."""
        return {
            "type": "country",
            "code": self.code,
            "name": self.name,
            "authority": self.authority,
            "endpoints": list(self.endpoints),
            "contact": self.contact,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, object]) -> CountryRecord:
        """Build the record from a decoded map.

        Raises:
            RecordError: a field is missing or invalid.
        """
        endpoints = payload.get("endpoints")
        if not isinstance(endpoints, list):
            raise RecordError("endpoints must be an array of URLs")
        return cls(
            code=check_country(payload.get("code")),
            name=_text("country name", payload.get("name")),
            authority=_text("competent authority", payload.get("authority")),
            endpoints=tuple(endpoints),
            contact=_text("contact", payload.get("contact"), empty=True),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRecord:
    """A country's Ed25519 document-signing key and its status.

    A document signed with a revoked key at or after ``compromised_at`` is invalid; one
    signed earlier stays valid. A retired key signs nothing new after ``valid_until``.
    """

    country: str
    kid: bytes
    public_key: bytes
    valid_from: int
    valid_until: int | None
    status: KeyStatus
    compromised_at: int | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        check_country(self.country)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise RecordError("an Ed25519 public key is 32 bytes")
        if self.kid != key_id(self.public_key):
            raise RecordError("kid is not the key identifier of the public key")
        _int("valid_from", self.valid_from)
        if self.valid_until is not None and _int("valid_until", self.valid_until) <= (
            self.valid_from
        ):
            raise RecordError("valid_until must be after valid_from")
        if self.status not in KEY_STATUSES:
            raise RecordError(f"key status must be one of {KEY_STATUSES}, got {self.status!r}")
        if self.status == "revoked":
            _int("compromised_at", self.compromised_at)
            _text("revocation reason", self.reason)
        elif self.compromised_at is not None:
            raise RecordError("only a revoked key has a compromise time")
        if self.status == "retired" and self.valid_until is None:
            raise RecordError("a retired key must have valid_until")

    def to_payload(self) -> dict[str, object]:
        """Return the record as a CBOR-ready map."""
        return {
            "type": "key",
            "country": self.country,
            "kid": self.kid,
            "public_key": self.public_key,
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "status": self.status,
            "compromised_at": self.compromised_at,
            "reason": self.reason,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, object]) -> KeyRecord:
        """Build the record from a decoded map.

        Raises:
            RecordError: a field is missing or invalid.
        """
        kid, public_key, status = (
            payload.get("kid"),
            payload.get("public_key"),
            payload.get("status"),
        )
        if not isinstance(kid, bytes) or not isinstance(public_key, bytes):
            raise RecordError("kid and public_key must be byte strings")
        if status not in KEY_STATUSES:
            raise RecordError(f"key status must be one of {KEY_STATUSES}, got {status!r}")
        reason = payload.get("reason")
        return cls(
            country=check_country(payload.get("country")),
            kid=kid,
            public_key=public_key,
            valid_from=_int("valid_from", payload.get("valid_from")),
            valid_until=_optional_int("valid_until", payload.get("valid_until")),
            status=status,
            compromised_at=_optional_int("compromised_at", payload.get("compromised_at")),
            reason=None if reason is None else _text("revocation reason", reason),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    """An annual estimate, a supplementary estimate (narcotics) or an assessment (psychotropics).

    ``quantity_mg`` is the anhydrous base in integer milligrams. ``effective`` is the date
    from which the figure applies. Supplementary estimates for the same year add up; each
    has its own ``sequence`` (1, 2, ...); the annual estimate and assessments use 0.
    """

    country: str
    substance: str
    year: int
    quantity_mg: int
    kind: EstimateKind
    effective: str
    sequence: int = 0

    def __post_init__(self) -> None:
        check_country(self.country)
        if not isinstance(self.substance, str) or not _SUBSTANCE.fullmatch(self.substance):
            raise RecordError(f"substance must be a lowercase code, got {self.substance!r}")
        if not 1961 <= _int("year", self.year) <= 9999:
            raise RecordError(f"year {self.year} is out of range")
        _int("quantity_mg", self.quantity_mg)
        if self.kind not in ESTIMATE_KINDS:
            raise RecordError(f"kind must be one of {ESTIMATE_KINDS}, got {self.kind!r}")
        _date("effective date", self.effective)
        _int("sequence", self.sequence)
        if (self.kind == "supplementary") != (self.sequence > 0):
            raise RecordError("supplementary estimates have sequence >= 1, others sequence 0")
        if self.kind == "assessment" and int(self.effective[:4]) != self.year:
            raise RecordError("an assessment's year is the year of its effective date")

    def to_payload(self) -> dict[str, object]:
        """Return the record as a CBOR-ready map."""
        return {
            "type": "estimate",
            "country": self.country,
            "substance": self.substance,
            "year": self.year,
            "quantity_mg": self.quantity_mg,
            "kind": self.kind,
            "effective": self.effective,
            "sequence": self.sequence,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, object]) -> Estimate:
        """Build the record from a decoded map.

        Raises:
            RecordError: a field is missing or invalid.
        """
        kind, substance = payload.get("kind"), payload.get("substance")
        if kind not in ESTIMATE_KINDS:
            raise RecordError(f"kind must be one of {ESTIMATE_KINDS}, got {kind!r}")
        if not isinstance(substance, str):
            raise RecordError("substance must be text")
        return cls(
            country=check_country(payload.get("country")),
            substance=substance,
            year=_int("year", payload.get("year")),
            quantity_mg=_int("quantity_mg", payload.get("quantity_mg")),
            kind=kind,
            effective=_date("effective date", payload.get("effective")),
            sequence=_int("sequence", payload.get("sequence")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogueEdition:
    """The substance catalogue edition in force: its edition id and SHA-256 digest."""

    edition: str
    digest: bytes

    def __post_init__(self) -> None:
        _text("catalogue edition", self.edition)
        if not isinstance(self.digest, bytes) or len(self.digest) != 32:
            raise RecordError("the catalogue digest is a 32-byte SHA-256")

    def to_payload(self) -> dict[str, object]:
        """Return the record as a CBOR-ready map."""
        return {"type": "catalogue", "edition": self.edition, "digest": self.digest}

    @classmethod
    def from_payload(cls, payload: dict[str, object]) -> CatalogueEdition:
        """Build the record from a decoded map.

        Raises:
            RecordError: a field is missing or invalid.
        """
        digest = payload.get("digest")
        if not isinstance(digest, bytes):
            raise RecordError("the catalogue digest must be a byte string")
        return cls(edition=_text("catalogue edition", payload.get("edition")), digest=digest)


Record = CountryRecord | KeyRecord | Estimate | CatalogueEdition
_TYPES: Final[dict[str, type[Record]]] = {
    "country": CountryRecord,
    "key": KeyRecord,
    "estimate": Estimate,
    "catalogue": CatalogueEdition,
}


def encode_record(record: Record) -> bytes:
    """Return the deterministic CBOR leaf data of ``record``."""
    return encode_cbor(record.to_payload())


def decode_record(data: bytes) -> Record:
    """Decode one log leaf into its record.

    Raises:
        DecodeError: the bytes are not strict CBOR.
        RecordError: the map is not a valid record.
    """
    try:
        payload = decode_cbor(data, max_size=MAX_RECORD_SIZE, max_depth=3)
    except DecodeError as e:
        raise RecordError(f"a log record is not strict CBOR: {e}") from e
    if not isinstance(payload, dict):
        raise RecordError("a log record is a map")
    kind = payload.get("type")
    record_type = _TYPES.get(kind) if isinstance(kind, str) else None
    if record_type is None:
        raise RecordError(f"unknown record type {kind!r}")
    return record_type.from_payload(payload)
