"""The registry server's exceptions: one root, each with the HTTP status an API answers with.

Protocol errors (a malformed request, a bad signature) are ``ProtocolError`` subclasses from
``permitnet.protocol`` and keep their own status hints; the admin API maps both.
"""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "NotFoundError",
    "OperationError",
    "RegistryServerError",
    "StorageError",
    "TooManyRequestsError",
    "UnauthorizedError",
]


class RegistryServerError(Exception):
    """Root of every registry server exception."""

    status_hint: int = 500


class StorageError(RegistryServerError):
    """The data directory or its database is missing, unreadable or inconsistent."""


class OperationError(RegistryServerError):
    """An admin operation that cannot be done as asked (the message says why)."""

    status_hint = 400


class NotFoundError(OperationError):
    """No such version, country, key, request or token."""

    status_hint = 404


class ConflictError(OperationError):
    """The operation conflicts with what the registry already holds."""

    status_hint = 409


class TooManyRequestsError(OperationError):
    """Too many anonymous key requests are waiting for a decision."""

    status_hint = 429


class UnauthorizedError(RegistryServerError):
    """A missing, unknown or revoked admin bearer token."""

    status_hint = 401
