"""What approving a key request appends to the log: new, retired and revoked key records."""

from __future__ import annotations

from typing import TYPE_CHECKING

from permitnet.protocol.cose import key_id
from permitnet.protocol.registry_records import KeyRecord
from permitnet.registry.errors import ConflictError, OperationError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from permitnet.protocol.registry_requests import KeyRequest

__all__ = ["describe_request", "key_records_for", "revoked_record"]


def key_records_for(
    keys: Mapping[bytes, KeyRecord],
    request: KeyRequest,
    fingerprint: str | None,
    overlap: int,
    now: int,
) -> list[KeyRecord]:
    """Return the key records that approving ``request`` appends to the log.

    Raises:
        ConflictError: the new key is already registered.
        OperationError: an enrollment without the confirmed fingerprint, or a mismatch.
    """
    if request.action == "revoke":
        assert request.kid is not None
        assert request.compromised_at is not None
        return [revoked_record(keys[request.kid], request.compromised_at, request.reason)]
    new = request.new_key_record()
    if new.kid in keys:
        raise ConflictError(f"key {new.kid.hex()} is already registered")
    if request.action == "enroll" and fingerprint is None:
        raise OperationError("approving an enrollment needs the fingerprint confirmed out of band")
    if fingerprint is not None and fingerprint.lower() != new.kid.hex():
        raise OperationError(
            f"fingerprint {fingerprint} does not match the requested key {new.kid.hex()}"
        )
    if request.action == "enroll":
        return [new]
    old = keys[request.signer_kid]
    until = max(new.valid_from, now) + overlap
    if old.valid_until is not None:
        until = min(until, old.valid_until)
    retired = KeyRecord(
        country=old.country,
        kid=old.kid,
        public_key=old.public_key,
        valid_from=old.valid_from,
        valid_until=max(until, old.valid_from + 1),
        status="retired",
    )
    return [new, retired]


def revoked_record(key: KeyRecord, compromised_at: int, reason: str | None) -> KeyRecord:
    """Return ``key`` marked revoked from ``compromised_at``."""
    return KeyRecord(
        country=key.country,
        kid=key.kid,
        public_key=key.public_key,
        valid_from=key.valid_from,
        valid_until=key.valid_until,
        status="revoked",
        compromised_at=compromised_at,
        reason=reason,
    )


def describe_request(request: KeyRequest) -> dict[str, object]:
    """Return the audit-log details of a key request."""
    detail: dict[str, object] = {
        "action": request.action,
        "country": request.country,
        "signer": request.signer_kid.hex(),
    }
    if request.public_key is not None:
        detail["new_kid"] = key_id(request.public_key).hex()
    if request.kid is not None:
        detail["kid"] = request.kid.hex()
        detail["reason"] = request.reason
    return detail
