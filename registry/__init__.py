"""The INCB registry: country keys, endpoints, estimates and assessments as signed snapshots.

The data directory and its operations (:class:`Registry`), the HTTP server
(:func:`create_app`), and the static export (:func:`export`). The formats and the client
that verifies them live in ``permitnet.protocol`` (``registry_*`` and ``merkle``).
"""

from permitnet.registry.app import RegistryConfig, create_app
from permitnet.registry.errors import (
    ConflictError,
    NotFoundError,
    OperationError,
    RegistryServerError,
    StorageError,
    UnauthorizedError,
)
from permitnet.registry.export import export
from permitnet.registry.service import Registry

__all__ = [
    "ConflictError",
    "NotFoundError",
    "OperationError",
    "Registry",
    "RegistryConfig",
    "RegistryServerError",
    "StorageError",
    "UnauthorizedError",
    "create_app",
    "export",
]
