"""Key requests and revocations: what countries ask for and the operator decides."""

from __future__ import annotations

from typing import TYPE_CHECKING

from permitnet.protocol.registry_records import encode_record
from permitnet.protocol.registry_requests import verify_key_request
from permitnet.protocol.registry_view import fold
from permitnet.registry.base import RegistryBase
from permitnet.registry.errors import ConflictError, NotFoundError
from permitnet.registry.key_changes import describe_request, key_records_for, revoked_record

if TYPE_CHECKING:
    from permitnet.protocol.registry_records import KeyRecord
    from permitnet.registry.store import KeyRequestRow

__all__ = ["KeyOperations"]


class KeyOperations(RegistryBase):
    """Receiving, approving and rejecting key requests; revoking keys."""

    def submit_key_request(self, raw: bytes, *, actor: str, now: int) -> KeyRequestRow:
        """Verify and store a key request for the operator's decision.

        Raises:
            RegistryError: the request is malformed or not signed as its action requires.
        """
        with self._audited(actor, now, "submit-key-request", {"bytes": len(raw)}):
            request = verify_key_request(raw, self.state.keys)
            if request.country not in self.state.countries:
                raise NotFoundError(f"{request.country} is not a registered country")
            with self.store.transaction() as db:
                request_id = self.store.add_request(
                    db, raw=raw, action=request.action, country=request.country, at=now
                )
                self.store.audit(
                    db,
                    at=now,
                    actor=actor,
                    action="submit-key-request",
                    detail={"id": request_id, **describe_request(request)},
                )
            return self.store.request(request_id)

    def approve_key_request(
        self,
        request_id: int,
        *,
        fingerprint: str | None,
        overlap_seconds: int,
        actor: str,
        now: int,
    ) -> list[KeyRecord]:
        """Apply a pending key request after out-of-band confirmation.

        Args:
            request_id: the stored request.
            fingerprint: the new key's kid in hex, as confirmed with the country out of
                band; required for an enrollment.
            overlap_seconds: how long a rotated-out key stays valid after the new key starts.
            actor: who approves.
            now: the clock.

        Raises:
            NotFoundError: no such request.
            ConflictError: not pending, or the key already exists.
            OperationError: the fingerprint is missing or does not match.
            RegistryError: the request no longer verifies against the current keys.
        """
        with self._audited(actor, now, "approve-key-request", {"id": request_id}):
            # Decided inside the write transaction: no other process can decide the request or
            # change the keys between the checks and the write.
            with self.store.transaction() as db:
                self._catch_up()
                row = self.store.request(request_id)
                if row.status != "pending":
                    raise ConflictError(f"key request {request_id} is already {row.status}")
                request = verify_key_request(row.raw, self.state.keys)
                records = key_records_for(
                    self.state.keys, request, fingerprint, overlap_seconds, now
                )
                state = fold(records, self.state)
                self.store.append(db, [encode_record(r) for r in records], now)
                self.store.decide_request(db, request_id, "approved", actor, now)
                self.store.audit(
                    db,
                    at=now,
                    actor=actor,
                    action="approve-key-request",
                    detail={"id": request_id, **describe_request(request)},
                )
            self._folded_as(state, len(records))
            return records

    def reject_key_request(self, request_id: int, *, reason: str, actor: str, now: int) -> None:
        """Reject a pending key request.

        Raises:
            NotFoundError: no such request.
            ConflictError: not pending.
        """
        with (
            self._audited(actor, now, "reject-key-request", {"id": request_id}),
            self.store.transaction() as db,
        ):
            row = self.store.request(request_id)
            if row.status != "pending":
                raise ConflictError(f"key request {request_id} is already {row.status}")
            self.store.decide_request(db, request_id, "rejected", actor, now)
            self.store.audit(
                db,
                at=now,
                actor=actor,
                action="reject-key-request",
                detail={"id": request_id, "reason": reason},
            )

    def revoke_key(
        self, kid: bytes, *, compromised_at: int, reason: str, actor: str, now: int
    ) -> KeyRecord:
        """Revoke any key as the operator.

        Raises:
            NotFoundError: no such key.
            RecordError: no reason given.
        """
        detail: dict[str, object] = {
            "kid": kid.hex(),
            "compromised_at": compromised_at,
            "reason": reason,
        }
        with self._audited(actor, now, "revoke-key", detail):
            key = self.state.keys.get(kid)
            if key is None:
                raise NotFoundError(f"no key {kid.hex()}")
            record = revoked_record(key, compromised_at, reason)
            self._commit([record], actor=actor, now=now, action="revoke-key", detail=detail)
            return record
