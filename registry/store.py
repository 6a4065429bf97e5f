"""The registry's SQLite database: the log, publications, roots, key requests, tokens, audit.

Synchronous on purpose: the registry is written by one operator at a time, the CLI uses it
directly, and the HTTP server calls it through :func:`asyncio.to_thread` under one lock. Every
change and its audit row are written in the same transaction, so nothing is changed without
a record of who did it. The signed bytes (snapshots, deltas, heads, roots, requests) are
stored exactly as signed and served byte for byte.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from permitnet.registry.audit import AuditRow, append_audit, audit_rows, verify_audit
from permitnet.registry.errors import NotFoundError, StorageError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from permitnet.protocol.registry_publish import Publication

__all__ = ["AuditRow", "KeyRequestRow", "RegistryStore"]

SCHEMA_VERSION: Final = 1
_SCHEMA: Final = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE log (
    idx INTEGER PRIMARY KEY,
    record BLOB NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE TABLE publications (
    version INTEGER PRIMARY KEY,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    log_size INTEGER NOT NULL,
    log_root BLOB NOT NULL,
    snapshot BLOB,
    delta BLOB,
    head BLOB NOT NULL
);
CREATE TABLE roots (version INTEGER PRIMARY KEY, raw BLOB NOT NULL);
CREATE TABLE key_requests (
    id INTEGER PRIMARY KEY,
    raw BLOB NOT NULL,
    action TEXT NOT NULL,
    country TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    decided_at INTEGER,
    decided_by TEXT
);
CREATE TABLE tokens (
    name TEXT PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    hash BLOB NOT NULL
);
"""


_SCHEMA_MARK: Final = "INSERT INTO meta VALUES ('schema', '1');"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRequestRow:
    """A key request as received, with its decision."""

    id: int
    raw: bytes
    action: str
    country: str
    received_at: int
    status: str
    decided_at: int | None
    decided_by: str | None


class RegistryStore:
    """One open registry database."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    @classmethod
    def create(cls, path: Path) -> RegistryStore:
        """Create a new registry database at ``path``.

        Raises:
            StorageError: it already exists or cannot be created.
        """
        if path.exists():
            raise StorageError(f"{path} already exists: refusing to overwrite a registry")
        store = cls(cls._connect(path))
        # executescript commits on its own, so the schema carries its own transaction.
        store._db.executescript("BEGIN;" + _SCHEMA + _SCHEMA_MARK + "COMMIT;")
        return store

    @classmethod
    def open(cls, path: Path) -> RegistryStore:
        """Open an existing registry database.

        Raises:
            StorageError: it does not exist, is not a registry, or has another schema.
        """
        if not path.is_file():
            raise StorageError(f"{path} does not exist: run 'permitnet registry init' first")
        store = cls(cls._connect(path))
        try:
            row = store._db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        except sqlite3.DatabaseError as e:
            raise StorageError(f"{path} is not a registry database: {e}") from e
        if row is None or row[0] != str(SCHEMA_VERSION):
            raise StorageError(f"{path} has schema {row and row[0]!r}, expected {SCHEMA_VERSION}")
        return store

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as e:
            raise StorageError(f"cannot open {path}: {e}") from e
        return db

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def transaction(self) -> _Transaction:
        """Return a context manager for one IMMEDIATE transaction."""
        return _Transaction(self._db)

    # ------------------------------------------------------------------ meta and audit

    def get_meta(self, name: str) -> str | None:
        """Return a setting, or None."""
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, db: sqlite3.Connection, name: str, value: str) -> None:
        """Set a setting inside a transaction."""
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def audit(
        self, db: sqlite3.Connection, *, at: int, actor: str, action: str, detail: dict[str, object]
    ) -> None:
        """Write a hash-chained audit row inside the transaction of the change it records."""
        append_audit(db, at=at, actor=actor, action=action, detail=detail)

    def audit_rows(self, limit: int = 100) -> list[AuditRow]:
        """Return the latest audit rows, newest first."""
        return audit_rows(self._db, limit)

    def verify_audit(self) -> int:
        """Check the audit log's hash chain; return the number of rows.

        Raises:
            StorageError: a row was edited, deleted or reordered.
        """
        return verify_audit(self._db)

    # ------------------------------------------------------------------ the log

    def records(self) -> list[bytes]:
        """Return every log leaf, in log order."""
        return [bytes(r[0]) for r in self._db.execute("SELECT record FROM log ORDER BY idx")]

    def record(self, index: int) -> bytes:
        """Return log leaf ``index``.

        Raises:
            NotFoundError: no such leaf.
        """
        row = self._db.execute("SELECT record FROM log WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise NotFoundError(f"no log record {index}")
        return bytes(row[0])

    def records_from(self, start: int, end: int) -> list[bytes]:
        """Return log leaves ``start`` (inclusive) to ``end`` (exclusive), in order."""
        rows = self._db.execute(
            "SELECT record FROM log WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
        )
        return [bytes(r[0]) for r in rows]

    def log_size(self) -> int:
        """Return how many leaves the log holds."""
        return int(self._db.execute("SELECT count(*) FROM log").fetchone()[0])

    def append(self, db: sqlite3.Connection, records: Sequence[bytes], at: int) -> None:
        """Append leaves to the log inside a transaction."""
        start = int(db.execute("SELECT count(*) FROM log").fetchone()[0])
        db.executemany(
            "INSERT INTO log (idx, record, recorded_at) VALUES (?, ?, ?)",
            [(start + i, r, at) for i, r in enumerate(records)],
        )

    # ------------------------------------------------------------------ publications

    def add_publication(self, db: sqlite3.Connection, publication: Publication) -> None:
        """Store one publication's signed bytes inside a transaction."""
        db.execute(
            "INSERT INTO publications VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                publication.version,
                publication.issued_at,
                publication.expires_at,
                publication.log_size,
                publication.log_root,
                publication.snapshot,
                publication.delta,
                publication.head,
            ),
        )

    def prune_snapshots(self, db: sqlite3.Connection, keep_from: int) -> None:
        """Drop the full snapshot bytes of versions before ``keep_from`` inside a transaction.

        Their records stay in the log and their deltas and heads stay stored: an old full
        snapshot is only the log prefix of its head, so nothing is lost, while a registry
        that publishes daily does not store megabytes a day.
        """
        db.execute("UPDATE publications SET snapshot = NULL WHERE version < ?", (keep_from,))

    def latest_version(self) -> int | None:
        """Return the newest publication's version, or None before the first."""
        row = self._db.execute("SELECT max(version) FROM publications").fetchone()
        return None if row[0] is None else int(row[0])

    def publication_head(self, version: int) -> tuple[int, bytes]:
        """Return (log size, log root) of publication ``version``.

        Raises:
            NotFoundError: no such version.
        """
        row = self._db.execute(
            "SELECT log_size, log_root FROM publications WHERE version = ?", (version,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no snapshot version {version}")
        return int(row[0]), bytes(row[1])

    def published_sizes(self, *, since_version: int = 1) -> list[int]:
        """Return the distinct log sizes of publications from ``since_version`` on, ascending."""
        rows = self._db.execute(
            "SELECT DISTINCT log_size FROM publications WHERE version >= ? ORDER BY log_size",
            (since_version,),
        )
        return [int(r[0]) for r in rows]

    def artefact(self, column: str, version: int) -> bytes:
        """Return the signed snapshot, delta or head of ``version``.

        Raises:
            NotFoundError: no such version (or no delta for version 1).
        """
        if column not in ("snapshot", "delta", "head"):
            raise ValueError(column)
        row = self._db.execute(
            f"SELECT {column} FROM publications WHERE version = ?",  # noqa: S608 - allow-listed
            (version,),
        ).fetchone()
        if row is None or row[0] is None:
            if row is not None and column == "snapshot":
                raise NotFoundError(
                    f"the full snapshot of version {version} is no longer kept: fetch the "
                    "latest snapshot (its log holds every record since the start)"
                )
            raise NotFoundError(f"no {column} for version {version}")
        return bytes(row[0])

    def deltas_since(self, version: int) -> list[bytes]:
        """Return the signed deltas that lead from ``version`` to the latest, in order."""
        rows = self._db.execute(
            "SELECT delta FROM publications WHERE version > ? ORDER BY version", (version,)
        )
        return [bytes(r[0]) for r in rows]

    # ------------------------------------------------------------------ roots

    def add_root(self, db: sqlite3.Connection, version: int, raw: bytes) -> None:
        """Store a signed root inside a transaction."""
        db.execute("INSERT INTO roots VALUES (?, ?)", (version, raw))

    def root(self, version: int | None = None) -> bytes:
        """Return the signed root ``version`` (default: the newest).

        Raises:
            NotFoundError: no such root.
        """
        if version is None:
            row = self._db.execute("SELECT raw FROM roots ORDER BY version DESC LIMIT 1").fetchone()
        else:
            row = self._db.execute("SELECT raw FROM roots WHERE version = ?", (version,)).fetchone()
        if row is None:
            raise NotFoundError(f"no root version {version}")
        return bytes(row[0])

    def root_versions(self) -> list[int]:
        """Return every root version, ascending."""
        return [int(r[0]) for r in self._db.execute("SELECT version FROM roots ORDER BY version")]

    # ------------------------------------------------------------------ key requests

    def add_request(
        self, db: sqlite3.Connection, *, raw: bytes, action: str, country: str, at: int
    ) -> int:
        """Store a received key request inside a transaction; return its id."""
        cursor = db.execute(
            "INSERT INTO key_requests (raw, action, country, received_at) VALUES (?, ?, ?, ?)",
            (raw, action, country, at),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def request(self, request_id: int) -> KeyRequestRow:
        """Return key request ``request_id``.

        Raises:
            NotFoundError: no such request.
        """
        rows = self._requests("WHERE id = ?", (request_id,))
        if not rows:
            raise NotFoundError(f"no key request {request_id}")
        return rows[0]

    def requests(self, status: str | None = None) -> list[KeyRequestRow]:
        """Return the key requests, optionally only those with ``status``."""
        if status is None:
            return self._requests("", ())
        return self._requests("WHERE status = ?", (status,))

    def count_requests(self, status: str) -> int:
        """Return how many key requests have ``status``, without reading them."""
        (count,) = self._db.execute(
            "SELECT count(*) FROM key_requests WHERE status = ?", (status,)
        ).fetchone()
        return int(count)

    def _requests(self, where: str, args: tuple[object, ...]) -> list[KeyRequestRow]:
        # ``where`` is one of two fixed fragments above, never user text.
        columns = "id, raw, action, country, received_at, status, decided_at, decided_by"
        query = f"SELECT {columns} FROM key_requests {where} ORDER BY id"  # noqa: S608
        rows = self._db.execute(query, args).fetchall()
        return [
            KeyRequestRow(
                id=r[0],
                raw=bytes(r[1]),
                action=r[2],
                country=r[3],
                received_at=r[4],
                status=r[5],
                decided_at=r[6],
                decided_by=r[7],
            )
            for r in rows
        ]

    def decide_request(
        self, db: sqlite3.Connection, request_id: int, status: str, actor: str, at: int
    ) -> None:
        """Record the decision on a key request inside a transaction."""
        db.execute(
            "UPDATE key_requests SET status = ?, decided_at = ?, decided_by = ? WHERE id = ?",
            (status, at, actor, request_id),
        )

    # ------------------------------------------------------------------ tokens

    def add_token(self, db: sqlite3.Connection, name: str, token_hash: bytes, at: int) -> None:
        """Store a token's hash inside a transaction."""
        db.execute(
            "INSERT INTO tokens (name, hash, created_at) VALUES (?, ?, ?)", (name, token_hash, at)
        )

    def token_name(self, token_hash: bytes) -> str | None:
        """Return the name of the unrevoked token with ``token_hash``, or None."""
        row = self._db.execute(
            "SELECT name FROM tokens WHERE hash = ? AND revoked_at IS NULL", (token_hash,)
        ).fetchone()
        return None if row is None else str(row[0])

    def token_names(self) -> list[tuple[str, int, int | None]]:
        """Return (name, created_at, revoked_at) of every token."""
        return [
            (str(r[0]), int(r[1]), r[2])
            for r in self._db.execute(
                "SELECT name, created_at, revoked_at FROM tokens ORDER BY name"
            )
        ]

    def revoke_token(self, db: sqlite3.Connection, name: str, at: int) -> bool:
        """Revoke token ``name`` inside a transaction; return whether it existed unrevoked."""
        cursor = db.execute(
            "UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (at, name)
        )
        return cursor.rowcount == 1


class _Transaction:
    """``with store.transaction() as db:`` - BEGIN IMMEDIATE, COMMIT, or ROLLBACK on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise StorageError(f"cannot start a transaction: {e}") from e
        return self._db

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                self._db.execute("ROLLBACK")
                raise StorageError(f"cannot commit: {e}") from e
        else:
            self._db.execute("ROLLBACK")
