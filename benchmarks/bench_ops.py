"""Benchmark node operations: online backup, restore, databank export, and writers during backup.

The database is a real node database (the node's own migrations) holding N documents of about
1.5 KB of signed bytes with one item each. Each figure is printed beside the raw limit measured in
the same run, interleaved:

* backup and restore MB/s beside a raw file copy (``shutil.copyfile``) of the same database,
* export documents/s beside a raw ``SELECT`` of the same rows with the stdlib sqlite3,
* commits/s of a writer (one row per transaction, WAL, synchronous=NORMAL) while backups run,
  beside the same writer with no backup running: the backup must not block writers.

Run: .venv/bin/python benchmarks/bench_ops.py          (about 40 s)
     .venv/bin/python benchmarks/bench_ops.py --quick  (a few seconds, smoke run)
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import parse_args

from permitnet.node.backup import backup_database, restore_database
from permitnet.node.databank import export_databank
from permitnet.node.store import Store

NOW = 1_790_000_000


def build_database(path: Path, documents: int) -> None:
    """A node database (real migrations) with ``documents`` documents of ~1.5 KB each."""

    async def migrate() -> None:
        store = await Store.open(path, synchronous="NORMAL")
        await store.close()

    asyncio.run(migrate())
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN")
    docs, items = [], []
    for n in range(documents):
        raw = os.urandom(1500)
        doc_id = hashlib.sha256(raw).hexdigest()
        docs.append(
            (doc_id, raw, "import_certificate", "DE", "FR", NOW + n, "outbound", 1, "active", NOW)
        )
        items.append((doc_id, 0, "morphine", "morphine", 4000, 4000))
    connection.executemany(
        "INSERT INTO documents (id, raw, doc_type, issuer, recipient, issued_at, direction, "
        "electronically_verified, state, stored_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        docs,
    )
    connection.executemany(
        "INSERT INTO document_items (document_id, item_index, substance, base_substance, "
        "quantity_mg, base_mg) VALUES (?,?,?,?,?,?)",
        items,
    )
    connection.execute("COMMIT")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def timed(fn: object) -> float:
    assert callable(fn)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def writer_rate(path: Path, seconds: float, stop: threading.Event | None = None) -> float:
    """Commits per second of one writer inserting one 1.5 KB row per transaction."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE TABLE IF NOT EXISTS bench_writes (id INTEGER PRIMARY KEY, v BLOB)")
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline and not (stop and stop.is_set()):
        connection.execute("INSERT INTO bench_writes (v) VALUES (?)", (os.urandom(1500),))
        count += 1
    elapsed = time.perf_counter() - start
    connection.close()
    return count / elapsed


def main() -> int:
    """Run the benchmark and print the table."""
    args = parse_args(__doc__ or "")
    documents = 3_000 if args.quick else 30_000
    rounds = 2 if args.quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        database = work / "node.sqlite3"
        build_database(database, documents)
        size_mb = database.stat().st_size / 1e6
        print(f"## Node operations ({documents:,} documents, database {size_mb:.1f} MB)")
        print(
            f"{'operation':<40} {'rate':>16}   {'raw limit (same run)':<30} {'rate':>16} "
            f"{'ratio':>6}"
        )
        bench_backup(work, database, size_mb, rounds)
        bench_export(database, documents, rounds)
        bench_writer(work, database, 1.0 if args.quick else 4.0)
    return 0


def bench_backup(work: Path, database: Path, size_mb: float, rounds: int) -> None:
    """Backup and restore MB/s, and SQLite's backup API alone, beside a raw file copy."""
    backup_rates, restore_rates, copy_rates, ratios_b, ratios_r = [], [], [], [], []
    api_rates, api_ratios = [], []
    for i in range(rounds):
        target = work / f"b{i}.sqlite3"
        b = size_mb / timed(lambda t=target: backup_database(database, t))
        c = size_mb / timed(lambda: shutil.copyfile(database, work / "copy.sqlite3"))
        r = size_mb / timed(lambda t=target: restore_database(t, work / "restored.sqlite3"))
        # What the copy alone costs: SQLite's backup API in one step, no check, no fsync.
        a = size_mb / timed(lambda: _raw_backup(database, work / "api.sqlite3"))
        backup_rates.append(b)
        copy_rates.append(c)
        restore_rates.append(r)
        api_rates.append(a)
        ratios_b.append(b / c)
        ratios_r.append(r / c)
        api_ratios.append(a / c)
        target.unlink()
    copy = statistics.median(copy_rates)
    for name, rates, ratios in (
        ("backup_database (online, checked)", backup_rates, ratios_b),
        ("restore_database (checked)", restore_rates, ratios_r),
        ("  of which: sqlite3 backup API alone", api_rates, api_ratios),
    ):
        _row(
            name,
            rate=statistics.median(rates),
            unit="MB/s",
            limit="shutil.copyfile",
            limit_rate=copy,
            ratio=statistics.median(ratios),
        )


def _raw_backup(source_path: Path, target: Path) -> None:
    source, dest = sqlite3.connect(source_path), sqlite3.connect(target)
    source.backup(dest)
    source.close()
    dest.close()
    target.unlink()


def bench_export(database: Path, documents: int, rounds: int) -> None:
    """Databank export documents/s beside a raw SELECT of the same rows."""
    export_rates, select_rates, ratios = [], [], []
    sql = (
        "SELECT d.id, d.doc_type, d.issuer, d.recipient, d.issued_at, i.substance, "
        "i.quantity_mg FROM documents d JOIN document_items i ON i.document_id = d.id"
    )
    for _ in range(rounds):
        e = documents / timed(lambda: export_databank(database, io.StringIO(), fmt="csv", now=NOW))
        connection = sqlite3.connect(database)
        s = documents / timed(lambda c=connection: c.execute(sql).fetchall())
        connection.close()
        export_rates.append(e)
        select_rates.append(s)
        ratios.append(e / s)
    _row(
        "export_databank CSV",
        rate=statistics.median(export_rates),
        unit="docs/s",
        limit="raw sqlite3 SELECT ... JOIN",
        limit_rate=statistics.median(select_rates),
        ratio=statistics.median(ratios),
    )


def bench_writer(work: Path, database: Path, seconds: float) -> None:
    """A writer's commits/s while backups run back to back, beside the same writer alone."""
    alone = writer_rate(database, seconds)
    stop = threading.Event()
    backups = 0

    def keep_backing_up() -> None:
        nonlocal backups
        while not stop.is_set():
            backup_database(database, work / "live.sqlite3", overwrite=True)
            backups += 1

    thread = threading.Thread(target=keep_backing_up)
    thread.start()
    during = writer_rate(database, seconds)
    stop.set()
    thread.join()
    _row(
        f"writer commits during {backups} backups",
        rate=during,
        unit="commits/s",
        limit="same writer, no backup",
        limit_rate=alone,
        ratio=during / alone,
    )


def _row(name: str, *, rate: float, unit: str, limit: str, limit_rate: float, ratio: float) -> None:
    print(
        f"{name:<40} {rate:>10,.0f} {unit:<6}   {limit:<30} {limit_rate:>10,.0f} {unit:<6}"
        f" {ratio:>6.0%}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
