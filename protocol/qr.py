"""The text a printed document's QR code holds: the signed COSE bytes, compressed, in base45.

The QR text is ``"PN1:"`` followed by the base45 encoding (RFC 9285) of the zlib-compressed
(RFC 1950) signed COSE_Sign1 bytes, exactly as signed. The EU Digital COVID Certificate made
the same choice (``"HC1:"``) for the same reasons: every base45 character and the colon belong
to the QR code's alphanumeric mode, which packs 5.5 bits per character instead of the 8 of byte
mode, so the code is a third smaller than raw bytes would make it; and zlib's Adler-32
checksum catches most damage before the signature is even checked.

The version prefix lets a later encoding (another compression, a detached payload) be told
apart: a reader refuses a version it does not know, by name, rather than misreading it.

Decoding is strict and bounded: the prefix must be exactly right, every character must be in
the base45 alphabet, every group must be in range, the zlib stream must be complete with
nothing after it, and the decompressed size is capped before it is produced (a small QR code
must not be able to inflate into gigabytes). Nothing here checks the signature: the bytes that
come back are to be verified like any other signed document.
"""

from __future__ import annotations

import zlib
from typing import Final

import base45

from permitnet.protocol.errors import DecodeError, EncodeError, SizeLimitError

__all__ = [
    "MAX_QR_TEXT_LENGTH",
    "MAX_SIGNED_SIZE",
    "QR_PREFIX",
    "decode_qr_text",
    "encode_qr_text",
]

#: The version prefix of the only QR text encoding this software writes and reads.
QR_PREFIX: Final = "PN1:"
#: The most characters a QR code holds in alphanumeric mode (version 40, error correction L).
MAX_QR_TEXT_LENGTH: Final = 4296
#: The largest signed document a QR text may decompress to. A signed document is ~1.5 KB;
#: a QR code cannot carry more than ~2.9 KB of compressed data, and zlib rarely achieves 4:1 on
#: signed CBOR (hashes and signatures do not compress), so 32 KiB is generous and still bounded.
MAX_SIGNED_SIZE: Final = 32 * 1024

_ALPHABET: Final = frozenset(base45.BASE45_CHARSET)
_KNOWN_PREFIX_SHAPE: Final = "PN"


def encode_qr_text(signed: bytes) -> str:
    """Return the QR text for a signed document: ``"PN1:"`` + base45(zlib(signed)).

    Args:
        signed: the exact signed COSE_Sign1 bytes.

    Returns:
        Text made only of QR alphanumeric characters.

    Raises:
        EncodeError: ``signed`` is not bytes, is empty, is larger than :data:`MAX_SIGNED_SIZE`,
            or compresses to more than a QR code can hold.
    """
    if not isinstance(signed, bytes | bytearray | memoryview):
        raise EncodeError(f"expected the signed bytes, got {type(signed).__name__}")
    signed = bytes(signed)
    if not signed:
        raise EncodeError("nothing to encode: the signed document is empty")
    if len(signed) > MAX_SIGNED_SIZE:
        raise EncodeError(
            f"a signed document of {len(signed)} bytes is larger than the {MAX_SIGNED_SIZE} "
            "bytes a QR code may carry"
        )
    encoded: bytes = base45.b45encode(zlib.compress(signed, 9))
    text = QR_PREFIX + encoded.decode("ascii")
    if len(text) > MAX_QR_TEXT_LENGTH:
        raise EncodeError(
            f"the QR text would be {len(text)} characters: a QR code holds at most "
            f"{MAX_QR_TEXT_LENGTH}"
        )
    return text


def decode_qr_text(text: str | bytes, *, max_size: int = MAX_SIGNED_SIZE) -> bytes:
    """Decode a QR text back to the signed bytes it carries, strictly.

    One trailing line ending (LF or CR LF), as a scanner or a text file adds, is ignored.
    Spaces are never stripped: the space is a base45 character.

    Args:
        text: the text read from the QR code (ASCII bytes are accepted too).
        max_size: the largest decompressed size accepted, in bytes.

    Returns:
        The signed COSE_Sign1 bytes, not yet verified.

    Raises:
        SizeLimitError: the text is longer than a QR code holds, or it decompresses to more
            than ``max_size`` bytes.
        DecodeError: anything else: not text, a missing or unknown version prefix, a
            character outside base45, a base45 group out of range, a damaged or truncated
            zlib stream, or bytes after it. The message says which, and where.
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("ascii")
        except UnicodeDecodeError as e:
            raise DecodeError(f"QR text is not ASCII (byte {e.start} is not)") from e
    if not isinstance(text, str):
        raise DecodeError(f"expected QR text, got {type(text).__name__}")
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if len(text) > MAX_QR_TEXT_LENGTH:
        raise SizeLimitError(
            f"QR text of {len(text)} characters is longer than a QR code holds "
            f"({MAX_QR_TEXT_LENGTH})"
        )
    _check_prefix(text)
    body = text[len(QR_PREFIX) :]
    if not body:
        raise DecodeError(f"QR text has the prefix {QR_PREFIX} but no content")
    for position, char in enumerate(body, start=len(QR_PREFIX)):
        if char not in _ALPHABET:
            raise DecodeError(
                f"character {char!r} at position {position} is not in the base45 alphabet"
            )
    if len(body) % 3 == 1:
        raise DecodeError(
            f"base45 content of {len(body)} characters is truncated: "
            "its length must not leave a remainder of 1 when divided by 3"
        )
    try:
        compressed: bytes = base45.b45decode(body)
    except ValueError as e:
        raise DecodeError(f"base45 content is invalid: {_first_bad_group(body)}") from e
    return _inflate(compressed, max_size)


def _check_prefix(text: str) -> None:
    if text.startswith(QR_PREFIX):
        return
    head, colon, _ = text[:12].partition(":")
    if colon and head.upper().startswith(_KNOWN_PREFIX_SHAPE) and head.upper() != "PN1":
        raise DecodeError(
            f"QR text version {head!r} is not supported: this software reads {QR_PREFIX!r}"
        )
    raise DecodeError(
        f"not a permitnet QR text: it must start with {QR_PREFIX!r}, it starts with {text[:8]!r}"
    )


def _first_bad_group(body: str) -> str:
    """Name the first base45 group whose value is out of range (the library does not)."""
    values = [base45.BASE45_DICT[char] for char in body]
    for start in range(0, len(values), 3):
        group = values[start : start + 3]
        value = sum(digit * 45**power for power, digit in enumerate(group))
        limit = 0xFFFF if len(group) == 3 else 0xFF
        if value > limit:
            return f"the group at content offset {start} has the value {value}, over {limit}"
    return "it does not decode"  # pragma: no cover - the library refuses only out-of-range groups


def _inflate(compressed: bytes, max_size: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        signed = inflater.decompress(compressed, max_size + 1)
    except zlib.error as e:
        raise DecodeError(f"the compressed content is damaged: {e}") from e
    if len(signed) > max_size:
        raise SizeLimitError(f"the QR content decompresses to more than {max_size} bytes")
    if not inflater.eof:
        raise DecodeError("the compressed content is truncated: the zlib stream does not end")
    if inflater.unused_data:
        raise DecodeError(
            f"{len(inflater.unused_data)} bytes follow the end of the compressed content"
        )
    if not signed:
        raise DecodeError("the QR content decompresses to nothing")
    return signed
