"""SignedDocument: signing, verifying in the right order, and refusing what is not authentic."""

from __future__ import annotations

import hashlib

import nacl.signing
import pytest

from permitnet.protocol import (
    DecodeError,
    DocumentError,
    InvalidSignatureError,
    SignatureError,
    SizeLimitError,
    decode_cbor,
    encode_cbor,
    key_id,
    public_key_from_seed,
    sign1,
)
from permitnet.protocol.cbor import Tag
from permitnet.protocol.doc_examples import (
    example_import_certificate,
    example_kid,
    example_seed,
)
from permitnet.protocol.documents import Item
from permitnet.protocol.signed import CONTENT_TYPE, SignedDocument, peek_kid

SEED = example_seed("DE")
PUBLIC = public_key_from_seed(SEED)
KID = example_kid("DE")


def test_sign_then_verify_returns_the_same_document() -> None:
    document = example_import_certificate()
    signed = SignedDocument.sign(document, signing_key=SEED, kid=KID)
    verified = SignedDocument.verify(signed.raw, PUBLIC)
    assert verified == signed
    assert verified.document == document
    assert verified.id == hashlib.sha256(signed.raw).digest()
    assert verified.id_hex == verified.id.hex()
    assert verified.kid == KID == key_id(PUBLIC)
    assert peek_kid(signed.raw) == KID


def test_signing_is_deterministic() -> None:
    document = example_import_certificate()
    first = SignedDocument.sign(document, signing_key=SEED, kid=KID)
    second = SignedDocument.sign(document, signing_key=SEED, kid=KID)
    assert first.raw == second.raw


def test_wrong_key_is_refused() -> None:
    signed = SignedDocument.sign(example_import_certificate(), signing_key=SEED, kid=KID)
    with pytest.raises(InvalidSignatureError):
        SignedDocument.verify(signed.raw, public_key_from_seed(example_seed("IN")))


def test_every_flipped_bit_in_the_signed_bytes_is_refused() -> None:
    raw = SignedDocument.sign(example_import_certificate(), signing_key=SEED, kid=KID).raw
    for index in range(0, len(raw), 7):
        damaged = bytearray(raw)
        damaged[index] ^= 0x01
        with pytest.raises((DecodeError, SignatureError)):
            SignedDocument.verify(bytes(damaged), PUBLIC)


def test_kid_of_another_key_is_refused_at_signing() -> None:
    with pytest.raises(SignatureError, match="kid"):
        SignedDocument.sign(example_import_certificate(), signing_key=SEED, kid=b"\x00" * 16)


def test_invalid_document_is_never_signed() -> None:
    bad = example_import_certificate(recipient="FR")  # exporting_country stays IN
    with pytest.raises(DocumentError, match="exporting_country"):
        SignedDocument.sign(bad, signing_key=SEED, kid=KID)


def _raw_sign(
    payload: bytes, *, content_type: str | None = CONTENT_TYPE, kid: bytes = KID
) -> bytes:
    return sign1(payload, SEED, kid, content_type=content_type)


def test_signature_is_checked_before_the_payload_is_read() -> None:
    # A payload that is not even CBOR, correctly signed by another key: the signature
    # failure must be what is reported, proving the payload was not parsed first.
    raw = sign1(b"\xff\xff", example_seed("IN"), KID, content_type=CONTENT_TYPE)
    with pytest.raises(InvalidSignatureError):
        SignedDocument.verify(raw, PUBLIC)


@pytest.mark.parametrize(
    ("raw", "error", "words"),
    [
        pytest.param(_raw_sign(b"\xff"), DecodeError, "", id="payload-not-cbor"),
        pytest.param(_raw_sign(encode_cbor([1])), DocumentError, "not a map", id="payload-array"),
        pytest.param(
            _raw_sign(encode_cbor({"type": "x"})),
            DocumentError,
            "not a document type",
            id="payload-unknown-type",
        ),
        pytest.param(
            _raw_sign(encode_cbor({"a": 1}) + b"\x00"),
            DecodeError,
            "trailing",
            id="payload-trailing-bytes",
        ),
        pytest.param(
            _raw_sign(example_import_certificate().to_cbor(), content_type=None),
            SignatureError,
            "content type",
            id="no-content-type",
        ),
        pytest.param(
            _raw_sign(example_import_certificate().to_cbor(), content_type="application/cbor"),
            SignatureError,
            "content type",
            id="other-content-type",
        ),
        pytest.param(
            _raw_sign(example_import_certificate().to_cbor(), kid=b"\x01" * 16),
            SignatureError,
            "kid",
            id="kid-not-of-key",
        ),
        pytest.param(b"\x00" * (64 * 1024 + 1), SizeLimitError, "exceeds", id="too-large"),
        pytest.param(b"", DecodeError, "empty", id="empty"),
    ],
)
def test_refused_signed_documents(raw: bytes, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as caught:
        SignedDocument.verify(raw, PUBLIC)
    assert words in str(caught.value)


def test_peek_kid_refuses_unprotected_kid() -> None:
    raw = sign1(b"\xa0", SEED, KID, content_type=CONTENT_TYPE)
    assert peek_kid(raw) == KID
    with pytest.raises(DecodeError):
        peek_kid(b"not cbor")


def _reassemble(raw: bytes, *, tagged: bool = True, unprotected: object = None) -> bytes:
    message = decode_cbor(raw)
    assert isinstance(message, Tag)
    protected, header, payload, signature = message.value
    items = [protected, header if unprotected is None else unprotected, payload, signature]
    return encode_cbor(Tag(18, items) if tagged else items)


@pytest.mark.parametrize(
    ("tagged", "unprotected", "words"),
    [
        pytest.param(False, None, "tagged", id="untagged"),
        pytest.param(True, {"note": "relayed"}, "empty unprotected", id="unprotected-text-label"),
        pytest.param(True, {5: b"\x00" * 16}, "empty unprotected", id="unprotected-iv"),
    ],
)
def test_no_variant_of_the_bytes_keeps_the_signature(
    tagged: bool, unprotected: object, words: str
) -> None:
    # Each variant still carries a valid signature over the same payload; accepting it would
    # give one signed document a second identifier.
    raw = SignedDocument.sign(example_import_certificate(), signing_key=SEED, kid=KID).raw
    variant = _reassemble(raw, tagged=tagged, unprotected=unprotected)
    assert variant != raw
    with pytest.raises(SignatureError, match=words):
        SignedDocument.verify(variant, PUBLIC)


def test_extra_protected_label_is_refused() -> None:
    payload = example_import_certificate().to_cbor()
    protected = encode_cbor({1: -8, 3: CONTENT_TYPE, 4: KID, 33: b"x"})
    to_sign = encode_cbor(["Signature1", protected, b"", payload])
    signature = nacl.signing.SigningKey(SEED).sign(to_sign).signature
    raw = encode_cbor(Tag(18, [protected, {}, payload, signature]))
    with pytest.raises(SignatureError, match="exactly alg"):
        SignedDocument.verify(raw, PUBLIC)


def test_oversized_document_is_not_signed() -> None:
    # Valid field by field, but 100 items with 200-character CJK preparations: larger
    # than receivers accept, so signing must refuse rather than send what will be refused.
    item = Item.create("morphine", 1_000, "\u4e2d" * 200)
    big = example_import_certificate(items=(item,) * 100)
    with pytest.raises(SizeLimitError, match="fewer items"):
        SignedDocument.sign(big, signing_key=SEED, kid=KID)
    fits = example_import_certificate(items=(item,) * 20)
    signed = SignedDocument.sign(fits, signing_key=SEED, kid=KID)
    assert SignedDocument.verify(signed.raw, PUBLIC).document == fits
