"""Online backups of two running nodes while they exchange documents, then restores.

Germany's node issues import certificates in a loop (each ``issue`` returns once the
certificate, its audit row and its outbox row are committed: acknowledged to the official) and
delivers them to France, whose signed receipt acknowledges each one. While that goes on, both
databases are backed up with ``node/backup.py``. Each restored copy must hold every document
acknowledged before its backup began, pass SQLite's integrity check, open with the node's store,
and have an intact audit hash chain (a torn copy would break the chain).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from permitnet.node import audit
from permitnet.node.backup import backup_database, restore_database
from permitnet.node.store import Store
from tests.e2e.conftest import ic_body

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.conftest import Network, RunningNode

MAX_DOCUMENTS = 400
MAX_SECONDS = 40.0


async def _receipted(node: RunningNode, ids: list[str]) -> list[str]:
    return [i for i in ids if await node.delivered(i)]


async def _restored_ids(backup: Path, target: Path) -> set[str]:
    await asyncio.to_thread(restore_database, backup, target)
    store = await Store.open(target)
    try:
        await audit.verify_chain(store)
        async with store.read() as tx:
            rows = await tx.fetchall("SELECT id FROM documents")
    finally:
        await store.close()
    return {r[0] for r in rows}


async def test_backups_taken_under_load_hold_every_acknowledged_document(
    network: Network, tmp_path: Path
) -> None:
    de, fr = await network.start("DE", "FR")
    issued: list[str] = []
    stop = asyncio.Event()

    async def load() -> None:
        deadline = time.monotonic() + MAX_SECONDS
        for n in range(MAX_DOCUMENTS):
            if stop.is_set() or time.monotonic() > deadline:
                return
            record = await de.issue(
                "import_certificate", ic_body(exporting_country="FR", number=f"IC-{n}", mg=10)
            )
            issued.append(record.id)

    loader = asyncio.create_task(load())
    try:
        await network.wait_until(lambda: _enough(issued, 30), within=60)
        await network.wait_until(lambda: _any_receipted(de, issued), within=60)
        # What each node had acknowledged when its backup began.
        acknowledged_de = list(issued)
        acknowledged_fr = await _receipted(de, list(issued))
        de_db = de.data_dir / "node.sqlite3"
        fr_db = fr.data_dir / "node.sqlite3"
        count_before = len(issued)
        de_backup, fr_backup = await asyncio.gather(
            asyncio.to_thread(backup_database, de_db, tmp_path / "de-backup.sqlite3"),
            asyncio.to_thread(backup_database, fr_db, tmp_path / "fr-backup.sqlite3"),
        )
        # The load went on while the backups ran.
        await network.wait_until(lambda: _enough(issued, count_before + 5), within=60)
    finally:
        stop.set()
        await loader
    assert loader.exception() is None

    restored_de = await _restored_ids(de_backup.path, tmp_path / "restored-de" / "node.sqlite3")
    restored_fr = await _restored_ids(fr_backup.path, tmp_path / "restored-fr" / "node.sqlite3")
    assert [i for i in acknowledged_de if i not in restored_de] == []
    assert acknowledged_fr
    assert [i for i in acknowledged_fr if i not in restored_fr] == []
    # Nothing in a backup is half-there: every restored certificate is one DE really issued.
    assert restored_de <= set(issued)


async def _enough(items: list[str], n: int) -> bool:
    return len(items) >= n


async def _any_receipted(node: RunningNode, ids: list[str]) -> bool:
    return any([await node.delivered(i) for i in ids[:5]])
