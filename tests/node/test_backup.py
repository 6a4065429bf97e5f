"""Online backup and restore of a node database (node/backup.py)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import TYPE_CHECKING

import pytest

from permitnet.node.backup import BackupError, backup_database, check_database, restore_database

if TYPE_CHECKING:
    from pathlib import Path


def _make_db(path: Path, rows: int) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE documents (id INTEGER PRIMARY KEY, signed BLOB NOT NULL)")
    connection.executemany(
        "INSERT INTO documents (signed) VALUES (?)", [(os.urandom(1500),) for _ in range(rows)]
    )
    connection.close()


class _Writer(threading.Thread):
    """Commits one row per transaction until stopped; records each id once its commit returned."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.acknowledged: list[int] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            connection = sqlite3.connect(self.path, isolation_level=None, timeout=10)
            connection.execute("PRAGMA synchronous=NORMAL")
            deadline = time.monotonic() + 30
            while not self.stop.is_set() and time.monotonic() < deadline:
                cursor = connection.execute(
                    "INSERT INTO documents (signed) VALUES (?)", (os.urandom(1500),)
                )
                assert cursor.lastrowid is not None
                self.acknowledged.append(cursor.lastrowid)
            connection.close()
        except BaseException as e:  # surfaced by the test after join()
            self.error = e


def test_backup_under_load_restores_every_acknowledged_row(tmp_path: Path) -> None:
    database = tmp_path / "node.sqlite"
    _make_db(database, rows=3000)
    writer = _Writer(database)
    writer.start()
    # Wait (bounded) until the writer is really committing before the backup starts.
    deadline = time.monotonic() + 10
    while len(writer.acknowledged) < 200 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(writer.acknowledged) >= 200, "the writer never got going"
    acknowledged_before = list(writer.acknowledged)
    reports: list[tuple[int, int]] = []
    result = backup_database(
        database,
        tmp_path / "backup.sqlite",
        pages_per_step=8,
        progress=lambda done, total: reports.append((done, total)),
    )
    acknowledged_during = len(writer.acknowledged) - len(acknowledged_before)
    writer.stop.set()
    writer.join(timeout=30)
    assert writer.error is None
    # The writer kept committing while the backup ran: the backup blocked nobody.
    assert acknowledged_during > 0
    assert len(reports) > 1
    assert reports[-1][0] == reports[-1][1] == result.pages

    restored = tmp_path / "restored" / "node.sqlite"
    restore_database(result.path, restored)
    connection = sqlite3.connect(restored)
    ids = {row[0] for row in connection.execute("SELECT id FROM documents")}
    connection.close()
    missing = [i for i in acknowledged_before if i not in ids]
    assert missing == []
    # One consistent snapshot: the ids are exactly 1..n with no hole.
    assert ids == set(range(1, max(ids) + 1))


def test_backup_result_names_file_size_and_digest(tmp_path: Path) -> None:
    import hashlib

    database = tmp_path / "node.sqlite"
    _make_db(database, rows=10)
    result = backup_database(database, tmp_path / "b.sqlite")
    data = result.path.read_bytes()
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert not (tmp_path / ".b.sqlite.partial").exists()
    check_database(result.path)


def test_restore_removes_stale_wal_of_the_old_database(tmp_path: Path) -> None:
    database = tmp_path / "node.sqlite"
    _make_db(database, rows=5)
    backup = backup_database(database, tmp_path / "b.sqlite").path
    # The old database moves on after the backup; its WAL must not leak into the restore.
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("INSERT INTO documents (signed) VALUES (x'00')")
    stale = (tmp_path / "node.sqlite-wal").read_bytes()
    connection.close()
    (tmp_path / "node.sqlite-wal").write_bytes(stale)
    restore_database(backup, database)
    assert not (tmp_path / "node.sqlite-wal").exists()
    connection = sqlite3.connect(database)
    assert connection.execute("SELECT count(*) FROM documents").fetchone() == (5,)
    connection.close()


def _not_sqlite(tmp_path: Path) -> Path:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    return path


def _truncated(tmp_path: Path) -> Path:
    database = tmp_path / "node.sqlite"
    _make_db(database, rows=200)
    backup = backup_database(database, tmp_path / "b.sqlite").path
    data = backup.read_bytes()
    backup.write_bytes(data[: len(data) // 2])
    return backup


def _corrupted(tmp_path: Path) -> Path:
    database = tmp_path / "node.sqlite"
    _make_db(database, rows=200)
    backup = backup_database(database, tmp_path / "b.sqlite").path
    data = bytearray(backup.read_bytes())
    for offset in range(4096 * 2, len(data), 4096):
        data[offset : offset + 16] = b"\xff" * 16
    backup.write_bytes(bytes(data))
    return backup


BAD_BACKUPS = [
    ("missing", lambda p: p / "absent.sqlite", "no file"),
    ("not sqlite", _not_sqlite, "not a usable SQLite database"),
    ("truncated", _truncated, "b.sqlite"),
    ("corrupted pages", _corrupted, "b.sqlite"),
]


@pytest.mark.parametrize(
    ("name", "make", "message"), BAD_BACKUPS, ids=[case[0] for case in BAD_BACKUPS]
)
def test_restore_refuses_bad_backups(tmp_path: Path, name: str, make: object, message: str) -> None:
    assert callable(make)
    backup = make(tmp_path)
    target = tmp_path / "target" / "node.sqlite"
    target.parent.mkdir()
    target.write_bytes(b"the live database stays untouched")
    with pytest.raises(BackupError, match=message):
        restore_database(backup, target)
    assert target.read_bytes() == b"the live database stays untouched", name
    assert not (target.parent / ".node.sqlite.restoring").exists()


def test_backup_refuses_bad_arguments(tmp_path: Path) -> None:
    database = tmp_path / "node.sqlite"
    _make_db(database, rows=1)
    existing = tmp_path / "existing.sqlite"
    existing.write_bytes(b"keep")
    cases = [
        ("missing source", tmp_path / "nope.sqlite", tmp_path / "x.sqlite", {}, "no database"),
        ("destination exists", database, existing, {}, "exists"),
        ("onto itself", database, database, {"overwrite": True}, "cannot be written over"),
        ("zero pages", database, tmp_path / "y.sqlite", {"pages_per_step": 0}, "at least 1"),
        ("not sqlite", _not_sqlite(tmp_path), tmp_path / "z.sqlite", {}, "failed"),
    ]
    for name, source, destination, options, message in cases:
        with pytest.raises(BackupError, match=message):
            backup_database(source, destination, **options)  # type: ignore[arg-type]
        assert existing.read_bytes() == b"keep", name
    backup_database(database, existing, overwrite=True)
    check_database(existing)
