"""Deterministic CBOR: RFC 8949 section 4.2.1 core deterministic encoding, decoded strictly.

Encoding sorts map keys by the bytewise lexicographic order of their encodings (RFC 8949),
not length-first as cbor2's ``canonical=True`` does (the older RFC 7049 rule). The two orders
differ when a key with a shorter encoding has a larger first byte: ``-1`` (``0x20``) sorts
after ``24`` (``0x18 0x18``) here, but before it length-first. cbor2 writes the primitives,
which it already does in shortest form with definite lengths.

Decoding is our own (docs/adr/0002), because cbor2 is lenient by design (it accepts
non-shortest forms and unsorted maps) and interprets many semantic tags (bigfloats, regular
expressions, shared references) that an attacker could use for a denial of service. The
decoder here accepts exactly one deterministic encoding of each value and nothing the
protocol does not use:

* unsigned and negative integers, byte strings, UTF-8 text strings, arrays, maps whose keys
  are integers or text, ``false``, ``true`` and ``null``;
* tag 18 (COSE_Sign1) only, unless the caller allows other tag numbers;
* no floating point (quantities are exact integers or decimal strings), no ``undefined``,
  no other simple values, no indefinite lengths.

The decoder is written for speed as well as strictness: every received document goes through
it, so the common leaves (short text, small integers) are decoded inline in the map and array
loops rather than by a recursive call (see docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Final

import cbor2

from permitnet.protocol.errors import DecodeError, EncodeError, SizeLimitError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_TAGS",
    "MAX_DEPTH_LIMIT",
    "Tag",
    "decode_cbor",
    "encode_cbor",
]

#: Largest input :func:`decode_cbor` accepts unless told otherwise (a signed document is ~1.5 KB).
DEFAULT_MAX_SIZE: Final = 256 * 1024
#: Deepest nesting of arrays, maps and tags :func:`decode_cbor` accepts unless told otherwise,
#: and the deepest :func:`encode_cbor` produces, so that whatever we write we also read back.
DEFAULT_MAX_DEPTH: Final = 16
#: The most nesting :func:`decode_cbor` ever accepts, whatever ``max_depth`` a caller passes.
MAX_DEPTH_LIMIT: Final = 256
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
_SIMPLE_NAMES: Final = {0xF4: "false", 0xF5: "true", 0xF6: "null"}
#: The smallest unsigned integer each of the initial bytes 0x18-0x1B may carry.
_SHORTEST: Final = {0x18: 24, 0x19: 1 << 8, 0x1A: 1 << 16, 0x1B: 1 << 32}

#: Decoded short text map keys by their encoding. Documents of one schema repeat the same
#: few dozen keys, so a lookup replaces decoding them; bounded, and filled only with keys
#: already decoded successfully, so what it returns is what decoding would have returned.
_TEXT_KEYS: Final[dict[bytes, str]] = {}
_TEXT_KEYS_MAX: Final = 4096

_Reader = Callable[[int, int], tuple[object, int]]


# Encoding ------------------------------------------------------------------------------------


def encode_cbor(value: object) -> bytes:
    """Encode ``value`` in RFC 8949 core deterministic encoding.

    Args:
        value: ``int``, ``bytes``, ``str``, ``bool``, ``None``, a sequence (list or tuple) or a
            mapping with ``int`` or ``str`` keys, nested at most :data:`DEFAULT_MAX_DEPTH`
            levels; or a :data:`Tag`. Subclasses of ``str`` and ``int`` (enums) are written as
            their plain values.

    Returns:
        The single deterministic encoding of ``value``.

    Raises:
        EncodeError: ``value`` holds a type the protocol does not use (a float, a set, a
            datetime, ...), an integer outside the 64-bit CBOR range, a map key that is
            neither an integer nor text, two keys with the same encoding, text that is not
            valid Unicode, or nesting deeper than :data:`DEFAULT_MAX_DEPTH`.
    """
    try:
        return cbor2.dumps(_prepare(value, 0))
    except EncodeError:
        raise
    except (cbor2.CBOREncodeError, TypeError, ValueError) as e:
        raise EncodeError(f"cannot encode value: {e}") from e


def _key_order(key: object) -> tuple[int, int, bytes]:
    """Return a sort key that orders map keys exactly as their encodings order bytewise.

    An unsigned integer's encoding grows with its value and a text string's header grows with
    its UTF-8 length, so comparing (major type, value or length, UTF-8 bytes) is comparing
    the encodings, without encoding each key.
    """
    if isinstance(key, str):
        raw = key.encode()
        return (3, len(raw), raw)
    if isinstance(key, int) and not isinstance(key, bool):
        _check_int(key)
        return (0, key, b"") if key >= 0 else (1, -1 - key, b"")
    raise EncodeError(f"map key {key!r} is neither an integer nor text")


def _check_int(value: int) -> None:
    if not _NEGINT_MIN <= value <= _UINT64_MAX:
        raise EncodeError(f"integer {value} is outside the 64-bit CBOR range")


def _prepare(value: object, depth: int) -> object:
    """Return a copy of ``value`` in plain types whose maps iterate in deterministic order."""
    cls = value.__class__
    if cls is str or cls is bytes or cls is bool or value is None:
        return value
    # Concrete isinstance checks first: they are fast, while the Mapping and Sequence ABC
    # checks below are several times slower and only needed for unusual containers.
    if isinstance(value, int):  # bool cannot be subclassed, so this is an integer or an enum
        _check_int(value)
        return value if cls is int else int(value)
    if isinstance(value, dict):
        return _prepare_map(value, depth)
    if isinstance(value, list | tuple):
        return _prepare_array(value, depth)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, float):
        raise EncodeError(f"floating-point number {value!r}: quantities must be exact integers")
    if isinstance(value, Tag):  # cbor2 itself keeps tag numbers within 0 to 2**64-1
        _check_depth(depth)
        return Tag(value.tag, _prepare(value.value, depth + 1))
    if isinstance(value, Mapping):
        return _prepare_map(value, depth)
    if isinstance(value, Sequence):
        return _prepare_array(value, depth)
    raise EncodeError(f"type {cls.__name__} is not used by the permitnet protocol")


def _check_depth(depth: int) -> None:
    if depth >= DEFAULT_MAX_DEPTH:
        raise EncodeError(f"value nested more than {DEFAULT_MAX_DEPTH} levels deep")


#: Values written as they are, without a call to _prepare (the common leaves).
_PLAIN: Final = frozenset({str, bytes, bool, type(None)})


def _prepare_map(value: Mapping[object, object], depth: int) -> dict[object, object]:
    _check_depth(depth)
    depth += 1
    entries: list[tuple[tuple[int, int, bytes], object, object]] = []
    append = entries.append
    for key, item in value.items():
        # Plain text keys and leaf values are handled here: a call for each would double
        # the cost of encoding a document.
        if key.__class__ is str:
            raw = key.encode()
            append(
                (
                    (3, len(raw), raw),
                    key,
                    item if item.__class__ in _PLAIN else _prepare(item, depth),
                )
            )
        else:
            append((_key_order(key), _prepare(key, depth), _prepare(item, depth)))
    entries.sort(key=itemgetter(0))
    for index in range(1, len(entries)):
        if entries[index][0] == entries[index - 1][0]:
            raise EncodeError(f"map key {entries[index][1]!r} appears twice")
    return {key: item for _, key, item in entries}


def _prepare_array(value: Sequence[object], depth: int) -> list[object]:
    _check_depth(depth)
    depth += 1
    return [item if item.__class__ in _PLAIN else _prepare(item, depth) for item in value]


# Decoding ------------------------------------------------------------------------------------


def decode_cbor(
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
    allowed_tags: frozenset[int] = DEFAULT_TAGS,
) -> object:
    """Decode one strict, deterministically encoded CBOR item that fills ``data`` exactly.

    Args:
        data: the received bytes (a bytearray or memoryview is copied first).
        max_size: the largest input accepted, in bytes.
        max_depth: how many levels of arrays, maps and tags may nest (0: none at all; 1: a
            top-level array or map of plain items, and so on); at most
            :data:`MAX_DEPTH_LIMIT`, whatever is asked.
        allowed_tags: the tag numbers accepted (by default only 18, COSE_Sign1).

    Returns:
        The value: ``int``, ``bytes``, ``str``, ``bool``, ``None``, ``list``, ``dict`` or
        :data:`Tag`.

    Raises:
        SizeLimitError: the input is larger or nested deeper than allowed.
        DecodeError: anything else that is not the one deterministic encoding of a value the
            protocol uses; the message says what was wrong and at which byte offset.
    """
    if not isinstance(data, bytes):
        if not isinstance(data, bytearray | memoryview):
            raise DecodeError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
    size = len(data)
    if size > max_size:
        raise SizeLimitError(f"input of {size} bytes exceeds the limit of {max_size} bytes")
    if not size:
        raise DecodeError("empty input: expected one CBOR item")
    # The compiled decoder recurses on the C stack, which Python's recursion limit does not
    # guard, so no caller may ask for more depth than this.
    item = _reader(data, min(max_depth, MAX_DEPTH_LIMIT), allowed_tags)
    try:
        value, end = item(0, 0)
    except IndexError as e:
        # The inline fast paths index data[pos] without a bound check of their own: running
        # off the end of the input is truncation.
        raise DecodeError(f"truncated input: the {size} bytes end inside an item") from e
    except RecursionError as e:  # pragma: no cover - MAX_DEPTH_LIMIT stays below Python's limit
        raise SizeLimitError("input nested too deeply for this interpreter") from e
    if end != size:
        raise DecodeError(f"{size - end} trailing bytes after the CBOR item at offset {end}")
    return value


def _argument(data: bytes, info: int, pos: int, start: int) -> tuple[int, int]:
    """Read the argument of an initial byte with ``info`` >= 24; refuse non-shortest forms."""
    if info > 27:
        if info == 31:
            major = data[start] >> 5
            if major in (0, 1, 6):
                raise DecodeError(
                    f"additional information 31 at offset {start} is not well-formed for a "
                    f"{_MAJOR_NAMES[major]}"
                )
            raise DecodeError(
                f"indefinite-length {_MAJOR_NAMES[major]} at offset {start}: "
                "only definite lengths are allowed"
            )
        raise DecodeError(f"reserved additional information {info} at offset {start}")
    width = 1 << (info - 24)
    end = pos + width
    if end > len(data):
        raise DecodeError(f"truncated input: the header at offset {start} needs {width} more bytes")
    arg = int.from_bytes(data[pos:end], "big")
    if arg < (24 if width == 1 else 1 << (4 * width)):
        raise DecodeError(
            f"non-shortest encoding at offset {start}: {arg} written in {width + 1} bytes"
        )
    return arg, end


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


def _truncated_text(data: bytes, start: int, pos: int) -> DecodeError:
    """The error for a short text string (header at ``start``, content at ``pos``) cut off."""
    declared = data[start] - 0x60 if data[start] < 0x78 else data[start + 1]
    return DecodeError(
        f"truncated input: the text string at offset {start} declares {declared} "
        f"bytes but {len(data) - pos} remain"
    )


def _reader(data: bytes, max_depth: int, allowed_tags: frozenset[int]) -> _Reader:  # noqa: C901, PLR0915 - the decoder is one closure
    """Return ``item(pos, depth) -> (value, end)`` decoding ``data``.

    A closure rather than a class: the hot loops then read ``data`` and the limits as cell
    variables instead of attributes, which is measurably faster in CPython.
    """
    size = len(data)

    def item(pos: int, depth: int) -> tuple[object, int]:
        start = pos
        initial = data[pos]
        major = initial >> 5
        if major == 7:
            return _simple(initial & 0x1F, start), pos + 1
        pos += 1
        arg = initial & 0x1F
        if arg >= 24:
            arg, pos = _argument(data, arg, pos, start)
        if major == 3:
            end = pos + arg
            if end > size:
                raise DecodeError(
                    f"truncated input: the text string at offset {start} declares {arg} bytes "
                    f"but {size - pos} remain"
                )
            try:
                return data[pos:end].decode(), end
            except UnicodeDecodeError as e:
                raise DecodeError(f"text string at offset {start} is not valid UTF-8") from e
        if major == 0:
            return arg, pos
        if major == 1:
            return -1 - arg, pos
        if major == 2:
            end = pos + arg
            if end > size:
                raise DecodeError(
                    f"truncated input: the byte string at offset {start} declares {arg} bytes "
                    f"but {size - pos} remain"
                )
            return data[pos:end], end
        if depth >= max_depth:
            raise SizeLimitError(f"nesting deeper than {max_depth} levels at offset {start}")
        if major == 5:
            return mapping(start, arg, pos, depth + 1)
        if major == 4:
            return array(start, arg, pos, depth + 1)
        if arg not in allowed_tags:
            raise DecodeError(f"tag {arg} at offset {start} is not used by the protocol")
        value, pos = item(pos, depth + 1)
        return Tag(arg, value), pos

    def array(start: int, count: int, pos: int, depth: int) -> tuple[object, int]:
        # Every item takes at least one byte: refuse a huge count before allocating for it.
        if count > size - pos:
            raise DecodeError(
                f"truncated input: the array at offset {start} declares {count} items "
                f"but only {size - pos} bytes remain"
            )
        items: list[object] = []
        append = items.append
        at = pos
        try:
            for _ in range(count):
                at = pos
                initial = data[pos]
                if 0x60 <= initial <= 0x77:  # text of 0-23 bytes
                    pos += initial - 0x5F
                    if pos > size:
                        raise _truncated_text(data, at, at + 1)
                    append(data[at + 1 : pos].decode())
                elif initial <= 0x17:  # unsigned integer 0-23
                    append(initial)
                    pos += 1
                elif 0x40 <= initial <= 0x5B:  # byte string (signatures, payloads, lists)
                    length = initial - 0x40
                    pos += 1
                    if length >= 24:
                        length, pos = _argument(data, length, pos, at)
                    if pos + length > size:
                        raise DecodeError(
                            f"truncated input: the byte string at offset {at} declares "
                            f"{length} bytes but {size - pos} remain"
                        )
                    append(data[pos : pos + length])
                    pos += length
                else:
                    value, pos = item(pos, depth)
                    append(value)
        except UnicodeDecodeError as e:
            raise DecodeError(f"text string at offset {at} is not valid UTF-8") from e
        return items, pos

    # The map loop is long on purpose: the common leaves are decoded inline (docs/performance.md).
    def mapping(  # noqa: C901, PLR0912, PLR0915
        start: int, count: int, pos: int, depth: int
    ) -> tuple[object, int]:
        if 2 * count > size - pos:
            raise DecodeError(
                f"truncated input: the map at offset {start} declares {count} entries "
                f"but only {size - pos} bytes remain"
            )
        result: dict[object, object] = {}
        previous = b""
        key: object
        at = pos
        try:
            for _ in range(count):
                # The key: short text and small integers inline, other integers and text by
                # a call, anything else refused before it is decoded.
                at = pos
                initial = data[pos]
                if 0x60 <= initial <= 0x77:
                    pos += initial - 0x5F
                    encoded = data[at:pos]
                    # A cut-off key is shorter than its header says, so it never matches.
                    key = _TEXT_KEYS.get(encoded)
                    if key is None:
                        if pos > size:
                            raise _truncated_text(data, at, at + 1)
                        key = encoded[1:].decode()
                        if len(_TEXT_KEYS) < _TEXT_KEYS_MAX:
                            _TEXT_KEYS[encoded] = key
                elif initial <= 0x17:
                    pos += 1
                    key = initial
                    encoded = data[at:pos]
                elif (initial >> 5) in (0, 1, 3):
                    key, pos = item(pos, depth)
                    encoded = data[at:pos]
                else:
                    kind = _SIMPLE_NAMES.get(initial) or _MAJOR_NAMES[initial >> 5]
                    raise DecodeError(
                        f"map key at offset {at} must be an integer or text, not {kind}"
                    )
                # Deterministic order: each key's encoding sorts strictly after the previous.
                if encoded <= previous:
                    if encoded == previous:
                        raise DecodeError(f"duplicate map key {key!r} at offset {at}")
                    raise DecodeError(
                        f"map key {key!r} at offset {at} is out of deterministic order "
                        "(keys must be sorted by their encoded bytes)"
                    )
                previous = encoded
                # The value: text up to 255 bytes and unsigned integers inline (names,
                # addresses, quantities, times), anything else by a call.
                at = pos
                initial = data[pos]
                if 0x60 <= initial <= 0x77:
                    pos += initial - 0x5F
                    if pos > size:
                        raise _truncated_text(data, at, at + 1)
                    result[key] = data[at + 1 : pos].decode()
                elif initial <= 0x17:
                    result[key] = initial
                    pos += 1
                elif initial == 0x78 and data[pos + 1] >= 24:
                    pos += 2 + data[pos + 1]
                    if pos > size:
                        raise _truncated_text(data, at, at + 2)
                    result[key] = data[at + 2 : pos].decode()
                elif 0x18 <= initial <= 0x1B:
                    pos += 1 + (1 << (initial - 0x18))
                    value = int.from_bytes(data[at + 1 : pos], "big")
                    if pos > size or value < _SHORTEST[initial]:
                        # Let the general path name the truncation or non-shortest form.
                        result[key], pos = item(at, depth)
                    else:
                        result[key] = value
                else:
                    result[key], pos = item(pos, depth)
        except UnicodeDecodeError as e:
            raise DecodeError(f"text string at offset {at} is not valid UTF-8") from e
        return result, pos

    return item
