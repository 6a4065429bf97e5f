"""The hash-chained audit log: appends verify; any change behind SQLite's back is detected."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest

from permitnet.node import audit
from permitnet.node.errors import AuditChainError
from permitnet.node.store import Store

if TYPE_CHECKING:
    from pathlib import Path


async def _store_with_rows(path: Path, n: int) -> Store:
    store = await Store.open(path)
    for i in range(n):
        async with store.transaction() as tx:
            await tx.audit(f"user{i}", "sign", f"doc{i}", {"i": i})
    return store


async def test_chain_verifies(tmp_path: Path) -> None:
    store = await _store_with_rows(tmp_path / "a.sqlite3", 5)
    try:
        assert await audit.verify_chain(store) == 5
        rows = await audit.entries(store, subject="doc3")
        assert [(r.actor, r.detail) for r in rows] == [("user3", {"i": 3})]
        assert rows[0].prev_hash == (await audit.entries(store, after=2, limit=1))[0].hash
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("tamper", "bad_seq"),
    [
        pytest.param("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3", 3, id="edit-actor"),
        pytest.param(
            "UPDATE audit_log SET detail = '{\"i\":9}' WHERE seq = 2", 2, id="edit-detail"
        ),
        pytest.param("DELETE FROM audit_log WHERE seq = 2", 2, id="delete-middle"),
        pytest.param("UPDATE audit_log SET hash = zeroblob(32) WHERE seq = 4", 4, id="edit-hash"),
        pytest.param("UPDATE audit_log SET seq = 10 WHERE seq = 1", 1, id="renumber-first"),
    ],
)
async def test_tamper_detected(tmp_path: Path, tamper: str, bad_seq: int) -> None:
    path = tmp_path / "a.sqlite3"
    store = await _store_with_rows(path, 5)
    await store.close()
    # The attacker goes behind the node: raw sqlite, triggers dropped.
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("DROP TRIGGER audit_log_no_delete")
        conn.execute(tamper)
    store = await Store.open(path)
    try:
        with pytest.raises(AuditChainError) as info:
            await audit.verify_chain(store)
        assert info.value.seq == bad_seq
    finally:
        await store.close()
