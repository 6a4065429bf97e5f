"""The QR text encoding: "PN1:" + base45(zlib(signed bytes)), decoded strictly."""

from __future__ import annotations

import hashlib
import zlib

import base45
import pytest
from hypothesis import given
from hypothesis import strategies as st

from permitnet.protocol import public_key_from_seed, sign1, verify1
from permitnet.protocol.errors import DecodeError, EncodeError, ProtocolError, SizeLimitError
from permitnet.protocol.qr import (
    MAX_QR_TEXT_LENGTH,
    MAX_SIGNED_SIZE,
    QR_PREFIX,
    decode_qr_text,
    encode_qr_text,
)

SEED = bytes(range(32))
SIGNED = sign1(b"\xa1\x64type\x72import_certificate" * 20, SEED, b"k" * 16)
INCOMPRESSIBLE = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(100))
QR_ALPHANUMERIC = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")


def _text(payload: bytes) -> str:
    encoded: bytes = base45.b45encode(payload)
    return QR_PREFIX + encoded.decode()


def test_round_trip_of_a_signed_document() -> None:
    text = encode_qr_text(SIGNED)
    assert text.startswith("PN1:")
    assert set(text) <= QR_ALPHANUMERIC
    assert decode_qr_text(text) == SIGNED
    # Compression is worth it: the text is shorter than base45 of the raw bytes would be.
    assert len(text) < len(QR_PREFIX) + len(base45.b45encode(SIGNED))


def test_a_trailing_line_ending_is_ignored_but_not_spaces() -> None:
    text = encode_qr_text(SIGNED)
    assert decode_qr_text(text + "\n") == SIGNED
    assert decode_qr_text(text + "\r\n") == SIGNED
    assert decode_qr_text(text.encode()) == SIGNED
    with pytest.raises(DecodeError):
        decode_qr_text(text + "\n\n")


@given(st.binary(min_size=1, max_size=2048))
def test_round_trip_of_arbitrary_bytes(data: bytes) -> None:
    text = encode_qr_text(data)
    assert set(text) <= QR_ALPHANUMERIC
    assert decode_qr_text(text) == data


@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_decode_errors(text: str) -> None:
    try:
        decoded = decode_qr_text(text)
    except DecodeError:
        return
    assert encode_qr_text(decoded)  # what decodes is bytes that encode again


@given(st.binary(min_size=1, max_size=300), st.data())
def test_a_changed_character_never_yields_another_authentic_document(
    payload: bytes, draw: st.DataObject
) -> None:
    signed = sign1(payload, SEED, b"k" * 16)
    text = encode_qr_text(signed)
    position = draw.draw(st.integers(len(QR_PREFIX), len(text) - 1))
    replacement = draw.draw(st.sampled_from(sorted(QR_ALPHANUMERIC - {text[position]})))
    tampered = text[:position] + replacement + text[position + 1 :]
    try:
        decoded = decode_qr_text(tampered)
    except DecodeError:
        return
    if decoded == signed:
        # Deflate ignores the padding bits after its last block, so a few changes decode to
        # the very same signed bytes: the same document, with the same identifier.
        return
    # zlib's checksum catches nearly all other damage; what slips through is other bytes,
    # which the signature check refuses.
    with pytest.raises(ProtocolError):
        verify1(decoded, public_key_from_seed(SEED))


BAD_TEXTS: list[tuple[str, object, type[ProtocolError], str]] = [
    ("not text", 42, DecodeError, "expected QR text"),
    ("bytes not ascii", b"PN1:\xff", DecodeError, "not ASCII"),
    ("empty", "", DecodeError, "must start with 'PN1:'"),
    ("no prefix", encode_qr_text(SIGNED)[4:], DecodeError, "must start with 'PN1:'"),
    ("other scheme", "HC1:" + encode_qr_text(SIGNED)[4:], DecodeError, "not a permitnet QR"),
    ("unknown version", "PN2:" + encode_qr_text(SIGNED)[4:], DecodeError, "'PN2' is not supported"),
    ("lower-case prefix", "pn1:" + encode_qr_text(SIGNED)[4:], DecodeError, "must start"),
    ("prefix only", "PN1:", DecodeError, "no content"),
    ("leading space", " " + encode_qr_text(SIGNED), DecodeError, "must start"),
    ("lower-case content", "PN1:abc", DecodeError, "'a' at position 4"),
    ("character outside base45", "PN1:AB#", DecodeError, "'#' at position 6"),
    ("newline inside", "PN1:AB\nCD", DecodeError, "at position 6"),
    ("length remainder one", "PN1:ABCD", DecodeError, "truncated"),
    ("three-character group over 65535", "PN1::::", DecodeError, "offset 0 has the value"),
    ("two-character group over 255", "PN1:000::", DecodeError, "offset 3 has the value"),
    ("not zlib", _text(b"this is not zlib"), DecodeError, "damaged"),
    ("truncated zlib", _text(zlib.compress(SIGNED)[:-6]), DecodeError, "truncated"),
    ("bytes after zlib", _text(zlib.compress(SIGNED) + b"x"), DecodeError, "1 bytes follow"),
    ("checksum wrong", _text(zlib.compress(SIGNED)[:-1] + b"\x00"), DecodeError, "damaged"),
    ("empty zlib", _text(zlib.compress(b"")), DecodeError, "decompresses to nothing"),
    (
        "decompression bomb",
        _text(zlib.compress(b"\x00" * (MAX_SIGNED_SIZE + 1), 9)),
        SizeLimitError,
        "more than",
    ),
    ("longer than a QR code holds", "PN1:" + "0" * MAX_QR_TEXT_LENGTH, SizeLimitError, "longer"),
]


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [pytest.param(text, error, message, id=name) for name, text, error, message in BAD_TEXTS],
)
def test_bad_qr_texts_are_refused_with_a_reason(
    text: object, error: type[ProtocolError], message: str
) -> None:
    with pytest.raises(error) as caught:
        decode_qr_text(text)  # type: ignore[arg-type]  # bad types are part of the table
    assert type(caught.value) is error
    assert message in str(caught.value)


def test_max_size_is_the_callers_limit() -> None:
    with pytest.raises(SizeLimitError):
        decode_qr_text(encode_qr_text(SIGNED), max_size=len(SIGNED) - 1)
    assert decode_qr_text(encode_qr_text(SIGNED), max_size=len(SIGNED)) == SIGNED


BAD_INPUTS: list[tuple[str, object, str]] = [
    ("text not bytes", "abc", "expected the signed bytes"),
    ("empty", b"", "empty"),
    ("too large", b"\x00" * (MAX_SIGNED_SIZE + 1), "larger than"),
    # Hash output does not compress: 3.2 KB of it needs more characters than a QR code holds.
    ("does not fit a QR code", INCOMPRESSIBLE, "at most"),
]


@pytest.mark.parametrize(
    ("data", "message"),
    [pytest.param(data, message, id=name) for name, data, message in BAD_INPUTS],
)
def test_bad_encode_inputs_are_refused(data: object, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode_qr_text(data)  # type: ignore[arg-type]  # bad types are part of the table
