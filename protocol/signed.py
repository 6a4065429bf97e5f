"""Signed documents: a typed document together with the exact COSE_Sign1 bytes that carry it.

A :class:`SignedDocument` is only ever made in two ways: by signing a document
(:meth:`SignedDocument.sign`) or by verifying received bytes (:meth:`SignedDocument.verify`).
Verification checks the signature over the raw bytes first, then decodes the payload
strictly, then builds the typed document; nothing inside the payload is looked at before
the signature holds. The raw bytes are kept: they are what is stored and forwarded, and
their SHA-256 is the document's identifier.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from permitnet.protocol.cbor import decode_cbor, encode_cbor
from permitnet.protocol.cose import (
    HEADER_ALG,
    HEADER_CONTENT_TYPE,
    HEADER_KID,
    Sign1Message,
    key_id,
    public_key_from_seed,
    sign1,
)
from permitnet.protocol.documents import Document, document_from_payload
from permitnet.protocol.errors import DecodeError, DocumentError, SignatureError, SizeLimitError

if TYPE_CHECKING:
    from permitnet.protocol.catalogue import Catalogue
    from permitnet.protocol.cose import Ed25519Check

__all__ = [
    "CONTENT_TYPE",
    "MAX_DOCUMENT_SIZE",
    "SignedDocument",
    "document_id",
    "parse_document",
    "peek_kid",
]

#: The COSE content type (protected header label 3) of every permitnet document.
CONTENT_TYPE: Final = "application/permitnet-document+cbor"
#: The largest signed document accepted, in bytes (a 100-item certificate with short texts
#: is ~25 KB; :meth:`SignedDocument.sign` refuses to sign anything larger).
MAX_DOCUMENT_SIZE: Final = 64 * 1024
#: The deepest nesting a document payload uses (document, items, item) plus a margin.
MAX_PAYLOAD_DEPTH: Final = 6
_TAG_18: Final = b"\xd2"
_PROTECTED_LABELS: Final = frozenset({HEADER_ALG, HEADER_CONTENT_TYPE, HEADER_KID})


def document_id(raw: bytes) -> bytes:
    """Return the identifier of a signed document: SHA-256 of its exact COSE_Sign1 bytes."""
    return hashlib.sha256(raw).digest()


def _parse(raw: bytes) -> Sign1Message:
    if not isinstance(raw, bytes):
        raise DecodeError(f"a signed document is bytes, got {type(raw).__name__}")
    if len(raw) > MAX_DOCUMENT_SIZE:
        raise SizeLimitError(
            f"signed document of {len(raw)} bytes exceeds the limit of {MAX_DOCUMENT_SIZE} bytes"
        )
    message = Sign1Message.from_bytes(raw)
    _check_document_message(message)
    return message


def _check_document_message(message: Sign1Message) -> None:
    raw = message.raw
    if len(raw) > MAX_DOCUMENT_SIZE:
        raise SizeLimitError(
            f"signed document of {len(raw)} bytes exceeds the limit of {MAX_DOCUMENT_SIZE} bytes"
        )
    # The identifier is the hash of the exact bytes, so the bytes must admit no variation
    # that leaves the signature valid: otherwise one signed document could be presented
    # under several identifiers (and, say, counted twice against a certificate). The tag,
    # the unprotected header and the set of protected labels are therefore fixed.
    if raw[:1] != _TAG_18:
        raise SignatureError("a permitnet document is a tagged COSE_Sign1 message (tag 18)")
    if message.unprotected:
        raise SignatureError("a permitnet document has an empty unprotected header")
    if set(message.protected) != _PROTECTED_LABELS:
        raise SignatureError(
            "the protected header of a permitnet document holds exactly alg (1), content "
            f"type (3) and kid (4), not {sorted(map(str, message.protected))}"
        )
    if message.kid is None or not message.kid_is_protected:
        raise SignatureError("a permitnet document carries its kid in the protected header")
    if message.content_type != CONTENT_TYPE:
        raise SignatureError(
            f"content type {message.content_type!r} is not {CONTENT_TYPE!r}: not a document"
        )


def parse_document(raw: bytes) -> Sign1Message:
    """Parse signed document bytes strictly, unverified, to read the kid before verifying.

    Pass the result to :meth:`SignedDocument.verify_parsed`; nothing in it may be trusted
    before that returns.

    Raises:
        DecodeError: not strict CBOR, or larger than :data:`MAX_DOCUMENT_SIZE`.
        SignatureError: not a permitnet COSE_Sign1 document, or no protected kid.
    """
    return _parse(raw)


def peek_kid(raw: bytes) -> bytes:
    """Return the key identifier from a signed document's protected header, unverified.

    Use it only to look up the public key that :meth:`SignedDocument.verify` then checks.

    Raises:
        DecodeError: not strict CBOR, or larger than :data:`MAX_DOCUMENT_SIZE`.
        SignatureError: not a permitnet COSE_Sign1 document, or no protected kid.
    """
    kid = _parse(raw).kid
    assert kid is not None  # _parse refuses a message without a protected kid
    return kid


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedDocument:
    """A document with the exact signed bytes that carry it.

    Attributes:
        raw: the COSE_Sign1 bytes exactly as signed; store and forward these.
        id: the document identifier, SHA-256 of ``raw``.
        kid: the signer's key identifier (first 16 bytes of SHA-256 of its public key).
        document: the typed document.
    """

    raw: bytes
    id: bytes
    kid: bytes
    document: Document

    @property
    def id_hex(self) -> str:
        """The document identifier in lowercase hex, as used in JSON and URLs."""
        return self.id.hex()

    @classmethod
    def sign(
        cls,
        document: Document,
        *,
        signing_key: bytes,
        kid: bytes,
        catalogue: Catalogue | None = None,
    ) -> SignedDocument:
        """Sign a document with the issuing country's Ed25519 key.

        Args:
            document: the document to sign.
            signing_key: the 32-byte Ed25519 seed.
            kid: the key identifier registered for that key (``key_id(public_key)``).
            catalogue: the substance catalogue to check items against (default: built-in).

        Raises:
            SignatureError: the key is not a 32-byte seed, or ``kid`` is not its key id.
            DocumentError: the document is not valid (the message names the field).
            SizeLimitError: the signed document would exceed :data:`MAX_DOCUMENT_SIZE`.
            EncodeError: the document holds a value that cannot be encoded.
        """
        if kid != key_id(public_key_from_seed(signing_key)):
            raise SignatureError("kid is not the key identifier of this signing key")
        payload = document.to_payload()
        # The constructors do not validate (they are also used by from_payload); reading the
        # payload back applies every check, so that no invalid document is ever signed.
        if document_from_payload(payload, catalogue=catalogue) != document:
            raise DocumentError("the document does not read back as itself: refusing to sign")
        raw = sign1(encode_cbor(payload), signing_key, kid, content_type=CONTENT_TYPE)
        if len(raw) > MAX_DOCUMENT_SIZE:
            # Receivers refuse anything larger, so it must not be signed and sent.
            raise SizeLimitError(
                f"the signed document would be {len(raw)} bytes, more than the "
                f"{MAX_DOCUMENT_SIZE} bytes receivers accept: use fewer items or shorter texts"
            )
        return cls(raw=raw, id=document_id(raw), kid=kid, document=document)

    @classmethod
    def verify(
        cls, raw: bytes, public_key: bytes, *, catalogue: Catalogue | None = None
    ) -> SignedDocument:
        """Verify received bytes and return the signed document they carry.

        The order matters: the signature over the raw bytes is checked first, then the
        payload is decoded strictly, then the typed document is built and checked.

        Args:
            raw: the COSE_Sign1 bytes as received.
            public_key: the signer's registered 32-byte Ed25519 public key.
            catalogue: the substance catalogue to check items against (default: built-in).

        Raises:
            SizeLimitError: larger than :data:`MAX_DOCUMENT_SIZE`.
            DecodeError: not strict deterministic CBOR (the message or the payload).
            SignatureError: a refused structure or header; an untagged message; a non-empty
                unprotected header; protected labels other than alg, content type and kid; a
                kid that is not this public key's; or another content type.
            InvalidSignatureError: the signature does not verify with ``public_key``.
            DocumentError: the payload is not a valid document.
        """
        return cls.verify_parsed(_parse(raw), public_key, catalogue=catalogue)

    @classmethod
    def verify_parsed(
        cls, message: Sign1Message, public_key: bytes, *, catalogue: Catalogue | None = None
    ) -> SignedDocument:
        """Verify a message :func:`parse_document` returned, as :meth:`verify` does.

        For a caller that parsed the bytes to read the kid (to find the key): the message is
        not parsed a second time. Only a message from :func:`parse_document` is accepted.

        Raises:
            The same errors as :meth:`verify`, after parsing.
        """
        check = message.signature_check(public_key)
        return cls.from_checked(message, check, holds=check.holds(), catalogue=catalogue)

    @classmethod
    def from_checked(
        cls,
        message: Sign1Message,
        check: Ed25519Check,
        *,
        holds: bool,
        catalogue: Catalogue | None = None,
    ) -> SignedDocument:
        """Finish :meth:`verify_parsed` with a signature check the caller ran itself.

        ``check`` is ``message.signature_check(public_key)`` and ``holds`` its outcome, run
        where the caller chose (the node runs batches of them in a worker process).

        Raises:
            The same errors as :meth:`verify_parsed`.
        """
        # The document checks are cheap next to the CBOR parse: they run again, so that no
        # message skips them whatever made it.
        raw = message.raw
        public_key = check.public_key
        _check_document_message(message)
        payload_bytes = message.checked_payload(check, holds=holds)
        if message.kid != key_id(public_key):
            raise SignatureError("the kid in the protected header is not this public key's")
        payload = decode_cbor(
            payload_bytes,
            max_size=MAX_DOCUMENT_SIZE,
            max_depth=MAX_PAYLOAD_DEPTH,
            allowed_tags=frozenset(),
        )
        if not isinstance(payload, dict):
            raise DocumentError("the signed payload is not a map")
        document = document_from_payload(payload, catalogue=catalogue)
        assert message.kid is not None  # _parse refuses a message without a protected kid
        return cls(raw=raw, id=document_id(raw), kid=message.kid, document=document)
