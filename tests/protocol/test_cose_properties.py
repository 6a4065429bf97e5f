"""Hypothesis properties of COSE_Sign1: roundtrip, any bit flip refused, Sig_structure encoding."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from permitnet.protocol import (
    InvalidSignatureError,
    ProtocolError,
    Sign1Message,
    encode_cbor,
    public_key_from_seed,
    sign1,
    verify1,
)
from permitnet.protocol.cbor import Tag
from permitnet.protocol.cose import COSE_SIGN1_TAG, Sign1Signer, _sig_structure

SEEDS = st.binary(min_size=32, max_size=32)
PAYLOADS = st.one_of(
    st.binary(max_size=300),
    # Lengths at the header boundaries of the Sig_structure byte strings.
    st.sampled_from([23, 24, 255, 256, 65535, 65536]).map(bytes),
)
KIDS = st.binary(max_size=40)
CONTENT_TYPES = st.one_of(st.none(), st.integers(0, 65535), st.text(max_size=30))


@given(PAYLOADS, SEEDS, KIDS, CONTENT_TYPES)
def test_sign_verify_roundtrip(
    payload: bytes, seed: bytes, kid: bytes, content_type: str | int | None
) -> None:
    signed = sign1(payload, seed, kid, content_type=content_type)
    assert verify1(signed, public_key_from_seed(seed)) == payload
    message = Sign1Message.from_bytes(signed)
    assert message.kid == kid
    assert message.kid_is_protected
    assert message.content_type == content_type
    assert message.raw == signed


@given(PAYLOADS, SEEDS, KIDS, CONTENT_TYPES)
def test_signed_message_is_the_deterministic_encoding(
    payload: bytes, seed: bytes, kid: bytes, content_type: str | int | None
) -> None:
    # The message is written directly, not through the generic encoder: it must equal it.
    signed = sign1(payload, seed, kid, content_type=content_type)
    message = Sign1Message.from_bytes(signed)
    parts = [message.protected_bytes, {}, payload, message.signature]
    assert signed == encode_cbor(Tag(COSE_SIGN1_TAG, parts))
    # A signer kept for many payloads gives the same bytes, payload after payload.
    signer = Sign1Signer(seed, kid, content_type=content_type)
    assert signer.sign(payload) == signed
    assert signer.sign(payload + b"!") == sign1(
        payload + b"!", seed, kid, content_type=content_type
    )


@given(st.binary(max_size=200), SEEDS, KIDS, st.data())
def test_any_single_bit_flip_is_refused(
    payload: bytes, seed: bytes, kid: bytes, data: st.DataObject
) -> None:
    signed = bytearray(sign1(payload, seed, kid))
    position = data.draw(st.integers(0, len(signed) - 1), label="byte")
    signed[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    try:
        verify1(bytes(signed), public_key_from_seed(seed))
    except ProtocolError:
        return
    raise AssertionError("a message with one bit flipped verified")


@given(st.binary(max_size=70000), PAYLOADS)
def test_sig_structure_is_the_deterministic_encoding(protected: bytes, payload: bytes) -> None:
    expected = encode_cbor(["Signature1", protected, b"", payload])
    assert _sig_structure(protected, payload) == expected


@given(st.binary(max_size=200), SEEDS, SEEDS)
def test_another_key_never_verifies(payload: bytes, seed: bytes, other: bytes) -> None:
    if public_key_from_seed(seed) == public_key_from_seed(other):
        return
    try:
        verify1(sign1(payload, seed, b"k"), public_key_from_seed(other))
    except ProtocolError:
        return
    raise AssertionError("a message verified with another key")


@given(st.binary(min_size=32, max_size=32))
def test_any_32_byte_public_key_is_refused_cleanly(public_key: bytes) -> None:
    # Keys off the curve, of small order or simply wrong: always InvalidSignatureError.
    signed = sign1(b"payload", bytes(32), b"k")
    if public_key == public_key_from_seed(bytes(32)):
        return
    try:
        verify1(signed, public_key)
    except InvalidSignatureError:
        return
    raise AssertionError("a message verified with a random key")
