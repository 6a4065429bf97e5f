"""The registry's audit log: who did what, when, each row hash-chained to the one before.

A row's hash is SHA-256 of the previous row's hash and the row's own fields (deterministic
CBOR), so that editing, deleting or reordering a row breaks every hash after it:
:func:`verify_audit` names the first row that does not check out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from permitnet.protocol.cbor import encode_cbor
from permitnet.registry.errors import StorageError

if TYPE_CHECKING:
    import sqlite3

__all__ = ["GENESIS", "AuditRow", "append_audit", "audit_rows", "verify_audit"]

#: The "previous hash" of the first row.
GENESIS: Final = bytes(32)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRow:
    """One audit log entry: who did what, when."""

    id: int
    at: int
    actor: str
    action: str
    detail: dict[str, object]


def _row_hash(previous: bytes, fields: tuple[int, int, str, str, str]) -> bytes:
    """Hash of the previous row's hash and (id, at, actor, action, detail)."""
    return hashlib.sha256(previous + encode_cbor(list(fields))).digest()


def append_audit(
    db: sqlite3.Connection, *, at: int, actor: str, action: str, detail: dict[str, object]
) -> None:
    """Append a row inside the caller's transaction (so it commits with the change)."""
    last = db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    row_id, previous = (1, GENESIS) if last is None else (int(last[0]) + 1, bytes(last[1]))
    text = json.dumps(detail, sort_keys=True)
    db.execute(
        "INSERT INTO audit (id, at, actor, action, detail, hash) VALUES (?, ?, ?, ?, ?, ?)",
        (row_id, at, actor, action, text, _row_hash(previous, (row_id, at, actor, action, text))),
    )


def audit_rows(db: sqlite3.Connection, limit: int) -> list[AuditRow]:
    """Return the latest ``limit`` rows, newest first."""
    rows = db.execute(
        "SELECT id, at, actor, action, detail FROM audit ORDER BY id DESC LIMIT ?", (limit,)
    ).fetchall()
    return [
        AuditRow(id=r[0], at=r[1], actor=r[2], action=r[3], detail=json.loads(r[4])) for r in rows
    ]


def verify_audit(db: sqlite3.Connection) -> int:
    """Check the whole chain; return the number of rows.

    Raises:
        StorageError: a row was edited, deleted or reordered (the message names it).
    """
    previous, expected_id, count = GENESIS, 1, 0
    for row_id, at, actor, action, detail, stored in db.execute(
        "SELECT id, at, actor, action, detail, hash FROM audit ORDER BY id"
    ):
        if row_id != expected_id:
            raise StorageError(f"audit log: row {expected_id} is missing (next is {row_id})")
        computed = _row_hash(previous, (row_id, at, actor, action, detail))
        if computed != bytes(stored):
            raise StorageError(f"audit log: row {row_id} was altered (its hash does not match)")
        previous, expected_id, count = computed, expected_id + 1, count + 1
    return count
