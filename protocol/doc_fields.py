"""Checked reading of document payload fields: one place that says what each field type is.

A :class:`PayloadReader` wraps one decoded map; each method reads one field, checks its CBOR
type and its constraint, and raises :class:`DocumentError` naming the field path (for
example ``items[2].quantity_mg``) and what was wrong. The set of keys must match exactly:
a missing key and an unknown key are both errors, so that a signature never covers
a field that this implementation would silently ignore.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Final, TypeVar

import pycountry

from permitnet.protocol.errors import DocumentError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DOCUMENT_ID_SIZE",
    "MAX_INSTANT",
    "PayloadReader",
    "check_country",
]

T = TypeVar("T")

#: A document identifier is SHA-256 of the signed COSE bytes.
DOCUMENT_ID_SIZE: Final = 32
#: The largest accepted Unix time (year 2242): far beyond any document's life, inside 64 bits.
MAX_INSTANT: Final = 2**33
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Refused in text: the Unicode general category Cc (exactly U+0000-U+001F and U+007F-U+009F)
# and the bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069),
# which can make a name or quantity display in another order than it is stored.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_BUT_LF: Final = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def check_country(value: object, where: str) -> str:
    """Return ``value`` if it is an upper-case ISO 3166-1 alpha-2 code of a country.

    Raises:
        DocumentError: naming ``where``, when it is not.
    """
    if not isinstance(value, str) or len(value) != 2 or not value.isascii() or not value.isupper():
        raise DocumentError(f"{where}: {value!r} is not an ISO 3166-1 alpha-2 country code")
    if not _is_assigned_country(value):
        raise DocumentError(f"{where}: {value!r} is not an assigned ISO 3166-1 country code")
    return value


@lru_cache(maxsize=1024)
def _is_assigned_country(code: str) -> bool:
    # Only two upper-case ASCII letters reach this, so the cache is bounded by 26 x 26.
    return pycountry.countries.get(alpha_2=code) is not None


class PayloadReader:
    """Reads the fields of one decoded map, checking each; errors name the field path."""

    __slots__ = ("_payload", "_where")

    def __init__(self, payload: object, where: str, keys: frozenset[str]) -> None:
        """Check that ``payload`` is a map with exactly ``keys``.

        Raises:
            DocumentError: not a map, or a key missing or unknown.
        """
        if not isinstance(payload, dict):
            raise DocumentError(f"{where}: expected a map, got {type(payload).__name__}")
        present = set(payload)
        if present != keys:
            missing = sorted(keys - present)
            unknown = sorted(map(repr, present - keys))
            parts = []
            if missing:
                parts.append(f"missing field(s) {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown field(s) {', '.join(unknown)}")
            raise DocumentError(f"{where}: {'; '.join(parts)}")
        self._payload: dict[object, object] = payload
        self._where = where

    def path(self, key: str) -> str:
        """Return the dotted path of a field, for error messages."""
        return f"{self._where}.{key}" if self._where else key

    def raw(self, key: str) -> object:
        """Return a field's value unchecked."""
        return self._payload[key]

    def text(
        self, key: str, *, max_length: int = 200, multiline: bool = False, empty: bool = False
    ) -> str:
        """Read a text field without control characters (newlines only where ``multiline``).

        Raises:
            DocumentError: not text, empty or blank (unless ``empty``), longer than
                ``max_length`` characters, or holding a control character or a
                bidirectional embedding, override or isolate.
        """
        value = self._payload[key]
        if not isinstance(value, str):
            raise DocumentError(f"{self.path(key)}: expected text, got {type(value).__name__}")
        if not empty and not value.strip():
            raise DocumentError(f"{self.path(key)}: must not be empty")
        if len(value) > max_length:
            raise DocumentError(
                f"{self.path(key)}: {len(value)} characters, at most {max_length} allowed"
            )
        control = (_CONTROL_BUT_LF if multiline else _CONTROL).search(value)
        if control is not None:
            raise DocumentError(
                f"{self.path(key)}: control or bidirectional override character "
                f"{control.group()!r} is not allowed"
            )
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        """Read a text field that must be one of ``allowed``.

        Raises:
            DocumentError: not text, or not one of the allowed values.
        """
        value = self._payload[key]
        if not isinstance(value, str) or value not in allowed:
            raise DocumentError(
                f"{self.path(key)}: {value!r} is not one of {', '.join(map(repr, allowed))}"
            )
        return value

    def integer(self, key: str, *, minimum: int, maximum: int) -> int:
        """Read an integer field within [minimum, maximum].

        Raises:
            DocumentError: not an integer (booleans are not integers here), or out of range.
        """
        value = self._payload[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise DocumentError(
                f"{self.path(key)}: expected an integer, got {type(value).__name__}"
            )
        if not minimum <= value <= maximum:
            raise DocumentError(f"{self.path(key)}: {value} is outside {minimum}..{maximum}")
        return value

    def boolean(self, key: str) -> bool:
        """Read a boolean field.

        Raises:
            DocumentError: not ``true`` or ``false``.
        """
        value = self._payload[key]
        if not isinstance(value, bool):
            raise DocumentError(f"{self.path(key)}: expected true or false")
        return value

    def country(self, key: str) -> str:
        """Read an ISO 3166-1 alpha-2 country code.

        Raises:
            DocumentError: not an assigned upper-case alpha-2 code.
        """
        return check_country(self._payload[key], self.path(key))

    def date(self, key: str) -> dt.date:
        """Read a calendar date written ``"YYYY-MM-DD"``.

        Raises:
            DocumentError: not text of that form, or not a real date.
        """
        value = self._payload[key]
        if not isinstance(value, str) or _DATE.fullmatch(value) is None:
            raise DocumentError(f"{self.path(key)}: {value!r} is not a date written YYYY-MM-DD")
        try:
            return dt.date.fromisoformat(value)
        except ValueError as e:
            raise DocumentError(f"{self.path(key)}: {value!r} is not a real calendar date") from e

    def document_id(self, key: str, *, optional: bool = False) -> bytes | None:
        """Read a 32-byte document identifier (``null`` allowed only when ``optional``).

        Raises:
            DocumentError: not a 32-byte byte string.
        """
        value = self._payload[key]
        if value is None and optional:
            return None
        if not isinstance(value, bytes) or len(value) != DOCUMENT_ID_SIZE:
            raise DocumentError(
                f"{self.path(key)}: a document identifier is a {DOCUMENT_ID_SIZE}-byte string"
            )
        return value

    def required_id(self, key: str) -> bytes:
        """Read a 32-byte document identifier that may not be ``null``.

        Raises:
            DocumentError: not a 32-byte byte string.
        """
        value = self.document_id(key)
        assert value is not None  # document_id only returns None when optional
        return value

    def array(
        self,
        key: str,
        read: Callable[[object, str], T],
        *,
        minimum: int,
        maximum: int,
    ) -> tuple[T, ...]:
        """Read an array, each element with ``read(element, path)``.

        Raises:
            DocumentError: not an array, too few or too many elements, or a bad element.
        """
        value = self._payload[key]
        where = self.path(key)
        if not isinstance(value, list):
            raise DocumentError(f"{where}: expected an array, got {type(value).__name__}")
        if not minimum <= len(value) <= maximum:
            raise DocumentError(
                f"{where}: {len(value)} element(s), between {minimum} and {maximum} allowed"
            )
        return tuple(read(element, f"{where}[{index}]") for index, element in enumerate(value))
