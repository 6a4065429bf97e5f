"""COSE_Sign1 (RFC 9052) with EdDSA over Ed25519 (RFC 9053, alg -8).

Only what permitnet needs, and strictly: the protected header must be a non-empty map holding
``alg``; ``alg`` only in the unprotected header, a label in both buckets, duplicate labels and
critical labels we do not understand are refused. The signature is checked over the protected
header bytes exactly as received, never over a re-encoding.

The algorithm accepted is the one the key is registered for: every permitnet key is an
Ed25519 key, so the only ``alg`` accepted is -8, whatever the message claims.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

import nacl.bindings
import nacl.exceptions

from permitnet.protocol.cbor import Tag, decode_cbor, encode_cbor
from permitnet.protocol.errors import (
    DecodeError,
    InvalidSignatureError,
    ProtocolError,
    SignatureError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ALG_EDDSA",
    "COSE_SIGN1_TAG",
    "Ed25519Check",
    "Sign1Message",
    "Sign1Signer",
    "key_id",
    "public_key_from_seed",
    "sign1",
    "verify1",
]

COSE_SIGN1_TAG: Final = 18
ALG_EDDSA: Final = -8
HEADER_ALG: Final = 1
HEADER_CRIT: Final = 2
HEADER_CONTENT_TYPE: Final = 3
HEADER_KID: Final = 4

#: Critical header labels this implementation understands. None beyond RFC 9052's own, which
#: never need to be listed in ``crit``; any label in ``crit`` is therefore refused.
UNDERSTOOD_CRITICAL: Final[frozenset[int | str]] = frozenset()
#: The largest COSE_Sign1 message accepted (registry snapshots are the largest messages).
MAX_MESSAGE_SIZE: Final = 64 * 1024 * 1024
_SIGNATURE_SIZE: Final = 64
_KEY_SIZE: Final = 32
_MAX_CONTENT_FORMAT: Final = 0xFFFF


def public_key_from_seed(signing_key: bytes) -> bytes:
    """Return the 32-byte Ed25519 public key of a 32-byte seed.

    Raises:
        SignatureError: ``signing_key`` is not 32 bytes.
    """
    return _secret_key(signing_key)[_KEY_SIZE:]


def key_id(public_key: bytes) -> bytes:
    """Return the permitnet key identifier: the first 16 bytes of SHA-256 of the public key."""
    return hashlib.sha256(public_key).digest()[:16]


def _secret_key(seed: bytes) -> bytes:
    """Return libsodium's 64-byte secret key for a seed: the seed, then the public key."""
    # Checked before the cache, which would fail on an unhashable seed with a bare TypeError.
    if not isinstance(seed, bytes) or len(seed) != _KEY_SIZE:
        raise SignatureError("an Ed25519 signing key is a 32-byte seed")
    return _cached_secret_key(seed)


@lru_cache(maxsize=1024)
def _cached_secret_key(seed: bytes) -> bytes:
    return nacl.bindings.crypto_sign_seed_keypair(seed)[1]


def _bstr_header(length: int) -> bytes:
    """Return the shortest CBOR header of a byte string of ``length`` bytes."""
    if length < 24:
        return bytes((0x40 | length,))
    if length < 0x100:
        return bytes((0x58, length))
    if length < 0x10000:
        return b"\x59" + length.to_bytes(2, "big")
    if length < 0x100000000:
        return b"\x5a" + length.to_bytes(4, "big")
    return b"\x5b" + length.to_bytes(8, "big")


#: ``["Signature1", ...`` up to the protected header: array of 4, text of 10 bytes.
_SIG_STRUCTURE_PREFIX: Final = b"\x84\x6aSignature1"


def _sig_structure_head(protected: bytes) -> bytes:
    """``["Signature1", body_protected, external_aad`` (empty), before the payload."""
    return _SIG_STRUCTURE_PREFIX + _bstr_header(len(protected)) + protected + b"\x40"


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    """Return the bytes signed (RFC 9052 section 4.4).

    ``["Signature1", body_protected, external_aad, payload]`` with an empty external_aad,
    written directly: it equals ``encode_cbor`` of that array (a test holds it so) without
    the cost of the generic encoder on the verification path.
    """
    return b"".join((_sig_structure_head(protected), _bstr_header(len(payload)), payload))


class Sign1Signer:
    """Signs payloads as tagged COSE_Sign1 messages with one key and one protected header.

    What every message shares is computed once: the protected header, the start of the
    Sig_structure and of the message, libsodium's secret key. :func:`sign1` is this for one
    payload; a signer kept for many (a node's delivery receipts) saves that work each time.
    """

    __slots__ = ("_message_head", "_secret", "_sig_head")

    def __init__(
        self, signing_key: bytes, kid: bytes, *, content_type: str | int | None = None
    ) -> None:
        """Prepare signing with ``signing_key`` (a 32-byte seed) under ``kid``.

        Raises:
            SignatureError: ``kid`` is not bytes, the key is not a 32-byte seed, or the content
                type is neither text nor a content-format number.
        """
        if not isinstance(kid, bytes):
            raise SignatureError("kid must be bytes")
        header: dict[int, object] = {HEADER_ALG: ALG_EDDSA, HEADER_KID: kid}
        if content_type is not None:
            _check_content_type(content_type)
            header[HEADER_CONTENT_TYPE] = content_type
        protected = encode_cbor(header)
        self._sig_head = _sig_structure_head(protected)
        # Tag 18, an array of 4: the protected header, an empty unprotected map, then the
        # payload and the signature. Equal to ``encode_cbor`` of the tagged array (tested).
        self._message_head = b"\xd2\x84" + _bstr_header(len(protected)) + protected + b"\xa0"
        self._secret = _secret_key(signing_key)

    def sign(self, payload: bytes) -> bytes:
        """Return ``payload`` signed as a tagged COSE_Sign1 message.

        Raises:
            SignatureError: the payload is not bytes.
        """
        if not isinstance(payload, bytes):
            raise SignatureError("the payload must be bytes")
        length = _bstr_header(len(payload))
        signed = nacl.bindings.crypto_sign(self._sig_head + length + payload, self._secret)
        return b"".join(
            (self._message_head, length, payload, b"\x58\x40", signed[:_SIGNATURE_SIZE])
        )


def sign1(
    payload: bytes,
    signing_key: bytes,
    kid: bytes,
    *,
    content_type: str | int | None = None,
) -> bytes:
    """Sign ``payload`` as a tagged COSE_Sign1 message with EdDSA (Ed25519).

    Args:
        payload: the bytes to sign (a permitnet document's deterministic CBOR payload).
        signing_key: the 32-byte Ed25519 seed.
        kid: the key identifier, placed in the protected header so that it is signed.
        content_type: optional content type (header label 3): a media type as text, or a
            CoAP content-format number (0-65535).

    Returns:
        The encoded, tagged COSE_Sign1 message.

    Raises:
        SignatureError: the payload or ``kid`` is not bytes, the key is not a 32-byte seed,
            or the content type is neither text nor a content-format number.
    """
    if not isinstance(payload, bytes):
        raise SignatureError("the payload must be bytes")
    return Sign1Signer(signing_key, kid, content_type=content_type).sign(payload)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sign1Message:
    """A parsed, not yet verified, COSE_Sign1 message.

    Parsing checks the structure and the headers; :meth:`verify` checks the signature. Nothing
    in ``payload`` may be trusted until :meth:`verify` has returned.
    """

    raw: bytes
    protected_bytes: bytes
    protected: Mapping[int | str, object]
    unprotected: Mapping[int | str, object]
    payload: bytes
    signature: bytes

    @property
    def kid(self) -> bytes | None:
        """The key identifier, from the protected header, else the unprotected one."""
        kid = self.protected.get(HEADER_KID, self.unprotected.get(HEADER_KID))
        return kid if isinstance(kid, bytes) else None

    @property
    def kid_is_protected(self) -> bool:
        """Whether the key identifier is covered by the signature."""
        return HEADER_KID in self.protected

    @property
    def content_type(self) -> str | int | None:
        """The content type from the protected header, if any."""
        value = self.protected.get(HEADER_CONTENT_TYPE)
        return value if isinstance(value, str | int) else None

    @classmethod
    def from_bytes(cls, message: bytes) -> Sign1Message:
        """Parse a tagged or untagged COSE_Sign1 message strictly.

        Args:
            message: the COSE_Sign1 bytes as received.

        Raises:
            DecodeError: the bytes are not strict deterministic CBOR, or use a tag other than
                18 (COSE_Sign1).
            SizeLimitError: the message is larger than :data:`MAX_MESSAGE_SIZE`.
            SignatureError: the structure or the headers are not acceptable.
        """
        item = decode_cbor(message, max_size=MAX_MESSAGE_SIZE, max_depth=4)
        if isinstance(item, Tag):
            # The decoder admits no tag but 18; a tag inside the tag is not a COSE_Sign1.
            item = item.value
        if not isinstance(item, list) or len(item) != 4:
            raise SignatureError("a COSE_Sign1 message is an array of four items")
        protected_bytes, unprotected, payload, signature = item
        if not isinstance(protected_bytes, bytes):
            raise SignatureError("the protected header must be a byte string")
        if not isinstance(unprotected, dict):
            raise SignatureError("the unprotected header must be a map")
        if payload is None:
            raise SignatureError("detached payloads are not used by permitnet")
        if not isinstance(payload, bytes):
            raise SignatureError("the payload must be a byte string")
        if not isinstance(signature, bytes) or len(signature) != _SIGNATURE_SIZE:
            raise SignatureError("an Ed25519 signature is a 64-byte string")
        protected = _parse_protected(protected_bytes)
        if unprotected:
            _refuse_tags(unprotected)
        _check_headers(protected, unprotected)
        return cls(
            raw=message if isinstance(message, bytes) else bytes(message),
            protected_bytes=protected_bytes,
            protected=protected,
            unprotected=MappingProxyType(unprotected),
            payload=payload,
            signature=signature,
        )

    def verify(self, public_key: bytes) -> bytes:
        """Verify the signature with an Ed25519 public key and return the payload.

        The algorithm is the key's, EdDSA, whatever the message says; parsing has already
        refused any message whose protected ``alg`` is not EdDSA.

        Args:
            public_key: the signer's registered 32-byte Ed25519 public key.

        Returns:
            The payload bytes, now authentic.

        Raises:
            SignatureError: the public key is not 32 bytes.
            InvalidSignatureError: the signature does not verify.
        """
        check = self.signature_check(public_key)
        return self.checked_payload(check, holds=check.holds())

    def signature_check(self, public_key: bytes) -> Ed25519Check:
        """Return the Ed25519 verification this message needs, to be run by the caller.

        :meth:`verify` is this, :meth:`Ed25519Check.holds`, then :meth:`checked_payload`. A
        caller that runs many checks elsewhere (the node runs them in batches in a worker
        process) uses the three steps itself.

        Raises:
            SignatureError: the public key is not 32 bytes.
        """
        if not isinstance(public_key, bytes) or len(public_key) != _KEY_SIZE:
            raise SignatureError("an Ed25519 public key is 32 bytes")
        return Ed25519Check(
            public_key=public_key,
            signature=self.signature,
            message=_sig_structure(self.protected_bytes, self.payload),
        )

    def checked_payload(self, check: Ed25519Check, *, holds: bool) -> bytes:
        """Return the payload, given the outcome of this message's :meth:`signature_check`.

        Args:
            check: what :meth:`signature_check` returned for this message.
            holds: whether ``check`` held, as :meth:`Ed25519Check.holds` answers it.

        Raises:
            SignatureError: ``check`` is not this message's.
            InvalidSignatureError: the check did not hold.
        """
        if check.signature != self.signature or check.message != _sig_structure(
            self.protected_bytes, self.payload
        ):
            raise SignatureError("the signature check given is another message's")
        if not holds:
            raise InvalidSignatureError("the signature does not verify with this key")
        return self.payload


@dataclass(frozen=True, slots=True)
class Ed25519Check:
    """One Ed25519 verification, apart from the parsing around it.

    Everything in it is public: the key, the signature and the bytes signed (for COSE_Sign1,
    the Sig_structure). :meth:`holds` runs it in this thread; the node may run the same check
    in a worker process (``node/signature_worker.py``) with the same libsodium call.
    """

    public_key: bytes
    signature: bytes
    message: bytes

    def holds(self) -> bool:
        """Whether the signature verifies.

        libsodium refuses non-canonical S (S >= L) and small-order keys and R, so a malleated
        signature never verifies.
        """
        try:
            nacl.bindings.crypto_sign_open(self.signature + self.message, self.public_key)
        except (nacl.exceptions.CryptoError, nacl.exceptions.ValueError):
            return False
        return True


@lru_cache(maxsize=512)
def _parse_protected(protected_bytes: bytes) -> Mapping[int | str, object]:
    """Decode a protected header; cached, because each signer sends the same one every time.

    The result is read-only, so one cached mapping can be shared by every message.
    """
    if not protected_bytes:
        raise SignatureError("the protected header is empty: it must hold at least alg")
    try:
        protected = decode_cbor(
            protected_bytes, max_size=4096, max_depth=3, allowed_tags=frozenset()
        )
    except DecodeError as e:
        raise SignatureError(f"the protected header is not strict CBOR: {e}") from e
    if not isinstance(protected, dict):
        raise SignatureError("the protected header must encode a map")
    if not protected:
        raise SignatureError("the protected header is an empty map: it must hold at least alg")
    # The decoder only admits integer and text keys; values are frozen all the way down so
    # that no holder of a message can change the cached header of another.
    return MappingProxyType({label: _frozen(value) for label, value in protected.items()})


def _frozen(value: object) -> object:
    """Return ``value`` with arrays as tuples and maps as read-only mappings, recursively."""
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, dict):
        return MappingProxyType({key: _frozen(item) for key, item in value.items()})
    return value


def _refuse_tags(value: object) -> None:
    """Refuse a tag anywhere in an unprotected header: only the message itself is tagged."""
    if isinstance(value, Tag):
        raise SignatureError("the unprotected header holds a CBOR tag: none is used there")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_tags(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_tags(item)


def _check_content_type(content_type: object) -> None:
    if isinstance(content_type, str):
        return
    if isinstance(content_type, bool) or not isinstance(content_type, int):
        raise SignatureError("content type must be text or a content-format number")
    if not 0 <= content_type <= _MAX_CONTENT_FORMAT:
        raise SignatureError(f"content-format number {content_type} is outside 0-65535")


def _check_headers(
    protected: Mapping[int | str, object], unprotected: Mapping[int | str, object]
) -> None:
    both = protected.keys() & unprotected.keys()
    if both:
        raise SignatureError(f"header labels {sorted(map(str, both))} appear in both buckets")
    if HEADER_ALG not in protected:
        if HEADER_ALG in unprotected:
            raise SignatureError("alg is in the unprotected header: it must be protected")
        raise SignatureError("the protected header has no alg")
    alg = protected[HEADER_ALG]
    if alg != ALG_EDDSA or isinstance(alg, bool):
        raise SignatureError(f"algorithm {alg!r} is refused: permitnet keys are EdDSA (-8)")
    if HEADER_CRIT in unprotected:
        raise SignatureError("crit is in the unprotected header: it must be protected")
    if HEADER_CRIT in protected:
        crit = protected[HEADER_CRIT]
        if not isinstance(crit, list | tuple) or not crit:
            raise SignatureError("crit must be a non-empty array of labels")
        unknown = [label for label in crit if label not in UNDERSTOOD_CRITICAL]
        if unknown:
            raise SignatureError(f"critical header labels {unknown!r} are not understood")
    for bucket in (protected, unprotected):
        kid = bucket.get(HEADER_KID)
        if kid is not None and not isinstance(kid, bytes):
            raise SignatureError("kid must be a byte string")
        content_type = bucket.get(HEADER_CONTENT_TYPE)
        if content_type is not None:
            _check_content_type(content_type)


def verify1(message: bytes, public_key: bytes) -> bytes:
    """Verify a tagged or untagged COSE_Sign1 message and return its payload.

    Args:
        message: the COSE_Sign1 bytes as received.
        public_key: the signer's registered 32-byte Ed25519 public key.

    Returns:
        The payload bytes, to be decoded only now that they are authentic.

    Raises:
        ProtocolError: a subclass saying why the message is not acceptable: ``DecodeError``
            for bytes that are not strict CBOR, ``SignatureError`` for a refused structure or
            header, ``InvalidSignatureError`` when the signature does not verify.
    """
    try:
        return Sign1Message.from_bytes(message).verify(public_key)
    except ProtocolError:
        raise
    except (TypeError, ValueError) as e:  # pragma: no cover - defensive wrapping at the boundary
        raise SignatureError(f"malformed COSE_Sign1 message: {e}") from e
