"""Every way a COSE_Sign1 message can be wrong, each named and refused for that reason.

Each bad message is built so that its named defect is its only one: headers that are refused
are still correctly signed, so a refusal proves the header rule, not the signature check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import nacl.signing
import pytest

from permitnet.protocol import (
    DecodeError,
    InvalidSignatureError,
    ProtocolError,
    Sign1Message,
    SignatureError,
    encode_cbor,
    key_id,
    public_key_from_seed,
    sign1,
    verify1,
)
from permitnet.protocol.cbor import Tag
from permitnet.protocol.cose import _sig_structure

if TYPE_CHECKING:
    from collections.abc import Callable

SEED = bytes(range(32))
PUBLIC_KEY = public_key_from_seed(SEED)
OTHER_KEY = public_key_from_seed(bytes(range(1, 33)))
KID = key_id(PUBLIC_KEY)
PAYLOAD = encode_cbor({"certificate": "DE-IC-2026-004711", "quantity_mg": 25_000_000})
GOOD = sign1(PAYLOAD, SEED, KID)
#: The order of the Ed25519 group: S + L is the classic malleated signature.
L = 2**252 + 27742317777372353535851937790883648493


def bstr(data: bytes) -> bytes:
    """A byte string item: header and content."""
    return encode_cbor(data)


def signature(protected: bytes, payload: bytes = PAYLOAD) -> bytes:
    return nacl.signing.SigningKey(SEED).sign(_sig_structure(protected, payload)).signature


def message(
    protected: bytes | object,
    unprotected: object | None = None,
    payload: object = PAYLOAD,
    *,
    raw_unprotected: bytes | None = None,
    sig: bytes | None = None,
    tag: bytes = b"\xd2",
) -> bytes:
    """A COSE_Sign1 message signed over ``protected`` (bytes, or a header map to encode)."""
    protected_bytes = protected if isinstance(protected, bytes) else encode_cbor(protected)
    if sig is None:
        sig = signature(protected_bytes, payload if isinstance(payload, bytes) else b"")
    unprotected_bytes = (
        raw_unprotected if raw_unprotected is not None else encode_cbor(unprotected or {})
    )
    return b"".join(
        (tag, b"\x84", bstr(protected_bytes), unprotected_bytes, encode_cbor(payload), bstr(sig))
    )


def malleated() -> bytes:
    good = Sign1Message.from_bytes(GOOD)
    s = int.from_bytes(good.signature[32:], "little")
    forged = good.signature[:32] + (s + L).to_bytes(32, "little")
    return message(good.protected_bytes, sig=forged)


def flipped_payload() -> bytes:
    good = Sign1Message.from_bytes(GOOD)
    tampered = bytearray(good.payload)
    tampered[-1] ^= 0x01
    return message(good.protected_bytes, payload=bytes(tampered), sig=good.signature)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bad:
    name: str
    data: Callable[[], object]
    error: type[ProtocolError]
    message: str
    key: object = PUBLIC_KEY


EDDSA = {1: -8, 4: KID}

BAD_MESSAGES = [
    # The signature.
    Bad(
        name="tampered payload",
        data=flipped_payload,
        error=InvalidSignatureError,
        message="does not verify",
    ),
    Bad(
        name="wrong key",
        data=lambda: GOOD,
        key=OTHER_KEY,
        error=InvalidSignatureError,
        message="does not verify",
    ),
    Bad(
        name="malleated signature S + L",
        data=malleated,
        error=InvalidSignatureError,
        message="does not verify",
    ),
    Bad(
        name="zero signature",
        data=lambda: message(EDDSA, sig=bytes(64)),
        error=InvalidSignatureError,
        message="does not verify",
    ),
    Bad(
        name="signature of another protected header",
        data=lambda: message(EDDSA, sig=signature(encode_cbor({1: -8}))),
        error=InvalidSignatureError,
        message="does not verify",
    ),
    Bad(
        name="small-order public key",
        data=lambda: GOOD,
        key=bytes(32),
        error=InvalidSignatureError,
        message="does not verify",
    ),
    Bad(
        name="public key of 31 bytes",
        data=lambda: GOOD,
        key=PUBLIC_KEY[:31],
        error=SignatureError,
        message="public key is 32 bytes",
    ),
    Bad(
        name="public key of 33 bytes",
        data=lambda: GOOD,
        key=PUBLIC_KEY + b"\x00",
        error=SignatureError,
        message="public key is 32 bytes",
    ),
    Bad(
        name="public key as text",
        data=lambda: GOOD,
        key=PUBLIC_KEY.hex(),
        error=SignatureError,
        message="public key is 32 bytes",
    ),
    Bad(
        name="wrong signature length 63",
        data=lambda: message(EDDSA, sig=bytes(63)),
        error=SignatureError,
        message="64-byte",
    ),
    Bad(
        name="wrong signature length 65",
        data=lambda: message(EDDSA, sig=bytes(65)),
        error=SignatureError,
        message="64-byte",
    ),
    Bad(
        name="signature as text",
        data=lambda: GOOD[:-66] + encode_cbor("x" * 64),
        error=SignatureError,
        message="64-byte",
    ),
    # The envelope.
    Bad(
        name="wrong tag 98 (COSE_Sign)",
        data=lambda: message(EDDSA, tag=b"\xd8\x62"),
        error=DecodeError,
        message="tag 98",
    ),
    Bad(
        name="wrong tag 17 (COSE_Mac0)",
        data=lambda: message(EDDSA, tag=b"\xd1"),
        error=DecodeError,
        message="tag 17",
    ),
    Bad(
        name="tag 18 twice",
        data=lambda: b"\xd2" + GOOD,
        error=SignatureError,
        message="array of four items",
    ),
    Bad(
        name="tag 18 in 1 extra byte",
        data=lambda: b"\xd8\x12" + GOOD[1:],
        error=DecodeError,
        message="non-shortest",
    ),
    Bad(name="truncated", data=lambda: GOOD[:-1], error=DecodeError, message="truncated"),
    Bad(
        name="truncated to the header",
        data=lambda: GOOD[:2],
        error=DecodeError,
        message="truncated",
    ),
    Bad(name="empty", data=lambda: b"", error=DecodeError, message="empty input"),
    Bad(
        name="text instead of bytes",
        data=GOOD.hex,
        error=DecodeError,
        message="expected bytes",
    ),
    Bad(
        name="trailing bytes",
        data=lambda: GOOD + b"\x00",
        error=DecodeError,
        message="trailing bytes",
    ),
    Bad(
        name="wrong array length 3",
        data=lambda: encode_cbor(Tag(18, [encode_cbor(EDDSA), {}, PAYLOAD])),
        error=SignatureError,
        message="array of four items",
    ),
    Bad(
        name="wrong array length 5",
        data=lambda: encode_cbor(Tag(18, [encode_cbor(EDDSA), {}, PAYLOAD, bytes(64), b""])),
        error=SignatureError,
        message="array of four items",
    ),
    Bad(
        name="a map, not an array",
        data=lambda: encode_cbor(Tag(18, {1: 2})),
        error=SignatureError,
        message="array of four items",
    ),
    Bad(
        name="indefinite-length array",
        data=lambda: b"\xd2\x9f" + message(EDDSA)[2:] + b"\xff",
        error=DecodeError,
        message="indefinite-length array",
    ),
    Bad(
        name="detached payload",
        data=lambda: message(EDDSA, payload=None),
        error=SignatureError,
        message="detached payloads",
    ),
    Bad(
        name="payload as text",
        data=lambda: message(EDDSA, payload="text"),
        error=SignatureError,
        message="payload must be a byte string",
    ),
    Bad(
        name="protected header as a map",
        data=lambda: encode_cbor(Tag(18, [EDDSA, {}, PAYLOAD, bytes(64)])),
        error=SignatureError,
        message="protected header must be a byte string",
    ),
    Bad(
        name="unprotected header as bytes",
        data=lambda: message(EDDSA, raw_unprotected=b"\x40"),
        error=SignatureError,
        message="unprotected header must be a map",
    ),
    # The protected header.
    Bad(
        name="empty protected",
        data=lambda: message(b""),
        error=SignatureError,
        message="protected header is empty",
    ),
    Bad(
        name="protected = empty map",
        data=lambda: message(b"\xa0"),
        error=SignatureError,
        message="is an empty map",
    ),
    Bad(
        name="protected encodes an array",
        data=lambda: message(encode_cbor([1, -8])),
        error=SignatureError,
        message="must encode a map",
    ),
    Bad(
        name="protected has trailing bytes",
        data=lambda: message(encode_cbor(EDDSA) + b"\x00"),
        error=SignatureError,
        message="trailing bytes",
    ),
    Bad(
        name="alg only unprotected",
        data=lambda: message({4: KID}, {1: -8}),
        error=SignatureError,
        message="alg is in the unprotected header",
    ),
    Bad(
        name="no alg at all",
        data=lambda: message({4: KID}),
        error=SignatureError,
        message="has no alg",
    ),
    Bad(
        name="wrong alg -7 (ES256)",
        data=lambda: message({1: -7, 4: KID}),
        error=SignatureError,
        message="algorithm -7 is refused",
    ),
    Bad(
        name="wrong alg as text",
        data=lambda: message({1: "EdDSA", 4: KID}),
        error=SignatureError,
        message="algorithm 'EdDSA' is refused",
    ),
    Bad(
        name="wrong alg -35 (ES384)",
        data=lambda: message({1: -35, 4: KID}),
        error=SignatureError,
        message="algorithm -35 is refused",
    ),
    Bad(
        name="alg true",
        data=lambda: message({1: True, 4: KID}),
        error=SignatureError,
        message="algorithm True is refused",
    ),
    Bad(
        name="duplicate label in protected",
        data=lambda: message(bytes.fromhex("a3 01 27 01 27 04 41 00".replace(" ", ""))),
        error=SignatureError,
        message="duplicate map key 1",
    ),
    Bad(
        name="duplicate label in unprotected",
        data=lambda: message(
            EDDSA, raw_unprotected=bytes.fromhex("a2 05 40 05 40".replace(" ", ""))
        ),
        error=DecodeError,
        message="duplicate map key 5",
    ),
    Bad(
        name="label in both buckets",
        data=lambda: message(EDDSA, {4: KID}),
        error=SignatureError,
        message="appear in both buckets",
    ),
    Bad(
        name="alg in both buckets",
        data=lambda: message(EDDSA, {1: -8}),
        error=SignatureError,
        message="appear in both buckets",
    ),
    Bad(
        name="unknown crit",
        data=lambda: message({1: -8, 2: [99], 4: KID, 99: 1}),
        error=SignatureError,
        message="[99] are not understood",
    ),
    Bad(
        name="unknown text crit",
        data=lambda: message({1: -8, 2: ["x"], 4: KID, "x": 1}),
        error=SignatureError,
        message="['x'] are not understood",
    ),
    Bad(
        name="crit of a standard label",
        data=lambda: message({1: -8, 2: [4], 4: KID}),
        error=SignatureError,
        message="[4] are not understood",
    ),
    Bad(
        name="crit empty",
        data=lambda: message({1: -8, 2: [], 4: KID}),
        error=SignatureError,
        message="non-empty array",
    ),
    Bad(
        name="crit not an array",
        data=lambda: message({1: -8, 2: 4, 4: KID}),
        error=SignatureError,
        message="non-empty array",
    ),
    Bad(
        name="crit unprotected",
        data=lambda: message(EDDSA, {2: [5]}),
        error=SignatureError,
        message="crit is in the unprotected header",
    ),
    Bad(
        name="kid not bytes (protected)",
        data=lambda: message({1: -8, 4: "kid"}),
        error=SignatureError,
        message="kid must be a byte string",
    ),
    Bad(
        name="kid not bytes (unprotected)",
        data=lambda: message({1: -8}, {4: 11}),
        error=SignatureError,
        message="kid must be a byte string",
    ),
    Bad(
        name="content type negative",
        data=lambda: message({1: -8, 3: -1}),
        error=SignatureError,
        message="outside 0-65535",
    ),
    Bad(
        name="content type too large",
        data=lambda: message({1: -8, 3: 65536}),
        error=SignatureError,
        message="outside 0-65535",
    ),
    Bad(
        name="content type as bytes",
        data=lambda: message({1: -8, 3: b"x"}),
        error=SignatureError,
        message="content type must be text",
    ),
    Bad(
        name="non-deterministic protected header (unsorted)",
        data=lambda: message(bytes.fromhex("a2 04 41 00 01 27".replace(" ", ""))),
        error=SignatureError,
        message="out of deterministic order",
    ),
    Bad(
        name="non-deterministic protected header (long alg)",
        data=lambda: message(bytes.fromhex("a1 01 38 07".replace(" ", ""))),
        error=SignatureError,
        message="non-shortest",
    ),
    Bad(
        name="non-deterministic protected header (indefinite)",
        data=lambda: message(bytes.fromhex("bf 01 27 ff".replace(" ", ""))),
        error=SignatureError,
        message="indefinite-length map",
    ),
    Bad(
        name="tag in the protected header",
        data=lambda: message(bytes.fromhex("a2 01 27 04 d2 40".replace(" ", ""))),
        error=SignatureError,
        message="tag 18",
    ),
    Bad(
        name="tag in the unprotected header",
        data=lambda: message(EDDSA, {5: Tag(18, b"")}),
        error=SignatureError,
        message="holds a CBOR tag",
    ),
    Bad(
        name="float in the unprotected header",
        data=lambda: message(
            EDDSA, raw_unprotected=bytes.fromhex("a1 05 f9 3c 00".replace(" ", ""))
        ),
        error=DecodeError,
        message="floating-point",
    ),
]


@pytest.mark.parametrize("bad", BAD_MESSAGES, ids=lambda bad: bad.name)
def test_bad_message_is_refused(bad: Bad) -> None:
    with pytest.raises(bad.error) as caught:
        verify1(bad.data(), bad.key)  # type: ignore[arg-type] # wrong types are cases here
    assert bad.message in str(caught.value)


def test_bad_message_names_are_unique() -> None:
    names = [bad.name for bad in BAD_MESSAGES]
    assert len(names) == len(set(names))


def test_the_builder_makes_good_messages() -> None:
    # Without this, a broken builder could make every case above fail for the wrong reason.
    assert message(EDDSA) == GOOD
    assert verify1(message(EDDSA, {5: b"iv"}), PUBLIC_KEY) == PAYLOAD
    assert verify1(message(EDDSA, tag=b""), PUBLIC_KEY) == PAYLOAD


def test_every_single_bit_flip_is_refused() -> None:
    for position in range(len(GOOD)):
        for bit in range(8):
            flipped = bytearray(GOOD)
            flipped[position] ^= 1 << bit
            with pytest.raises(ProtocolError):
                verify1(bytes(flipped), PUBLIC_KEY)
