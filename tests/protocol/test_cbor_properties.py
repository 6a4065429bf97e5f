"""Hypothesis properties of the deterministic encoder and the strict decoder."""

from __future__ import annotations

from collections.abc import Mapping

import cbor2
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from permitnet.protocol import ProtocolError, decode_cbor, encode_cbor
from permitnet.protocol.cbor import Tag

INT64 = st.integers(min_value=-(2**64), max_value=2**64 - 1)
KEYS = st.one_of(INT64, st.text(max_size=12))
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    INT64,
    st.binary(max_size=40),
    st.text(max_size=40),
)
VALUES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(KEYS, children, max_size=6),
        st.builds(lambda value: Tag(18, value), children),
    ),
    max_leaves=40,
)


def same(left: object, right: object) -> bool:
    """Equality that also requires equal types (``True == 1`` in Python, not in CBOR)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        assert isinstance(right, list)
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, dict):
        assert isinstance(right, dict)
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    if isinstance(left, Tag):
        assert isinstance(right, Tag)
        return left.tag == right.tag and same(left.value, right.value)
    return left == right


def thawed(value: object) -> object:
    """cbor2 returns tag contents immutable (tuples, frozendict): turn them into lists and dicts."""
    if isinstance(value, list | tuple):
        return [thawed(item) for item in value]
    if isinstance(value, Mapping):
        return {key: thawed(item) for key, item in value.items()}
    if isinstance(value, Tag):
        return Tag(value.tag, thawed(value.value))
    return value


@given(VALUES)
def test_decode_inverts_encode(value: object) -> None:
    assert same(decode_cbor(encode_cbor(value)), value)


@given(VALUES)
def test_encoding_is_a_fixed_point(value: object) -> None:
    encoded = encode_cbor(value)
    assert encode_cbor(decode_cbor(encoded)) == encoded


@given(VALUES)
def test_cbor2_reads_what_we_write(value: object) -> None:
    encoded = encode_cbor(value)
    assert same(thawed(cbor2.loads(encoded)), decode_cbor(encoded))


@given(st.dictionaries(KEYS, st.none(), min_size=2, max_size=12))
def test_map_keys_follow_their_encodings_bytewise(value: dict[object, None]) -> None:
    # An independent oracle: sort by each key's encoding as cbor2 writes it on its own.
    decoded = decode_cbor(encode_cbor(value))
    assert isinstance(decoded, dict)
    assert list(decoded) == sorted(value, key=cbor2.dumps)


def check_uniqueness(data: bytes) -> None:
    """The decoder either refuses with a ProtocolError or got the one encoding of its value."""
    try:
        value = decode_cbor(data)
    except ProtocolError:
        return
    assert encode_cbor(value) == data
    assert same(thawed(cbor2.loads(data)), value)


@settings(max_examples=1000)
@given(st.binary(max_size=64))
@example(b"\xa2\x20\x00\x18\x18\x00")  # length-first order
@example(b"\x5f\xff")
@example(b"\xd2\x84\x40\xa0\x40\x40")
def test_arbitrary_bytes_are_refused_or_the_unique_encoding(data: bytes) -> None:
    check_uniqueness(data)


MUTATIONS = st.sampled_from(["flip", "insert", "delete", "replace"])


@settings(max_examples=1000)
@given(VALUES, st.data())
def test_mutated_encodings_are_refused_or_the_unique_encoding(
    value: object, data: st.DataObject
) -> None:
    # Random bytes rarely get past the first item; mutating a valid encoding reaches the
    # checks deep inside maps, arrays and strings.
    encoded = bytearray(encode_cbor(value))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        position = data.draw(st.integers(min_value=0, max_value=len(encoded)))
        match data.draw(MUTATIONS):
            case "flip" if position < len(encoded):
                encoded[position] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
            case "replace" if position < len(encoded):
                encoded[position] = data.draw(st.integers(min_value=0, max_value=255))
            case "delete" if position < len(encoded):
                del encoded[position]
            case _:
                encoded.insert(position, data.draw(st.integers(min_value=0, max_value=255)))
    assume(encoded)
    check_uniqueness(bytes(encoded))
