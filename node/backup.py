"""Consistent online backup of a node's SQLite database, and restore.

A backup is taken with SQLite's online backup API while the node keeps running. The source
connection first opens a read transaction and holds it for the whole copy: in WAL mode that pins
one snapshot of the database, so every page copied belongs to the same committed state, writers
are never blocked, and the copy is never restarted by concurrent commits (which would happen if
each backup step took a fresh read lock). Everything committed before the backup began (every
document the node has acknowledged by then) is in the copy; nothing half-written is.

The copy is written beside the destination under a temporary name, checked with
``PRAGMA integrity_check``, flushed to disk and renamed into place, so a crash never leaves a
truncated file under the backup's name.

Restore is the reverse, for a stopped node: the backup is checked, copied beside the live
database, and renamed over it; stale ``-wal`` and ``-shm`` files of the old database are
removed first so that SQLite cannot replay them onto the restored pages.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from permitnet.node.errors import StoreError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "BackupError",
    "BackupResult",
    "Progress",
    "backup_database",
    "check_database",
    "restore_database",
]

#: Pages copied per backup step; with the default 4 KiB page, 1 MiB between progress reports.
PAGES_PER_STEP: Final = 256
_SIDE_FILES: Final = ("-wal", "-shm", "-journal")

#: Called after each step with (pages copied so far, total pages).
Progress = Callable[[int, int], None]


class BackupError(StoreError):
    """A backup or restore that could not be made, or a backup file that fails its checks."""

    code = "backup_error"


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupResult:
    """What a backup or restore wrote.

    Attributes:
        path: the file written.
        pages: the number of database pages copied.
        size: the file's size in bytes.
        sha256: lowercase hex SHA-256 of the file, to record beside an off-site copy.
    """

    path: Path
    pages: int
    size: int
    sha256: str


def backup_database(
    source: Path,
    destination: Path,
    *,
    progress: Progress | None = None,
    pages_per_step: int = PAGES_PER_STEP,
    overwrite: bool = False,
) -> BackupResult:
    """Copy a live SQLite database to ``destination`` as one consistent snapshot.

    Args:
        source: the node's database file; the node may be running and writing to it.
        destination: the backup file to create.
        progress: called with (pages copied, total pages) after each step.
        pages_per_step: pages copied per step (between progress reports).
        overwrite: replace ``destination`` if it exists.

    Returns:
        The file written, its page count, size and SHA-256.

    Raises:
        BackupError: the source is missing or not a SQLite database, the destination exists
            and ``overwrite`` is false, or the copy fails its integrity check.
    """
    if pages_per_step < 1:
        raise BackupError("pages_per_step must be at least 1")
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    if destination.exists() and not overwrite:
        raise BackupError(f"{destination} exists; choose another name or allow overwriting")
    if destination.resolve() == source.resolve():
        raise BackupError("the backup cannot be written over the database it copies")
    temporary = destination.with_name(f".{destination.name}.partial")
    _remove_quietly(temporary)
    pages = 0
    try:
        src = sqlite3.connect(source, isolation_level=None)
        try:
            # The read transaction pins one WAL snapshot for the whole copy (see module doc).
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
            dst = sqlite3.connect(temporary)
            try:

                def step(_status: int, remaining: int, total: int) -> None:
                    nonlocal pages
                    pages = total
                    if progress is not None:
                        progress(total - remaining, total)

                src.backup(dst, pages=pages_per_step, progress=step)
                # A backup is a single self-contained file: no WAL beside it.
                dst.execute("PRAGMA journal_mode=DELETE")
            finally:
                dst.close()
            src.execute("COMMIT")
        finally:
            src.close()
        _check(temporary)
        _fsync(temporary)
        temporary.replace(destination)
        _fsync_directory(destination.parent)
    except sqlite3.Error as e:
        _remove_quietly(temporary)
        raise BackupError(f"backup of {source} failed: {e}") from e
    except BaseException:
        _remove_quietly(temporary)
        raise
    return _result(destination, pages)


def check_database(path: Path) -> None:
    """Check that ``path`` is an intact SQLite database.

    Raises:
        BackupError: the file is missing, not a SQLite database, or fails
            ``PRAGMA integrity_check``.
    """
    if not path.is_file():
        raise BackupError(f"no file at {path}")
    try:
        _check(path)
    except sqlite3.Error as e:
        raise BackupError(f"{path} is not a usable SQLite database: {e}") from e


def restore_database(
    backup: Path,
    target: Path,
    *,
    progress: Progress | None = None,
    pages_per_step: int = PAGES_PER_STEP,
) -> BackupResult:
    """Replace the database at ``target`` with the contents of ``backup``.

    The node that owns ``target`` must be stopped: restoring under a running node would pull
    the database out from under its open connections.

    Args:
        backup: a file written by :func:`backup_database`.
        target: the node's database file (it may or may not exist).
        progress: called with (pages copied, total pages) after each step.
        pages_per_step: pages copied per step.

    Returns:
        The restored database file, its page count, size and SHA-256.

    Raises:
        BackupError: the backup is missing, damaged or not a SQLite database, or the copy fails.
    """
    check_database(backup)
    if target.exists() and target.resolve() == backup.resolve():
        raise BackupError("the backup and the target are the same file")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.restoring")
    _remove_quietly(temporary)
    pages = 0
    try:
        src = sqlite3.connect(f"{backup.resolve().as_uri()}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(temporary)
            try:

                def step(_status: int, remaining: int, total: int) -> None:
                    nonlocal pages
                    pages = total
                    if progress is not None:
                        progress(total - remaining, total)

                src.backup(dst, pages=pages_per_step, progress=step)
            finally:
                dst.close()
        finally:
            src.close()
        _check(temporary)
        _fsync(temporary)
        # Stale WAL pages of the old database must never be replayed onto the restored one.
        for suffix in _SIDE_FILES:
            _remove_quietly(target.with_name(target.name + suffix))
        temporary.replace(target)
        _fsync_directory(target.parent)
    except sqlite3.Error as e:
        _remove_quietly(temporary)
        raise BackupError(f"restore of {backup} failed: {e}") from e
    except BaseException:
        _remove_quietly(temporary)
        raise
    return _result(target, pages)


def _check(path: Path) -> None:
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = connection.execute("PRAGMA integrity_check").fetchall()
    finally:
        connection.close()
    if rows != [("ok",)]:
        problems = "; ".join(str(row[0]) for row in rows[:3])
        raise BackupError(f"{path} fails its integrity check: {problems}")


def _result(path: Path, pages: int) -> BackupResult:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return BackupResult(path=path, pages=pages, size=path.stat().st_size, sha256=digest.hexdigest())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path: Path) -> None:
    # Makes the rename durable; not every platform can open a directory, which is harmless.
    with contextlib.suppress(OSError):
        _fsync(path)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
