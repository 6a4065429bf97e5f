"""Admin API bearer tokens: created, revoked, checked; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets

from permitnet.registry.base import RegistryBase
from permitnet.registry.errors import ConflictError, NotFoundError, UnauthorizedError

__all__ = ["TokenOperations"]


class TokenOperations(RegistryBase):
    """Admin tokens, each audited under the operator who made or revoked it."""

    def add_token(self, name: str, *, actor: str, now: int) -> str:
        """Create an admin bearer token; only its SHA-256 is stored. Return it (shown once).

        Raises:
            ConflictError: a token with this name exists.
        """
        token = secrets.token_urlsafe(32)
        with self._audited(actor, now, "add-token", {"name": name}):
            if any(n == name for n, _, _ in self.store.token_names()):
                raise ConflictError(f"a token named {name!r} exists")
            with self.store.transaction() as db:
                self.store.add_token(db, name, _token_hash(token), now)
                self.store.audit(db, at=now, actor=actor, action="add-token", detail={"name": name})
        return token

    def revoke_token(self, name: str, *, actor: str, now: int) -> None:
        """Revoke an admin token.

        Raises:
            NotFoundError: no unrevoked token with this name.
        """
        with (
            self._audited(actor, now, "revoke-token", {"name": name}),
            self.store.transaction() as db,
        ):
            if not self.store.revoke_token(db, name, now):
                raise NotFoundError(f"no active token named {name!r}")
            self.store.audit(db, at=now, actor=actor, action="revoke-token", detail={"name": name})

    def authenticate(self, token: str) -> str:
        """Return the name of the admin token, as the actor for the audit log.

        Raises:
            UnauthorizedError: unknown or revoked token.
        """
        name = self.store.token_name(_token_hash(token))
        if name is None:
            raise UnauthorizedError("unknown or revoked admin token")
        return f"token:{name}"


def _token_hash(token: str) -> bytes:
    # Tokens are 256 random bits, so one SHA-256 suffices: no dictionary to slow down.
    return hashlib.sha256(token.encode()).digest()
