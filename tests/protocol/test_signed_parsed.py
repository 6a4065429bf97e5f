"""``parse_document`` + ``SignedDocument.verify_parsed``: the parse-once verification path."""

from __future__ import annotations

import pytest

from permitnet.protocol import (
    InvalidSignatureError,
    Sign1Message,
    SignatureError,
    encode_cbor,
    public_key_from_seed,
    sign1,
)
from permitnet.protocol.doc_examples import example_import_certificate, example_kid, example_seed
from permitnet.protocol.signed import CONTENT_TYPE, SignedDocument, parse_document

SEED = example_seed("DE")
PUBLIC = public_key_from_seed(SEED)
KID = example_kid("DE")


def test_verify_parsed_equals_verify() -> None:
    signed = SignedDocument.sign(example_import_certificate(), signing_key=SEED, kid=KID)
    message = parse_document(signed.raw)
    assert message.kid == KID
    assert SignedDocument.verify_parsed(message, PUBLIC) == SignedDocument.verify(
        signed.raw, PUBLIC
    )


def test_verify_parsed_checks_the_signature() -> None:
    signed = SignedDocument.sign(example_import_certificate(), signing_key=SEED, kid=KID)
    with pytest.raises(InvalidSignatureError):
        SignedDocument.verify_parsed(
            parse_document(signed.raw), public_key_from_seed(example_seed("IN"))
        )


@pytest.mark.parametrize(
    ("content_type", "kid", "words"),
    [
        pytest.param("application/cbor", KID, "content type", id="other-content-type"),
        pytest.param(None, KID, "content type", id="no-content-type"),
    ],
)
def test_verify_parsed_refuses_a_message_that_is_not_a_document(
    content_type: str | None, kid: bytes, words: str
) -> None:
    # A message parsed by the generic COSE parser, not parse_document: the document checks
    # still run in verify_parsed.
    raw = sign1(example_import_certificate().to_cbor(), SEED, kid, content_type=content_type)
    with pytest.raises(SignatureError, match=words):
        SignedDocument.verify_parsed(Sign1Message.from_bytes(raw), PUBLIC)


def test_verify_parsed_refuses_an_untagged_message() -> None:
    raw = sign1(encode_cbor({"a": 1}), SEED, KID, content_type=CONTENT_TYPE)
    untagged = Sign1Message.from_bytes(raw[1:])
    with pytest.raises(SignatureError, match="tag 18"):
        SignedDocument.verify_parsed(untagged, PUBLIC)
