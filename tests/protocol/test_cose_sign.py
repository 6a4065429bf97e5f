"""sign1 writes the one message permitnet expects, and refuses bad arguments with SignatureError."""

from __future__ import annotations

from typing import Any

import pytest

from permitnet.protocol import (
    SignatureError,
    decode_cbor,
    encode_cbor,
    key_id,
    public_key_from_seed,
    sign1,
    verify1,
)
from permitnet.protocol.cbor import Tag

SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
PUBLIC_KEY = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")


def test_public_key_from_seed_is_rfc_8032() -> None:
    assert public_key_from_seed(SEED) == PUBLIC_KEY


def test_key_id_is_the_first_16_bytes_of_sha256() -> None:
    assert (
        key_id(PUBLIC_KEY).hex()
        == "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9"[:32]
    )


def test_the_message_layout() -> None:
    kid = key_id(PUBLIC_KEY)
    signed = sign1(b"payload", SEED, kid, content_type="application/cbor")
    decoded = decode_cbor(signed)
    assert isinstance(decoded, Tag)
    assert decoded.tag == 18
    protected, unprotected, payload, signature = decoded.value
    assert decode_cbor(protected) == {1: -8, 3: "application/cbor", 4: kid}
    assert unprotected == {}
    assert payload == b"payload"
    assert len(signature) == 64
    assert encode_cbor(decoded) == signed


def test_signing_is_deterministic() -> None:
    # Ed25519 signatures are deterministic, and so is the encoding: one message per input.
    assert sign1(b"x", SEED, b"k") == sign1(b"x", SEED, b"k")
    assert verify1(sign1(b"x", SEED, b"k"), PUBLIC_KEY) == b"x"


@pytest.mark.parametrize(
    ("name", "arguments", "content_type", "message"),
    [
        ("seed of 31 bytes", (b"x", SEED[:31], b"k"), None, "32-byte seed"),
        ("seed of 64 bytes", (b"x", SEED + PUBLIC_KEY, b"k"), None, "32-byte seed"),
        ("seed as text", (b"x", SEED.hex(), b"k"), None, "32-byte seed"),
        ("seed as bytearray", (b"x", bytearray(SEED), b"k"), None, "32-byte seed"),
        ("payload as text", ("x", SEED, b"k"), None, "payload must be bytes"),
        ("payload as a dict", ({"a": 1}, SEED, b"k"), None, "payload must be bytes"),
        ("kid as text", (b"x", SEED, "k"), None, "kid must be bytes"),
        ("kid as None", (b"x", SEED, None), None, "kid must be bytes"),
        ("negative content format", (b"x", SEED, b"k"), -1, "outside 0-65535"),
        ("content format too large", (b"x", SEED, b"k"), 65536, "outside 0-65535"),
        ("content type as bytes", (b"x", SEED, b"k"), b"cbor", "text or a content-format"),
        ("content type as bool", (b"x", SEED, b"k"), True, "text or a content-format"),
    ],
)
def test_bad_arguments(
    name: str, arguments: tuple[object, object, object], content_type: object, message: str
) -> None:
    with pytest.raises(SignatureError) as caught:
        sign1(*arguments, content_type=content_type)  # type: ignore[arg-type]
    assert message in str(caught.value), name


def test_public_key_from_a_bad_seed() -> None:
    with pytest.raises(SignatureError, match="32-byte seed"):
        public_key_from_seed(b"short")
    with pytest.raises(SignatureError, match="32-byte seed"):
        public_key_from_seed(bytearray(32))  # type: ignore[arg-type]


@pytest.mark.parametrize("length", [0, 23, 24, 255, 256, 65535, 65536])
def test_sig_structure_at_length_boundaries(length: int) -> None:
    from permitnet.protocol.cose import _sig_structure

    data = bytes(length)
    assert _sig_structure(data, data) == encode_cbor(["Signature1", data, b"", data])


def test_parsed_headers_are_read_only() -> None:
    from permitnet.protocol import Sign1Message

    signed = sign1(b"x", SEED, b"k")
    message = Sign1Message.from_bytes(signed)
    with pytest.raises(TypeError):
        message.protected[1] = -7  # type: ignore[index]
    with pytest.raises(TypeError):
        message.unprotected[1] = -7  # type: ignore[index]
    # The protected header is cached by its bytes: a second parse sees the same values.
    assert dict(Sign1Message.from_bytes(signed).protected) == {1: -8, 4: b"k"}


def test_nested_protected_values_are_frozen() -> None:
    from permitnet.protocol import Sign1Message
    from permitnet.protocol.cose import _parse_protected

    header: Any = _parse_protected(encode_cbor({1: -8, 99: [1, {"a": 2}]}))
    assert header[99] == (1, {"a": 2})
    with pytest.raises(TypeError):
        header[99][1]["a"] = 3
    assert isinstance(Sign1Message, type)


def test_the_public_api_external_checks_call() -> None:
    import inspect

    from permitnet import protocol

    for name in ("encode_cbor", "decode_cbor", "sign1", "verify1", "ProtocolError"):
        assert name in protocol.__all__
    assert str(inspect.signature(protocol.sign1)) == (
        "(payload: 'bytes', signing_key: 'bytes', kid: 'bytes', *, "
        "content_type: 'str | int | None' = None) -> 'bytes'"
    )
    assert list(inspect.signature(protocol.verify1).parameters) == ["message", "public_key"]
    assert list(inspect.signature(protocol.encode_cbor).parameters) == ["value"]
    assert issubclass(protocol.SignatureError, protocol.ProtocolError)
    assert issubclass(protocol.DecodeError, protocol.ProtocolError)
