"""Why a registry fact, snapshot or root is refused: one subclass of RegistryError per reason.

Callers catch :class:`~permitnet.protocol.errors.RegistryError` for all of them; the subclass
names the attack or the fault, so that a node can log and show it precisely.
"""

from __future__ import annotations

from permitnet.protocol.errors import RegistryError
from permitnet.protocol.merkle import MerkleProofError

__all__ = [
    "EquivocationError",
    "ExpiredSnapshotError",
    "KeyNotValidError",
    "KeyRevokedError",
    "LogInconsistencyError",
    "MerkleProofError",
    "MixAndMatchError",
    "RecordError",
    "RollbackError",
    "RootError",
    "SignerError",
    "SplitViewError",
    "UnknownKeyError",
    "WrongCountryError",
]


class RecordError(RegistryError):
    """A registry record (country, key, estimate) with a missing or invalid field."""


class RootError(RegistryError):
    """Root metadata that is malformed, under-signed, or not the next version."""


class SignerError(RegistryError):
    """A document or snapshot whose signing key is not acceptable."""

    status_hint = 403


class UnknownKeyError(SignerError):
    """A key identifier the registry does not list."""


class WrongCountryError(SignerError):
    """A key listed for another country than the document's issuer."""


class KeyNotValidError(SignerError):
    """A key used outside its validity period."""


class KeyRevokedError(SignerError):
    """A key used at or after its compromise time."""


class RollbackError(RegistryError):
    """A snapshot or root older than the one already trusted."""

    status_hint = 409


class EquivocationError(RegistryError):
    """Two different signed snapshots with the same version."""

    status_hint = 409


class ExpiredSnapshotError(RegistryError):
    """A snapshot past its expiry: a freeze attack or a registry that stopped publishing."""

    status_hint = 409


class MixAndMatchError(RegistryError):
    """A delta or snapshot that does not chain to the trusted state (versions, root, log)."""

    status_hint = 409


class LogInconsistencyError(RegistryError):
    """A log that is not an append-only extension of the last accepted head."""

    status_hint = 409


class SplitViewError(LogInconsistencyError):
    """Two registry-signed log heads that cannot both be true: the registry equivocated."""
