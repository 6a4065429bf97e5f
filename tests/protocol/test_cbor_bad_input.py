"""Every way a received CBOR item can be wrong, each named, each refused with a clear message."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from permitnet.protocol import DecodeError, ProtocolError, SizeLimitError, decode_cbor, encode_cbor


@dataclass(frozen=True, slots=True, kw_only=True)
class Bad:
    name: str
    data: bytes
    message: str
    error: type[ProtocolError] = DecodeError


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


BAD_INPUTS = [
    # Indefinite lengths, for every major type that has them, and the malformed ones that don't.
    Bad(name="indefinite byte string", data=h("5f 41 00 ff"), message="indefinite-length byte"),
    Bad(name="indefinite text string", data=h("7f 61 61 ff"), message="indefinite-length text"),
    Bad(name="indefinite array", data=h("9f 01 ff"), message="indefinite-length array"),
    Bad(name="indefinite map", data=h("bf 61 61 01 ff"), message="indefinite-length map"),
    Bad(name="info 31 on an unsigned integer", data=h("1f"), message="not well-formed"),
    Bad(name="info 31 on a negative integer", data=h("3f"), message="not well-formed"),
    Bad(name="info 31 on a tag", data=h("df 00"), message="not well-formed"),
    Bad(name="indefinite array nested", data=h("81 9f ff"), message="indefinite-length array"),
    # Non-shortest integers at each width, positive and negative.
    Bad(name="uint 0 in 1 extra byte", data=h("18 00"), message="non-shortest"),
    Bad(name="uint 23 in 1 extra byte", data=h("18 17"), message="non-shortest"),
    Bad(name="uint 255 in 2 extra bytes", data=h("19 00 ff"), message="non-shortest"),
    Bad(name="uint 65535 in 4 extra bytes", data=h("1a 00 00 ff ff"), message="non-shortest"),
    Bad(
        name="uint 2^32-1 in 8 extra bytes", data=h("1b 00000000 ffffffff"), message="non-shortest"
    ),
    Bad(name="uint 0 in 8 extra bytes", data=h("1b 0000000000000000"), message="non-shortest"),
    Bad(name="negint -24 in 1 extra byte", data=h("38 17"), message="non-shortest"),
    Bad(name="negint -256 in 2 extra bytes", data=h("39 00 ff"), message="non-shortest"),
    Bad(name="negint in 4 extra bytes", data=h("3a 00 00 ff ff"), message="non-shortest"),
    Bad(name="negint in 8 extra bytes", data=h("3b 00000000 ffffffff"), message="non-shortest"),
    # Non-shortest lengths and tag numbers.
    Bad(name="byte string length 1 in 1 extra byte", data=h("58 01 00"), message="non-shortest"),
    Bad(name="text length 1 in 2 extra bytes", data=h("79 0001 61"), message="non-shortest"),
    Bad(name="array length 1 in 1 extra byte", data=h("98 01 00"), message="non-shortest"),
    Bad(name="map length 1 in 4 extra bytes", data=h("ba 00000001 00 00"), message="non-shortest"),
    Bad(name="tag 18 in 1 extra byte", data=h("d8 12 80"), message="non-shortest"),
    # Maps.
    Bad(name="duplicate text key", data=h("a2 6161 01 6161 02"), message="duplicate map key 'a'"),
    Bad(name="duplicate int key", data=h("a2 01 01 01 02"), message="duplicate map key 1"),
    Bad(name="unsorted text keys", data=h("a2 6162 01 6161 02"), message="out of deterministic"),
    Bad(name="text key before int key", data=h("a2 6161 01 01 02"), message="out of deterministic"),
    Bad(name="negative before positive", data=h("a2 20 00 00 00"), message="out of deterministic"),
    Bad(name="longer text key first", data=h("a2 6261 61 01 6162 02"), message="out of determ"),
    # RFC 7049 "length-first" order differs from RFC 8949 bytewise order here: -1 (0x20) is
    # shorter than 24 (0x18 0x18) but sorts after it bytewise.
    Bad(name="length-first key order", data=h("a2 20 00 1818 00"), message="out of deterministic"),
    Bad(
        name="bytes key",
        data=h("a1 41 00 00"),
        message="must be an integer or text, not byte string",
    ),
    Bad(name="array key", data=h("a1 80 00"), message="must be an integer or text, not array"),
    Bad(name="map key", data=h("a1 a0 00"), message="must be an integer or text, not map"),
    Bad(name="false key", data=h("a1 f4 00"), message="must be an integer or text, not false"),
    Bad(name="true key", data=h("a1 f5 00"), message="must be an integer or text, not true"),
    Bad(name="null key", data=h("a1 f6 00"), message="must be an integer or text, not null"),
    Bad(name="tagged key", data=h("a1 d2 00 00"), message="must be an integer or text, not tag"),
    Bad(name="float key", data=h("a1 f9 3c00 00"), message="must be an integer or text"),
    # Trailing bytes, size and depth.
    Bad(name="trailing byte", data=h("00 00"), message="1 trailing bytes"),
    Bad(name="trailing break", data=h("80 ff"), message="trailing bytes"),
    Bad(name="two items", data=h("a0 a0"), message="trailing bytes"),
    Bad(name="empty input", data=b"", message="empty input"),
    Bad(name="17 nested arrays", data=h("81" * 17 + "00"), message="nesting", error=SizeLimitError),
    Bad(
        name="17 nested maps", data=h("a1 00" * 17 + "00"), message="nesting", error=SizeLimitError
    ),
    Bad(name="17 nested tags", data=h("d2" * 17 + "00"), message="nesting", error=SizeLimitError),
    Bad(
        name="oversize",
        data=b"\x5a\x00\x04\x00\x00" + bytes(256 * 1024),
        message="exceeds the lim",
        error=SizeLimitError,
    ),
    # Floating point, undefined and simple values.
    Bad(name="half float", data=h("f9 3c00"), message="floating-point"),
    Bad(name="single float", data=h("fa 47c35000"), message="floating-point"),
    Bad(name="double float", data=h("fb 3ff199999999999a"), message="floating-point"),
    Bad(name="float in a map", data=h("a1 61 71 f9 3c00"), message="floating-point"),
    Bad(name="undefined", data=h("f7"), message="'undefined'"),
    Bad(name="simple value 0", data=h("e0"), message="simple value"),
    Bad(name="simple value 16", data=h("f0"), message="simple value"),
    Bad(name="simple value 19", data=h("f3"), message="simple value"),
    Bad(name="simple value 24 (two bytes)", data=h("f8 18"), message="simple value"),
    Bad(name="simple value 255", data=h("f8 ff"), message="simple value"),
    Bad(name="two-byte false", data=h("f8 14"), message="simple value"),
    # Tags the protocol does not use.
    Bad(
        name="tag 0 date/time",
        data=h("c0 74 323031332d30332d32315432303a30343a30305a"),
        message="tag 0 ",
    ),
    Bad(name="tag 1 epoch time", data=h("c1 1a 514b67b0"), message="tag 1 "),
    Bad(name="tag 2 bignum", data=h("c2 49 010000000000000000"), message="tag 2 "),
    Bad(name="tag 3 negative bignum", data=h("c3 49 010000000000000000"), message="tag 3 "),
    Bad(name="tag 4 decimal fraction", data=h("c4 82 21 19 6ab3"), message="tag 4 "),
    Bad(name="tag 5 bigfloat 2**huge", data=h("c5 82 1b 7fffffffffffffff 01"), message="tag 5 "),
    Bad(name="tag 24 embedded CBOR", data=h("d8 18 41 00"), message="tag 24 "),
    Bad(name="tag 28 shareable", data=h("d8 1c 80"), message="tag 28 "),
    Bad(name="tag 29 shared reference", data=h("81 d8 1d 00"), message="tag 29 "),
    Bad(name="tag 35 regex", data=h("d8 23 63 28 61 29"), message="tag 35 "),
    Bad(name="tag 258 set", data=h("d9 0102 80"), message="tag 258 "),
    Bad(name="tag 55799 self-describe", data=h("d9 d9f7 00"), message="tag 55799 "),
    Bad(name="tag 98 COSE_Sign", data=h("d8 62 80"), message="tag 98 "),
    Bad(name="tag 1 inside a map", data=h("a1 00 c1 00"), message="tag 1 "),
    # Reserved additional information 28-30 in every major type.
    *(
        Bad(
            name=f"reserved info {info} in major {major}",
            data=bytes([major << 5 | info]),
            message=f"reserved additional information {info}",
        )
        for major in range(8)
        for info in (28, 29, 30)
    ),
    # Stray breaks.
    Bad(name="stray break", data=h("ff"), message="unexpected break"),
    Bad(name="break inside an array", data=h("82 01 ff"), message="unexpected break"),
    Bad(name="break as a map value", data=h("a1 00 ff"), message="unexpected break"),
    # Invalid UTF-8.
    Bad(name="lone continuation byte", data=h("61 80"), message="not valid UTF-8"),
    Bad(name="byte ff in text", data=h("61 ff"), message="not valid UTF-8"),
    Bad(name="truncated sequence", data=h("62 c3 28"), message="not valid UTF-8"),
    Bad(name="overlong slash", data=h("62 c0 af"), message="not valid UTF-8"),
    Bad(name="encoded surrogate", data=h("63 ed a0 80"), message="not valid UTF-8"),
    Bad(name="above U+10FFFF", data=h("64 f4 90 80 80"), message="not valid UTF-8"),
    Bad(name="invalid UTF-8 map key", data=h("a1 61 ff 00"), message="not valid UTF-8"),
    Bad(
        name="invalid UTF-8 long text",
        data=h("78 18" + "61" * 23 + "ff"),
        message="not valid UTF-8",
    ),
    # Lengths that promise more than there is (no allocation before the check).
    Bad(name="byte string of 2^64-1 bytes", data=h("5b ffffffffffffffff"), message="truncated"),
    Bad(name="text of 2^32 bytes", data=h("7b 0000000100000000"), message="truncated"),
    Bad(name="array of 2^32 items", data=h("9b 0000000100000000"), message="truncated"),
    Bad(name="map of 2^32 entries", data=h("bb 0000000100000000"), message="truncated"),
    Bad(name="array shorter than declared", data=h("83 01 02"), message="truncated"),
    Bad(name="map missing a value", data=h("a1 01"), message="truncated"),
    Bad(name="byte string in an array cut short", data=h("81 42 00"), message="truncated"),
    Bad(name="byte string in an array, long header cut", data=h("81 59 01"), message="truncated"),
    Bad(
        name="byte string in an array, non-shortest", data=h("81 58 01 00"), message="non-shortest"
    ),
    Bad(
        name="byte string in an array, 8-byte length",
        data=h("81 5b 0000000000000001 00"),
        message="non-shortest",
    ),
]


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=lambda bad: bad.name)
def test_bad_input_is_refused(bad: Bad) -> None:
    with pytest.raises(bad.error) as caught:
        decode_cbor(bad.data)
    assert bad.message in str(caught.value)


def test_bad_input_names_are_unique() -> None:
    names = [bad.name for bad in BAD_INPUTS]
    assert len(names) == len(set(names))


def test_max_size_and_depth_are_the_callers() -> None:
    assert decode_cbor(h("81" * 17 + "00"), max_depth=17) == [[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]
    with pytest.raises(SizeLimitError, match="nesting deeper than 1 levels"):
        decode_cbor(h("81 81 00"), max_depth=1)
    assert decode_cbor(h("82 41 00 41 01"), max_depth=1) == [b"\x00", b"\x01"]
    with pytest.raises(SizeLimitError, match="exceeds the limit of 4 bytes"):
        decode_cbor(h("44 00000000"), max_size=4)
    assert decode_cbor(h("43 000000"), max_size=4) == b"\x00\x00\x00"


def test_tags_are_the_callers() -> None:
    assert decode_cbor(h("d2 80")).tag == 18  # type: ignore[attr-defined]
    with pytest.raises(DecodeError, match="tag 18 at offset 0 is not used"):
        decode_cbor(h("d2 80"), allowed_tags=frozenset())
    assert decode_cbor(h("c1 00"), allowed_tags=frozenset({1})).value == 0  # type: ignore[attr-defined]


def test_input_that_is_not_bytes_is_refused() -> None:
    with pytest.raises(DecodeError, match="expected bytes, got str"):
        decode_cbor("a0")  # type: ignore[arg-type]
    assert decode_cbor(bytearray(b"\xa0")) == {}
    assert decode_cbor(memoryview(b"\x80")) == []


VALID = encode_cbor(
    {
        "items": [{"substance": "morphine", "quantity_mg": 25_000_000, "factor": "0.7518"}],
        "importer": {"name": "Pharma Import GmbH", "country": "DE", "licence": b"\x01" * 20},
        "issued_at": 1_795_000_000,
        "negative": -(2**63),
        "flags": [True, False, None],
        "long text": "x" * 300,
        1: -1,
    }
)


@pytest.mark.parametrize("length", range(len(VALID)))
def test_truncation_at_every_offset_is_refused(length: int) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_cbor(VALID[:length])
    assert ("truncated" in str(caught.value)) or length == 0


def test_the_truncation_source_is_valid() -> None:
    assert isinstance(decode_cbor(VALID), dict)


def test_depth_beyond_the_hard_limit_is_a_size_limit_error() -> None:
    # The compiled decoder recurses on the C stack: a caller's max_depth is capped.
    with pytest.raises(SizeLimitError, match="nesting deeper than 256 levels"):
        decode_cbor(b"\x81" * 100_000 + b"\x00", max_depth=10**6)
