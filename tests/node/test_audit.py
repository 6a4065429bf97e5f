"""The hash-chained audit log: appends verify; any change behind SQLite's back is detected."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest

from permitnet.node import audit
from permitnet.node.errors import AuditChainError, ValidationError
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


def _cut_end(path: Path, rows: int) -> None:
    """The attacker removes the last rows behind the node's back: the chain still verifies."""
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER audit_log_no_delete")
        conn.execute(
            "DELETE FROM audit_log WHERE seq > (SELECT max(seq) FROM audit_log) - ?", (rows,)
        )


async def test_head_names_the_last_row_and_an_empty_log_is_row_zero(tmp_path: Path) -> None:
    empty = await Store.open(tmp_path / "empty.sqlite3")
    try:
        assert await audit.head(empty) == audit.AuditHead(0, audit.GENESIS_HASH)
        assert await audit.verify_chain(empty, witnessed=[await audit.head(empty)]) == 0
    finally:
        await empty.close()
    store = await _store_with_rows(tmp_path / "a.sqlite3", 4)
    try:
        current = await audit.head(store)
        (last,) = await audit.entries(store, after=3, limit=1)
        assert current == audit.AuditHead(4, last.hash)
        assert audit.AuditHead.parse(str(current)) == current
    finally:
        await store.close()


async def test_rows_cut_from_the_end_are_found_only_with_a_witnessed_head(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    store = await _store_with_rows(path, 6)
    early, late = (await audit.entries(store, after=1, limit=1))[0], await audit.head(store)
    await store.close()
    _cut_end(path, 2)
    store = await Store.open(path)
    try:
        # Four rows, a chain intact: without a witness the cut cannot be told.
        assert await audit.verify_chain(store) == 4
        assert await audit.verify_chain(store, witnessed=[audit.AuditHead(2, early.hash)]) == 4
        with pytest.raises(AuditChainError, match="ends at row 4: rows were cut") as info:
            await audit.verify_chain(store, witnessed=[late])
        assert info.value.seq == 6
    finally:
        await store.close()


async def test_a_rewritten_log_does_not_match_its_witnessed_head(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    store = await _store_with_rows(path, 5)
    witnessed = await audit.head(store)
    await store.close()
    # The attacker cuts the end and appends new rows with a valid chain of their own.
    _cut_end(path, 3)
    store = await Store.open(path)
    try:
        for i in range(3):
            async with store.transaction() as tx:
                await tx.audit("mallory", "sign", f"forged{i}", {})
        assert await audit.verify_chain(store) == 5
        with pytest.raises(AuditChainError, match="not the one witnessed") as info:
            await audit.verify_chain(store, witnessed=[witnessed])
        assert info.value.seq == 5
    finally:
        await store.close()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "5",
        "5:",
        ":" + "00" * 32,
        "-1:" + "00" * 32,
        "x:" + "00" * 32,
        "5:" + "00" * 31,
        "5:" + "zz" * 32,
        "+5:" + "00" * 32,
        "5:" + "00" * 33,
    ],
)
def test_a_malformed_head_is_refused_with_its_form(text: str) -> None:
    with pytest.raises(ValidationError, match="ROW:HASH"):
        audit.AuditHead.parse(text)


async def test_witnessed_row_zero_must_be_the_genesis(tmp_path: Path) -> None:
    store = await _store_with_rows(tmp_path / "a.sqlite3", 1)
    try:
        with pytest.raises(AuditChainError, match="genesis"):
            await audit.verify_chain(store, witnessed=[audit.AuditHead(0, b"\x01" * 32)])
    finally:
        await store.close()


async def test_two_witnessed_heads_for_one_row_that_disagree_fail_whatever_their_order(
    tmp_path: Path,
) -> None:
    store = await _store_with_rows(tmp_path / "a.sqlite3", 3)
    try:
        right = await audit.head(store)
        wrong = audit.AuditHead(right.seq, b"\x07" * 32)
        for heads in ([wrong, right], [right, wrong]):
            with pytest.raises(AuditChainError, match="not the one witnessed"):
                await audit.verify_chain(store, witnessed=heads)
        assert await audit.verify_chain(store, witnessed=[right, right]) == 3
    finally:
        await store.close()
