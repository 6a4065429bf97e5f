"""The encoder writes RFC 8949 core deterministic encoding and refuses what the protocol does not use."""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType

import cbor2
import pytest

from permitnet.protocol import EncodeError, decode_cbor, encode_cbor
from permitnet.protocol.cbor import DEFAULT_MAX_DEPTH, Tag


class Unit(enum.StrEnum):
    MILLIGRAM = "mg"


class Label(enum.IntEnum):
    ALG = 1


def test_keys_sort_bytewise_not_length_first() -> None:
    # -1 encodes as 0x20 (one byte), 24 as 0x18 0x18 (two bytes): RFC 8949 bytewise order puts
    # 24 first, the RFC 7049 length-first order (cbor2's canonical=True) puts -1 first.
    value = {-1: 0, 24: 0}
    assert encode_cbor(value).hex() == "a2181800" + "2000"
    assert cbor2.dumps(value, canonical=True).hex() == "a2" + "2000" + "181800"


def test_keys_sort_bytewise_with_text_and_int() -> None:
    # "" (0x60) is shorter than 256 (0x19 0x01 0x00) yet sorts after it bytewise.
    assert encode_cbor({"": 1, 256: 2}).hex() == "a2" + "19010002" + "6001"
    assert (
        encode_cbor({"b": 1, "aa": 2, 10: 3, -5: 4}).hex()
        == "a4" + "0a03" + "2404" + "616201" + "62616102"
    )


def test_keys_sort_by_utf8_not_code_units() -> None:
    # U+00E9 is two UTF-8 bytes, so "é" sorts with the two-byte keys, after "z".
    # Counting characters instead would put "é" (one character) before "ab".
    decoded = decode_cbor(encode_cbor({"é": 1, "z": 2, "ab": 3}))
    assert isinstance(decoded, dict)
    assert list(decoded) == ["z", "ab", "é"]


@pytest.mark.parametrize(
    ("value", "hex_"),
    [
        (0, "00"),
        (23, "17"),
        (24, "1818"),
        (255, "18ff"),
        (256, "190100"),
        (65535, "19ffff"),
        (65536, "1a00010000"),
        (2**32 - 1, "1affffffff"),
        (2**32, "1b0000000100000000"),
        (2**64 - 1, "1bffffffffffffffff"),
        (-1, "20"),
        (-24, "37"),
        (-25, "3818"),
        (-(2**64), "3bffffffffffffffff"),
        (b"\x00" * 24, "5818" + "00" * 24),
        ("a" * 23, "77" + "61" * 23),
        (list(range(24)), "9818" + "".join(f"{i:02x}" if i < 24 else "" for i in range(24))),
    ],
)
def test_shortest_form_at_every_boundary(value: object, hex_: str) -> None:
    assert encode_cbor(value).hex() == hex_


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("float", 1.5, "floating-point"),
        ("float in a list", [1, 0.5], "floating-point"),
        ("nan", float("nan"), "floating-point"),
        ("decimal", Decimal("0.7518"), "Decimal"),
        ("fraction", Fraction(1, 3), "Fraction"),
        ("set", {1, 2}, "set"),
        ("datetime", datetime(2026, 1, 1, tzinfo=UTC), "datetime"),
        ("2^64", 2**64, "outside the 64-bit CBOR range"),
        ("-2^64-1", -(2**64) - 1, "outside the 64-bit CBOR range"),
        ("big map key", {2**64: 1}, "outside the 64-bit CBOR range"),
        ("bytes key", {b"k": 1}, "neither an integer nor text"),
        ("bool key", {True: 1}, "neither an integer nor text"),
        ("none key", {None: 1}, "neither an integer nor text"),
        ("tuple key", {(1, 2): 1}, "neither an integer nor text"),
        ("float key", {1.0: 1}, "neither an integer nor text"),
        ("lone surrogate", "\ud800", "cannot encode"),
        ("lone surrogate key", {"\ud800": 1}, "cannot encode"),
        ("too deep", [[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]], f"more than {DEFAULT_MAX_DEPTH} levels"),
        ("object", object(), "type object is not used"),
    ],
)
def test_refused_values(name: str, value: object, message: str) -> None:
    with pytest.raises(EncodeError) as caught:
        encode_cbor(value)
    assert message in str(caught.value), name


def test_deepest_value_encoded_is_decoded() -> None:
    value: object = 0
    for _ in range(DEFAULT_MAX_DEPTH):
        value = [value]
    assert decode_cbor(encode_cbor(value)) == value


def test_other_containers_are_written_as_plain_ones() -> None:
    assert encode_cbor((1, 2)) == encode_cbor([1, 2])
    assert encode_cbor(bytearray(b"ab")) == encode_cbor(b"ab") == b"\x42ab"
    assert encode_cbor(memoryview(b"ab")) == b"\x42ab"
    assert encode_cbor(MappingProxyType({"b": 1, "a": 2})) == encode_cbor({"a": 2, "b": 1})
    assert encode_cbor(OrderedDict([("b", 1), ("a", 2)])) == bytes.fromhex("a2616102616201")
    assert encode_cbor(Unit.MILLIGRAM) == encode_cbor("mg")
    assert encode_cbor({Label.ALG: Unit.MILLIGRAM}) == encode_cbor({1: "mg"})
    assert encode_cbor(Tag(18, [b"", {}, b"", b""])).hex() == "d28440a04040"


def test_insertion_order_does_not_matter() -> None:
    assert encode_cbor({"b": 1, "a": {"d": 1, "c": 2}}) == encode_cbor(
        {"a": {"c": 2, "d": 1}, "b": 1}
    )


class _TwiceA(Mapping[str, int]):
    """A mapping that (wrongly) lists one key twice: only possible outside dict."""

    def __getitem__(self, key: str) -> int:
        return 1

    def __iter__(self) -> Iterator[str]:
        return iter(["a", "a"])

    def __len__(self) -> int:
        return 2


def test_a_key_listed_twice_is_refused() -> None:
    with pytest.raises(EncodeError, match="map key 'a' appears twice"):
        encode_cbor(_TwiceA())
