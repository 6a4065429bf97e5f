"""Key enrollment, rotation and revocation requests a country sends to the registry.

* **Enrollment**: signed by the new key itself (proof of possession). The operator approves
  it after confirming the key's fingerprint with the country out of band.
* **Rotation**: signed by the country's current active key, and carrying the new key's own
  enrollment request (so the new key's possession is proven too).
* **Revocation**: signed by any key of the country, including the compromised one.

Each is a COSE_Sign1 message with kid in the protected header and a deterministic CBOR payload
with a ``type`` marker. Building needs only the seeds and the clock; verifying a rotation or
revocation needs the registry's current keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from permitnet.protocol.cbor import decode_cbor, encode_cbor
from permitnet.protocol.cose import Sign1Message, key_id, public_key_from_seed, sign1
from permitnet.protocol.errors import DecodeError, SignatureError
from permitnet.protocol.registry_errors import (
    KeyRevokedError,
    RecordError,
    SignerError,
    UnknownKeyError,
    WrongCountryError,
)
from permitnet.protocol.registry_records import KeyRecord, check_country

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "KeyRequest",
    "build_enrollment_request",
    "build_revocation_request",
    "build_rotation_request",
    "verify_key_request",
]

REQUEST_TYPE: Final = "permitnet-key-request"
FORMAT: Final = 1
MAX_REQUEST_SIZE: Final = 16 * 1024
Action = Literal["enroll", "rotate", "revoke"]


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRequest:
    """A verified key request.

    Attributes:
        action: ``enroll``, ``rotate`` or ``revoke``.
        country: the requesting country.
        signer_kid: the key that signed the request.
        requested_at: when it was signed (Unix seconds).
        public_key: the new key (enroll, rotate).
        valid_from: from when the new key signs (enroll, rotate).
        valid_until: optional end of the new key's validity (enroll, rotate).
        kid: the key to revoke (revoke).
        compromised_at: from when the revoked key's signatures are invalid (revoke).
        reason: why the key is revoked (revoke).
        raw: the exact signed request bytes, kept for the audit log.
    """

    action: Action
    country: str
    signer_kid: bytes
    requested_at: int
    public_key: bytes | None = None
    valid_from: int | None = None
    valid_until: int | None = None
    kid: bytes | None = None
    compromised_at: int | None = None
    reason: str | None = None
    raw: bytes = b""

    def new_key_record(self) -> KeyRecord:
        """Return the active key record an approved enroll or rotate request creates.

        Raises:
            RecordError: this is a revocation request.
        """
        if self.public_key is None or self.valid_from is None:
            raise RecordError("only enrollment and rotation requests carry a new key")
        return KeyRecord(
            country=self.country,
            kid=key_id(self.public_key),
            public_key=self.public_key,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            status="active",
        )


def _sign(payload: dict[str, object], seed: bytes) -> bytes:
    body = {"type": REQUEST_TYPE, "format": FORMAT, **payload}
    return sign1(encode_cbor(body), seed, key_id(public_key_from_seed(seed)))


def build_enrollment_request(
    seed: bytes, *, country: str, valid_from: int, requested_at: int, valid_until: int | None = None
) -> bytes:
    """Return an enrollment request for the key of ``seed``, signed by that key.

    Raises:
        RecordError: the country code is not ISO 3166-1 alpha-2.
        SignatureError: the seed is not 32 bytes.
    """
    check_country(country)
    return _sign(
        {
            "action": "enroll",
            "country": country,
            "public_key": public_key_from_seed(seed),
            "valid_from": valid_from,
            "valid_until": valid_until,
            "requested_at": requested_at,
        },
        seed,
    )


def build_rotation_request(
    current_seed: bytes, new_seed: bytes, *, country: str, valid_from: int, requested_at: int
) -> bytes:
    """Return a rotation request signed by the current key, embedding the new key's enrollment.

    Raises:
        RecordError: the country code is not ISO 3166-1 alpha-2.
        SignatureError: a seed is not 32 bytes.
    """
    proof = build_enrollment_request(
        new_seed, country=country, valid_from=valid_from, requested_at=requested_at
    )
    return _sign(
        {"action": "rotate", "country": country, "proof": proof, "requested_at": requested_at},
        current_seed,
    )


def build_revocation_request(
    seed: bytes, *, country: str, kid: bytes, compromised_at: int, reason: str, requested_at: int
) -> bytes:
    """Return a request to revoke ``kid``, signed by any key of the country (``seed``).

    Raises:
        RecordError: the country code is not ISO 3166-1 alpha-2.
        SignatureError: the seed is not 32 bytes.
    """
    check_country(country)
    return _sign(
        {
            "action": "revoke",
            "country": country,
            "kid": kid,
            "compromised_at": compromised_at,
            "reason": reason,
            "requested_at": requested_at,
        },
        seed,
    )


def _open(raw: bytes) -> tuple[Sign1Message, dict[object, object]]:
    # Refused before any parsing: the registry receives these from anyone.
    if len(raw) > MAX_REQUEST_SIZE:
        raise RecordError(f"key request of {len(raw)} bytes exceeds {MAX_REQUEST_SIZE}")
    try:
        message = Sign1Message.from_bytes(raw)
        payload = decode_cbor(message.payload, max_size=MAX_REQUEST_SIZE, max_depth=2)
    except (DecodeError, SignatureError) as e:
        raise RecordError(f"key request is not a valid COSE_Sign1 message: {e}") from e
    if not isinstance(payload, dict) or payload.get("type") != REQUEST_TYPE:
        raise RecordError("not a permitnet key request")
    if payload.get("format") != FORMAT:
        raise RecordError(f"unsupported key request format {payload.get('format')!r}")
    if message.kid is None or not message.kid_is_protected:
        raise RecordError("a key request must carry kid in its protected header")
    return message, payload


def _int(payload: Mapping[object, object], name: str, *, optional: bool = False) -> int | None:
    value = payload.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecordError(f"key request field {name} must be a non-negative integer")
    return value


def _verify_with(message: Sign1Message, public_key: bytes, what: str) -> None:
    try:
        message.verify(public_key)
    except SignatureError as e:
        raise SignerError(f"{what}: signature does not verify: {e}") from e


def _enrollment(
    raw: bytes, opened: tuple[Sign1Message, dict[object, object]] | None = None
) -> KeyRequest:
    # ``opened``: what _open(raw) returned, when the caller has it already.
    message, payload = opened or _open(raw)
    if payload.get("action") != "enroll":
        raise RecordError("expected an enrollment request")
    public_key = payload.get("public_key")
    if not isinstance(public_key, bytes) or len(public_key) != 32:
        raise RecordError("enrollment public_key must be a 32-byte Ed25519 key")
    if message.kid != key_id(public_key):
        raise SignerError("an enrollment request must be signed by the key it enrolls")
    _verify_with(message, public_key, "enrollment request (proof of possession)")
    return KeyRequest(
        action="enroll",
        country=check_country(payload.get("country")),
        signer_kid=message.kid,
        requested_at=_int(payload, "requested_at") or 0,
        public_key=public_key,
        valid_from=_int(payload, "valid_from"),
        valid_until=_int(payload, "valid_until", optional=True),
        raw=raw,
    )


def _country_key(kid: bytes, country: str, keys: Mapping[bytes, KeyRecord]) -> KeyRecord:
    key = keys.get(kid)
    if key is None:
        raise UnknownKeyError(f"key request signed by unknown key {kid.hex()}")
    if key.country != country:
        raise WrongCountryError(f"key {kid.hex()} belongs to {key.country}, not {country}")
    return key


def verify_key_request(raw: bytes, keys: Mapping[bytes, KeyRecord]) -> KeyRequest:
    """Verify a key request against the registry's current keys.

    Args:
        raw: the signed request.
        keys: the registry's keys by kid (not needed for an enrollment).

    Raises:
        RecordError: malformed request.
        SignerError: a subclass: the signer is unknown, of another country, not the key
            enrolled, revoked, or the signature does not verify.
    """
    message, payload = _open(raw)
    action = payload.get("action")
    if action == "enroll":
        return _enrollment(raw, (message, payload))
    country = check_country(payload.get("country"))
    assert message.kid is not None  # checked by _open
    signer = _country_key(message.kid, country, keys)
    if action == "rotate":
        if signer.status != "active":
            raise SignerError(f"a rotation must be signed by an active key, {signer.status}")
        _verify_with(message, signer.public_key, "rotation request")
        proof = payload.get("proof")
        if not isinstance(proof, bytes):
            raise RecordError("a rotation request embeds the new key's enrollment request")
        new = _enrollment(proof)
        if new.country != country:
            raise RecordError("the embedded enrollment is for another country")
        return KeyRequest(
            action="rotate",
            country=country,
            signer_kid=message.kid,
            requested_at=_int(payload, "requested_at") or 0,
            public_key=new.public_key,
            valid_from=new.valid_from,
            valid_until=new.valid_until,
            raw=raw,
        )
    if action == "revoke":
        if signer.status == "revoked" and signer.kid != payload.get("kid"):
            raise KeyRevokedError("a revoked key can only confirm its own revocation")
        _verify_with(message, signer.public_key, "revocation request")
        kid, reason = payload.get("kid"), payload.get("reason")
        if not isinstance(kid, bytes):
            raise RecordError("revocation kid must be a byte string")
        _country_key(kid, country, keys)
        if not isinstance(reason, str) or not reason.strip():
            raise RecordError("a revocation needs a reason")
        return KeyRequest(
            action="revoke",
            country=country,
            signer_kid=message.kid,
            requested_at=_int(payload, "requested_at") or 0,
            kid=kid,
            compromised_at=_int(payload, "compromised_at"),
            reason=reason,
            raw=raw,
        )
    raise RecordError(f"unknown key request action {action!r}")
