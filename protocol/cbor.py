"""Deterministic CBOR: RFC 8949 section 4.2.1 core deterministic encoding, decoded strictly.

Encoding sorts map keys by the bytewise lexicographic order of their encodings (RFC 8949),
not length-first as cbor2's ``canonical=True`` does (the older RFC 7049 rule); the two orders
differ, for example, for the keys ``"b"`` and ``"aa"``. cbor2 writes the primitives, which it
already does in shortest form with definite lengths.

Decoding is our own, because cbor2 is lenient by design (it accepts non-shortest forms,
indefinite lengths, duplicate keys and unsorted maps) and interprets many semantic tags
(bigfloats, regular expressions, shared references) that an attacker could use for a denial
of service. The decoder here accepts exactly one deterministic encoding of each value and
nothing the protocol does not use:

* unsigned and negative integers, byte strings, UTF-8 text strings, arrays, maps whose keys
  are integers or text, ``false``, ``true`` and ``null``;
* tag 18 (COSE_Sign1) only, unless the caller allows other tag numbers;
* no floating point (quantities are exact integers or decimal strings), no ``undefined``,
  no other simple values, no indefinite lengths.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Final

import cbor2

from permitnet.protocol.errors import DecodeError, EncodeError, SizeLimitError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "Tag",
    "decode_cbor",
    "encode_cbor",
]

#: Largest input :func:`decode_cbor` accepts unless told otherwise (a signed document is ~1.5 KB).
DEFAULT_MAX_SIZE: Final = 256 * 1024
#: Deepest nesting of arrays, maps and tags :func:`decode_cbor` accepts unless told otherwise.
DEFAULT_MAX_DEPTH: Final = 16
#: The tag numbers the protocol uses: 18 is COSE_Sign1 (RFC 9052).
DEFAULT_TAGS: Final = frozenset({18})

#: A CBOR tag as decoded: ``Tag(18, [...])``. This is cbor2's own class, so values pass
#: between the two without conversion.
Tag = cbor2.CBORTag

_UINT64_MAX: Final = 2**64 - 1
_NEGINT_MIN: Final = -(2**64)
_MAJOR_NAMES: Final = (
    "unsigned integer",
    "negative integer",
    "byte string",
    "text string",
    "array",
    "map",
    "tag",
    "simple value or float",
)


def encode_cbor(value: object) -> bytes:
    """Encode ``value`` in RFC 8949 core deterministic encoding.

    Args:
        value: ``int``, ``bytes``, ``str``, ``bool``, ``None``, a sequence (list or tuple) or a
            mapping with ``int`` or ``str`` keys, nested; or a :data:`Tag`.

    Returns:
        The single deterministic encoding of ``value``.

    Raises:
        EncodeError: ``value`` holds a type the protocol does not use (a float, a set, a
            datetime, ...), an integer outside the 64-bit CBOR range, a map key that is
            neither an integer nor text, or two keys with the same encoding.
    """
    try:
        return cbor2.dumps(_prepare(value, 0))
    except EncodeError:
        raise
    except (cbor2.CBOREncodeError, TypeError, ValueError, RecursionError) as e:
        raise EncodeError(f"cannot encode value: {e}") from e


def _prepare(value: object, depth: int) -> object:
    """Return a copy of ``value`` whose maps iterate in deterministic key order."""
    if depth > 64:
        raise EncodeError("value nested more than 64 levels deep")
    if value is None or isinstance(value, bool | str | bytes):
        return value
    if isinstance(value, int):
        if not _NEGINT_MIN <= value <= _UINT64_MAX:
            raise EncodeError(f"integer {value} is outside the 64-bit CBOR range")
        return value
    if isinstance(value, Mapping):
        entries: list[tuple[bytes, object, object]] = []
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, int | str):
                raise EncodeError(f"map key {key!r} is neither an integer nor text")
            entries.append((encode_cbor(key), key, _prepare(item, depth + 1)))
        entries.sort(key=lambda entry: entry[0])
        for previous, current in itertools.pairwise(entries):
            if previous[0] == current[0]:
                raise EncodeError(f"map key {current[1]!r} appears twice")
        return {key: item for _, key, item in entries}
    if isinstance(value, Sequence):
        return [_prepare(item, depth + 1) for item in value]
    if isinstance(value, Tag):
        if isinstance(value.tag, bool) or not 0 <= value.tag <= _UINT64_MAX:
            raise EncodeError(f"tag number {value.tag!r} is out of range")
        return Tag(value.tag, _prepare(value.value, depth + 1))
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise EncodeError(f"type {type(value).__name__} is not used by the permitnet protocol")


def decode_cbor(
    data: bytes,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
    allowed_tags: frozenset[int] = DEFAULT_TAGS,
) -> object:
    """Decode one strict, deterministically encoded CBOR item that fills ``data`` exactly.

    Args:
        data: the received bytes.
        max_size: the largest input accepted, in bytes.
        max_depth: the deepest nesting of arrays, maps and tags accepted.
        allowed_tags: the tag numbers accepted (by default only 18, COSE_Sign1).

    Returns:
        The value: ``int``, ``bytes``, ``str``, ``bool``, ``None``, ``list``, ``dict`` or
        :data:`Tag`.

    Raises:
        SizeLimitError: the input is larger or nested deeper than allowed.
        DecodeError: anything else that is not the one deterministic encoding of a value the
            protocol uses; the message says what was wrong and at which byte offset.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_size:
        raise SizeLimitError(f"input of {len(data)} bytes exceeds the limit of {max_size} bytes")
    if not data:
        raise DecodeError("empty input: expected one CBOR item")
    decoder = _Decoder(data, max_depth, allowed_tags)
    value, end = decoder.item(0, 0)
    if end != len(data):
        raise DecodeError(f"{len(data) - end} trailing bytes after the CBOR item at offset {end}")
    return value


class _Decoder:
    """One strict decoding pass over ``data``; positions are byte offsets into it."""

    __slots__ = ("allowed_tags", "data", "max_depth", "size")

    def __init__(self, data: bytes, max_depth: int, allowed_tags: frozenset[int]) -> None:
        self.data = data
        self.size = len(data)
        self.max_depth = max_depth
        self.allowed_tags = allowed_tags

    def _argument(self, info: int, pos: int, start: int) -> tuple[int, int]:
        """Read the argument that follows an initial byte, refusing non-shortest forms."""
        if info < 24:
            return info, pos
        if info > 27:
            if info == 31:
                major = self.data[start] >> 5
                if major == 7:
                    raise DecodeError(f"unexpected break code at offset {start}")
                raise DecodeError(
                    f"indefinite-length {_MAJOR_NAMES[major]} at offset {start}: "
                    "only definite lengths are allowed"
                )
            raise DecodeError(f"reserved additional information {info} at offset {start}")
        width = 1 << (info - 24)
        end = pos + width
        if end > self.size:
            raise DecodeError(f"truncated input: the header at offset {start} needs {width} more")
        arg = int.from_bytes(self.data[pos:end], "big")
        if arg < (24 if width == 1 else 1 << (4 * width)):
            raise DecodeError(
                f"non-shortest encoding at offset {start}: {arg} written in {width + 1} bytes"
            )
        return arg, end

    def item(self, pos: int, depth: int) -> tuple[object, int]:
        """Decode the item at ``pos``; return it and the offset just after it."""
        if pos >= self.size:
            raise DecodeError(f"truncated input: expected an item at offset {pos}")
        data = self.data
        start = pos
        initial = data[pos]
        major = initial >> 5
        info = initial & 0x1F
        if major == 7:
            return _simple(info, start), pos + 1
        arg, pos = self._argument(info, pos + 1, start)
        if major == 0:
            return arg, pos
        if major == 1:
            return -1 - arg, pos
        if major == 2 or major == 3:  # noqa: PLR1714 - two branches share the length check
            end = pos + arg
            if end > self.size:
                raise DecodeError(
                    f"truncated input: the {_MAJOR_NAMES[major]} at offset {start} declares "
                    f"{arg} bytes but {self.size - pos} remain"
                )
            if major == 2:
                return data[pos:end], end
            try:
                return data[pos:end].decode("utf-8"), end
            except UnicodeDecodeError as e:
                raise DecodeError(f"text string at offset {start} is not valid UTF-8") from e
        if depth >= self.max_depth:
            raise SizeLimitError(f"nesting deeper than {self.max_depth} levels at offset {start}")
        if major == 4:
            if arg > self.size - pos:
                raise DecodeError(
                    f"truncated input: the array at offset {start} declares {arg} items "
                    f"but only {self.size - pos} bytes remain"
                )
            items: list[object] = []
            append = items.append
            for _ in range(arg):
                value, pos = self.item(pos, depth + 1)
                append(value)
            return items, pos
        if major == 5:
            return self._map(arg, pos, start, depth)
        # Major type 6 is a tag: only the tag numbers the caller allows.
        if arg not in self.allowed_tags:
            raise DecodeError(f"tag {arg} at offset {start} is not used by the protocol")
        value, pos = self.item(pos, depth + 1)
        return Tag(arg, value), pos

    def _map(self, count: int, pos: int, start: int, depth: int) -> tuple[object, int]:
        if 2 * count > self.size - pos:
            raise DecodeError(
                f"truncated input: the map at offset {start} declares {count} entries "
                f"but only {self.size - pos} bytes remain"
            )
        data = self.data
        result: dict[object, object] = {}
        previous_key = b""
        for _ in range(count):
            key_start = pos
            key, pos = self.item(pos, depth + 1)
            if isinstance(key, bool) or not isinstance(key, int | str):
                raise DecodeError(
                    f"map key at offset {key_start} is a {type(key).__name__}: "
                    "keys must be integers or text"
                )
            encoded_key = data[key_start:pos]
            if encoded_key <= previous_key:
                if encoded_key == previous_key:
                    raise DecodeError(f"duplicate map key {key!r} at offset {key_start}")
                raise DecodeError(
                    f"map key {key!r} at offset {key_start} is out of deterministic order "
                    "(keys must be sorted by their encoded bytes)"
                )
            previous_key = encoded_key
            result[key], pos = self.item(pos, depth + 1)
        return result, pos


def _simple(info: int, start: int) -> bool | None:
    """Decode major type 7: only false, true and null are used by the protocol."""
    if info == 20:
        return False
    if info == 21:
        return True
    if info == 22:
        return None
    if info == 23:
        raise DecodeError(f"'undefined' at offset {start} is not used by the protocol")
    if 25 <= info <= 27:
        raise DecodeError(f"floating-point number at offset {start}: quantities must be exact")
    if info == 31:
        raise DecodeError(f"unexpected break code at offset {start}")
    if info >= 28:
        raise DecodeError(f"reserved additional information {info} at offset {start}")
    raise DecodeError(f"simple value at offset {start} is not used by the protocol")
