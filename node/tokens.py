"""Bearer tokens for the API used by national IT systems: scoped, stored hashed, revocable.

A token is ``pnt_`` followed by 32 random bytes in URL-safe base64; only its SHA-256 is stored
(the secret has 256 bits of entropy, so a slow password hash adds nothing). Each token acts for
a named actor, which the audit log and the four-eyes rule use. Scopes: ``read`` (query),
``draft`` (prepare documents), ``sign`` (approve and sign drafts, cancel, send messages).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from permitnet.node.errors import ForbiddenError, NotFoundError, UnauthorizedError, ValidationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from permitnet.node.store import Store

__all__ = [
    "SCOPES",
    "ApiToken",
    "authenticate",
    "create_token",
    "list_tokens",
    "require_scope",
    "revoke_token",
]

#: Every scope a token may hold.
SCOPES: Final = frozenset({"read", "draft", "sign"})
_PREFIX: Final = "pnt_"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiToken:
    """A token's public record (never the secret)."""

    id: str
    name: str
    actor: str
    scopes: frozenset[str]
    created_at: int
    revoked_at: int | None = None


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def _parse_scopes(scopes: object) -> frozenset[str]:
    if isinstance(scopes, str):
        scopes = [s.strip() for s in scopes.split(",") if s.strip()]
    if not isinstance(scopes, (list, tuple, set, frozenset)) or not scopes:
        raise ValidationError(f"scopes must be a non-empty list drawn from {sorted(SCOPES)}")
    result = frozenset(str(s) for s in scopes)
    if result - SCOPES:
        raise ValidationError(f"unknown scopes {sorted(result - SCOPES)}; known: {sorted(SCOPES)}")
    return result


async def create_token(
    store: Store, *, name: str, actor: str, scopes: object, created_by: str
) -> tuple[ApiToken, str]:
    """Create a token; return its record and the secret, which is shown once and never stored.

    Raises:
        ValidationError: empty name or actor, or unknown scopes.
    """
    if not name.strip() or not actor.strip():
        raise ValidationError("a token needs a name and the actor it acts for")
    scope_set = _parse_scopes(scopes)
    token_id = secrets.token_hex(8)
    secret = _PREFIX + secrets.token_urlsafe(32)
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT INTO api_tokens (id, name, actor, token_hash, scopes, created_at) "
            "VALUES (?,?,?,?,?,?)",
            (token_id, name, actor, _hash(secret), ",".join(sorted(scope_set)), tx.now),
        )
        await tx.audit(
            created_by,
            "create api token",
            token_id,
            {"name": name, "actor": actor, "scopes": sorted(scope_set)},
        )
        now = tx.now
    token = ApiToken(id=token_id, name=name, actor=actor, scopes=scope_set, created_at=now)
    return token, secret


def _token(row: Sequence[Any]) -> ApiToken:
    return ApiToken(
        id=row[0],
        name=row[1],
        actor=row[2],
        scopes=frozenset(row[3].split(",")),
        created_at=row[4],
        revoked_at=row[5],
    )


async def authenticate(store: Store, authorization: str | None) -> ApiToken:
    """Return the token named by an ``Authorization: Bearer ...`` header value.

    Raises:
        UnauthorizedError: the header is missing or malformed, or the token is unknown or revoked.
    """
    if not authorization:
        raise UnauthorizedError("an Authorization: Bearer token is required")
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.startswith(_PREFIX):
        raise UnauthorizedError("the Authorization header must be 'Bearer pnt_...'")
    rows = await store.query(
        "SELECT id, name, actor, scopes, created_at, revoked_at FROM api_tokens "
        "WHERE token_hash = ?",
        (_hash(secret.strip()),),
    )
    if not rows:
        raise UnauthorizedError("unknown API token")
    token = _token(rows[0])
    if token.revoked_at is not None:
        raise UnauthorizedError("this API token was revoked")
    return token


def require_scope(token: ApiToken, scope: str) -> None:
    """Check that ``token`` holds ``scope``.

    Raises:
        ForbiddenError: it does not.
    """
    if scope not in token.scopes:
        raise ForbiddenError(
            f"token {token.name!r} lacks the {scope!r} scope (it has {sorted(token.scopes)})"
        )


async def list_tokens(store: Store) -> list[ApiToken]:
    """Every token, newest first."""
    async with store.read() as tx:
        rows = await tx.fetchall(
            "SELECT id, name, actor, scopes, created_at, revoked_at FROM api_tokens "
            "ORDER BY created_at DESC, id"
        )
    return [_token(r) for r in rows]


async def revoke_token(store: Store, token_id: str, *, revoked_by: str) -> None:
    """Revoke a token at once.

    Raises:
        NotFoundError: no such token, or it is already revoked.
    """
    async with store.transaction() as tx:
        changed = await tx.execute_rowcount(
            "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (tx.now, token_id),
        )
        if changed != 1:
            raise NotFoundError(f"no active API token {token_id}")
        await tx.audit(revoked_by, "revoke api token", token_id, {})
