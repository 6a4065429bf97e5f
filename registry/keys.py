"""Key files: a 32-byte Ed25519 seed as one line of hex, readable by the owner only."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from permitnet.registry.errors import StorageError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["read_seed", "write_seed"]


def write_seed(path: Path, seed: bytes) -> None:
    """Write ``seed`` to a new file with mode 0600.

    Raises:
        StorageError: the file exists or cannot be written.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise StorageError(f"cannot create key file {path}: {e}") from e
    with os.fdopen(fd, "w") as f:
        f.write(seed.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_seed(path: Path) -> bytes:
    """Read a seed written by :func:`write_seed`.

    Raises:
        StorageError: missing, unreadable, or not 64 hex digits.
    """
    try:
        text = path.read_text(encoding="ascii").strip()
        seed = bytes.fromhex(text)
    except (OSError, ValueError) as e:
        raise StorageError(f"cannot read key file {path}: {e}") from e
    if len(seed) != 32:
        raise StorageError(f"key file {path} does not hold a 32-byte seed")
    return seed
