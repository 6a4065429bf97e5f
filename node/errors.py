"""The node's exceptions: one root, each with the HTTP status an API answers with.

Every failure that leaves a node module is a :class:`NodeError`. Library errors (sqlite3,
PyNaCl, OS errors reading the configuration) are wrapped with ``raise ... from e``.
"""

from __future__ import annotations

__all__ = [
    "AuditChainError",
    "ConfigError",
    "ConflictError",
    "ForbiddenError",
    "KeystoreError",
    "NodeError",
    "NotFoundError",
    "ReplayError",
    "StoreError",
    "UnauthorizedError",
    "ValidationError",
]


class NodeError(Exception):
    """Root of every permitnet node exception."""

    #: The HTTP status the API answers with when this error reaches a handler.
    status_hint: int = 500
    #: A short, stable, machine-readable code for JSON error bodies.
    code: str = "node_error"


class ConfigError(NodeError):
    """A node directory or configuration file that is missing, unreadable or invalid."""

    code = "config_error"


class KeystoreError(NodeError):
    """A signing key file that cannot be opened: wrong passphrase, tampered or malformed."""

    code = "keystore_error"


class StoreError(NodeError):
    """The database refused an operation or is in an unexpected state."""

    code = "store_error"


class AuditChainError(StoreError):
    """The hash-chained audit log does not verify; the message names the first bad row."""

    code = "audit_chain_broken"

    def __init__(self, seq: int, message: str) -> None:
        super().__init__(f"audit log row {seq}: {message}")
        self.seq = seq


class ValidationError(NodeError):
    """A request or input that is malformed (400)."""

    status_hint = 400
    code = "invalid_request"


class UnauthorizedError(NodeError):
    """Missing or unknown credentials (401)."""

    status_hint = 401
    code = "unauthorized"


class ForbiddenError(NodeError):
    """Known credentials that lack the scope or role for this action (403)."""

    status_hint = 403
    code = "forbidden"


class NotFoundError(NodeError):
    """No such document, draft, alert or token (404)."""

    status_hint = 404
    code = "not_found"


class ConflictError(NodeError):
    """The request conflicts with the current state (409)."""

    status_hint = 409
    code = "conflict"


class ReplayError(ConflictError):
    """A nonce that was already seen: the request is a replay."""

    code = "replay"
