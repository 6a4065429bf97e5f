"""The published cose-wg/Examples EdDSA vector (eddsa-sig-01) verifies, and we reproduce its intermediates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from permitnet.protocol import (
    InvalidSignatureError,
    Sign1Message,
    decode_cbor,
    encode_cbor,
    public_key_from_seed,
    verify1,
)
from permitnet.protocol.cbor import Tag
from permitnet.protocol.cose import _sig_structure

VECTOR = json.loads(
    (Path(__file__).parent.parent / "vectors" / "cose-eddsa-sig-01.json").read_text(
        encoding="utf-8"
    )
)
KEY = VECTOR["input"]["sign0"]["key"]
MESSAGE = bytes.fromhex(VECTOR["output"]["cbor"])
PUBLIC_KEY = bytes.fromhex(KEY["x_hex"])
PLAINTEXT = VECTOR["input"]["plaintext"].encode()


def test_the_vector_key_is_rfc_8032_test_1() -> None:
    # RFC 8032 section 7.1 TEST 1: this secret key has this public key.
    assert public_key_from_seed(bytes.fromhex(KEY["d_hex"])) == PUBLIC_KEY


def test_eddsa_sig_01_verifies() -> None:
    assert verify1(MESSAGE, PUBLIC_KEY) == PLAINTEXT


def test_eddsa_sig_01_verifies_untagged() -> None:
    assert MESSAGE[0] == 0xD2  # tag 18
    assert verify1(MESSAGE[1:], PUBLIC_KEY) == PLAINTEXT


def test_eddsa_sig_01_headers() -> None:
    message = Sign1Message.from_bytes(MESSAGE)
    # The vector carries kid "11" in the unprotected header and ctyp 0 in the protected one.
    assert message.kid == KEY["kid"].encode() == b"11"
    assert not message.kid_is_protected
    assert message.content_type == 0
    assert dict(message.protected) == {1: -8, 3: 0}
    assert dict(message.unprotected) == {4: b"11"}


def test_our_sig_structure_is_the_published_to_be_signed() -> None:
    message = Sign1Message.from_bytes(MESSAGE)
    expected = bytes.fromhex(VECTOR["intermediates"]["ToBeSign_hex"])
    assert _sig_structure(message.protected_bytes, message.payload) == expected
    # The protected header is used exactly as received: bytes 3-7 of the message.
    assert message.protected_bytes == MESSAGE[3:8] == bytes.fromhex("A201270300")
    assert encode_cbor(["Signature1", message.protected_bytes, b"", PLAINTEXT]) == expected


def test_the_vector_is_deterministic_cbor() -> None:
    decoded = decode_cbor(MESSAGE)
    assert isinstance(decoded, Tag)
    assert encode_cbor(decoded) == MESSAGE


def test_the_vector_does_not_verify_with_another_key() -> None:
    with pytest.raises(InvalidSignatureError):
        verify1(MESSAGE, public_key_from_seed(bytes(32)))
