"""The node store on real SQLite files: immutability, idempotency, one-transaction writes."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from permitnet.node.errors import NotFoundError, ReplayError, StoreError
from permitnet.node.store import DocumentItem, DocumentRecord, Store, SyncTx
from permitnet.node.store_exchange import insert_rows

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


def _record(raw: bytes = b"signed-bytes", *, state: str = "issued") -> DocumentRecord:
    return DocumentRecord(
        id=hashlib.sha256(raw).hexdigest(),
        raw=raw,
        doc_type="import_certificate",
        issuer="DE",
        recipient="FR",
        issued_at=1_700_000_000,
        direction="outbound",
        state=state,
        reference="DE-IC-1",
        estimate_year=2026,
        valid_until="2026-12-31",
        items=(
            DocumentItem(
                substance="morphine-sulfate-pentahydrate",
                base_substance="morphine",
                quantity_mg=1000,
                base_mg=752,
            ),
        ),
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "node.sqlite3", clock=Clock())
    yield s
    await s.close()


async def test_migrations_applied_once_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "n.sqlite3"
    s = await Store.open(path)
    assert await s.schema_version() == 1
    await s.close()
    s = await Store.open(path)
    assert await s.schema_version() == 1
    await s.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_statement_journals_kept_in_memory(tmp_path: Path) -> None:
    # 2 = MEMORY: a multi-row statement inside a transaction needs no temporary file.
    async with Store.opened(tmp_path / "n.sqlite3") as s:
        assert await s.query("PRAGMA temp_store") == [(2,)]


async def test_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.sqlite3"
    s = await Store.open(path)
    await s.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 0)")
    with pytest.raises(StoreError, match="newer than this software"):
        await Store.open(path)


async def test_document_round_trip_with_outbox_in_same_transaction(store: Store) -> None:
    rec = _record()
    async with store.transaction() as tx:
        assert await tx.insert_document(rec, actor="officer", outbox_peers=["FR"])
    got = await store.get_document(rec.id)
    assert got.raw == rec.raw
    assert got.items == rec.items
    assert got.stored_at == 1_700_000_000
    async with store.read() as tx:
        (row,) = await tx.outbox_for_document(rec.id)
        assert row.peer == "FR"
        assert row.raw == rec.raw
        assert row.delivered_at is None
    events = await store.events_after(0)
    assert [(e.kind, e.subject, e.to_state) for e in events] == [("document", rec.id, "issued")]


async def test_failed_transaction_stores_nothing(store: Store) -> None:
    rec = _record()

    async def crash_before_commit() -> None:
        async with store.transaction() as tx:
            await tx.insert_document(rec, actor="officer", outbox_peers=["FR"])
            raise RuntimeError("crash between document and commit")

    with pytest.raises(RuntimeError):
        await crash_before_commit()
    with pytest.raises(NotFoundError):
        await store.get_document(rec.id)
    async with store.read() as tx:
        assert await tx.outbox_for_document(rec.id) == []
    assert await store.events_after(0) == []


async def test_insert_is_idempotent_by_id(store: Store) -> None:
    rec = _record()
    async with store.transaction() as tx:
        assert await tx.insert_document(rec, actor="a")
    async with store.transaction() as tx:
        assert not await tx.insert_document(rec, actor="a", outbox_peers=["FR"])
        assert await tx.outbox_for_document(rec.id) == []
    assert len(await store.events_after(0)) == 1


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("UPDATE documents SET raw = x'00'", id="rewrite-raw"),
        pytest.param("UPDATE documents SET recipient = 'IT'", id="rewrite-recipient"),
        pytest.param("DELETE FROM documents", id="delete-document"),
        pytest.param("UPDATE document_items SET quantity_mg = 1", id="rewrite-quantity"),
        pytest.param("DELETE FROM events", id="delete-events"),
        pytest.param("UPDATE audit_log SET actor = 'x'", id="rewrite-audit"),
        pytest.param("DELETE FROM audit_log", id="delete-audit"),
    ],
)
async def test_immutable_rows_refused(store: Store, statement: str) -> None:
    async with store.transaction() as tx:
        await tx.insert_document(_record(), actor="a")
    with pytest.raises(StoreError, match=r"immutable|never deleted|append-only"):
        async with store.transaction() as tx:
            await tx.execute(statement)
    assert (await store.get_document(_record().id)).raw == b"signed-bytes"


async def test_state_change_writes_event_and_keeps_bytes(store: Store) -> None:
    rec = _record()
    async with store.transaction() as tx:
        await tx.insert_document(rec, actor="a")
    async with store.transaction() as tx:
        assert await tx.set_state(rec.id, "cancelled", actor="b", detail={"why": "x"}) == "issued"
    got = await store.get_document(rec.id)
    assert got.state == "cancelled"
    assert got.raw == rec.raw
    events = await store.events_after(1)
    assert [(e.from_state, e.to_state, e.actor) for e in events] == [("issued", "cancelled", "b")]
    with pytest.raises(NotFoundError):
        async with store.transaction() as tx:
            await tx.set_state("00" * 32, "x", actor="b")


async def test_outbox_failure_then_delivery(store: Store) -> None:
    rec = _record()
    async with store.transaction() as tx:
        await tx.insert_document(rec, actor="a", outbox_peers=["FR", "IT"])
    async with store.transaction() as tx:
        assert {e.peer for e in await tx.outbox_due()} == {"FR", "IT"}
        await tx.outbox_record_failure(rec.id, "FR", error="refused", next_attempt_at=tx.now + 60)
        due = await tx.outbox_due()
        assert [e.peer for e in due] == ["IT"]
        assert await tx.outbox_record_delivery(rec.id, "IT", receipt=b"receipt")
        assert not await tx.outbox_record_delivery(rec.id, "IT", receipt=b"other")
        with pytest.raises(NotFoundError):
            await tx.outbox_record_delivery(rec.id, "ES", receipt=None)
    async with store.read() as tx:
        rows = {e.peer: e for e in await tx.outbox_for_document(rec.id)}
        assert rows["FR"].attempts == 1
        assert rows["FR"].last_error == "refused"
        assert rows["IT"].receipt == b"receipt"
        assert [e.peer for e in await tx.outbox_undelivered_for_peer("FR")] == ["FR"]


async def test_pending_quarantine_and_nonces(store: Store) -> None:
    async with store.transaction() as tx:
        assert await tx.add_pending("ab" * 32, b"raw", reason="dependency", waiting_for="cd" * 32)
        assert not await tx.add_pending(
            "ab" * 32, b"raw", reason="dependency", waiting_for="cd" * 32, error="still missing"
        )
        (p,) = await tx.pending(waiting_for="cd" * 32)
        assert p.attempts == 1
        assert p.last_error == "still missing"
        await tx.remove_pending("ab" * 32)
        assert await tx.pending() == []
        seq = await tx.add_quarantine(b"garbage", reason="bad signature", from_peer="FR")
        (q,) = await tx.quarantined()
        assert (q.seq, q.reason, q.raw) == (seq, "bad signature", b"garbage")
        await tx.remember_nonce("k", "n1", expires_at=tx.now + 300)
        with pytest.raises(ReplayError):
            await tx.remember_nonce("k", "n1", expires_at=tx.now + 300)
        await tx.remember_nonce("other-key", "n1", expires_at=tx.now + 300)


async def test_outbox_listeners_told_only_when_rows_become_due(store: Store) -> None:
    told: list[str] = []
    store.add_outbox_listener(lambda: told.append("due"))
    received = dataclasses.replace(_record(b"received"), direction="inbound", issuer="FR")
    async with store.transaction() as tx:
        await tx.insert_new_documents([received], actor="peer:FR")
    assert told == []  # events, but no outbox rows: the delivery worker is not woken
    rec = _record()
    async with store.transaction() as tx:
        await tx.insert_document(rec, actor="a", outbox_peers=["FR"])
        assert told == []  # only after the commit
    assert told == ["due"]
    async with store.transaction() as tx:
        await tx.outbox_record_failure(rec.id, "FR", error="busy", next_attempt_at=tx.now + 60)
    assert told == ["due"]  # later, not now
    async with store.transaction() as tx:
        await tx.outbox_record_failure(rec.id, "FR", error="rejected", next_attempt_at=tx.now)
    assert told == ["due", "due"]

    async def abandoned() -> None:
        async with store.transaction() as tx:
            await tx.insert_document(_record(b"rolled back"), actor="a", outbox_peers=["FR"])
            raise RuntimeError("abandoned")

    with pytest.raises(RuntimeError):
        await abandoned()
    assert told == ["due", "due"]  # nothing committed, nothing told


async def test_alert_raised_once_and_listeners_told_after_commit(store: Store) -> None:
    seen: list[list[int]] = []
    store.add_listener(seen.append)
    async with store.transaction() as tx:
        await tx.insert_document(_record(), actor="a")
        assert seen == []
        first = await tx.raise_alert("quantity_mismatch", _record().id, "short by 5 mg")
        assert first is not None
        assert await tx.raise_alert("quantity_mismatch", _record().id, "again") is None
    assert len(seen) == 1
    assert len(seen[0]) == 2


async def test_list_documents_filters(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.insert_document(_record(b"a"), actor="x")
        await tx.insert_document(_record(b"b", state="held"), actor="x")
    assert len(await store.list_documents(doc_type="import_certificate")) == 2
    (held,) = await store.list_documents(state="held")
    assert held.raw == b"b"
    assert await store.list_documents(doc_type="endorsement") == []


async def test_get_documents_equals_get_document_one_by_one(store: Store) -> None:
    two_items = dataclasses.replace(
        _record(b"c"),
        items=(
            DocumentItem(substance="codeine", base_substance="codeine", quantity_mg=5, base_mg=5),
            DocumentItem(substance="morphine", base_substance="morphine", quantity_mg=7, base_mg=7),
        ),
    )
    no_items = dataclasses.replace(_record(b"d"), items=())
    records = [_record(b"a"), two_items, no_items]
    async with store.transaction() as tx:
        for record in records:
            await tx.insert_document(record, actor="x")
    ids = [r.id for r in reversed(records)] + ["00" * 32]  # any order; unknown ids left out
    async with store.read() as tx:
        one_by_one = [await tx.get_document(i) for i in ids[:-1]]
        assert await tx.get_documents(ids) == one_by_one
        assert await tx.get_documents([]) == []
    assert [i.substance for i in one_by_one[1].items] == ["codeine", "morphine"]


async def test_sqlite_errors_are_wrapped(store: Store) -> None:
    with pytest.raises(StoreError, match="refused the query"):
        await store.query("SELECT nope FROM documents")
    with pytest.raises(StoreError, match="refused the query"):
        async with store.read() as tx:
            await tx.fetchall("SELECT * FROM no_such_table")
    with pytest.raises(StoreError, match="refused the change"):
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO documents (id) VALUES ('x')")
    # The connection is still usable afterwards.
    assert await store.query("SELECT count(*) FROM documents") == [(0,)]


def _count_and_insert(conn: sqlite3.Connection, document_id: str, *, fail: bool) -> int:
    conn.execute(
        "INSERT INTO nonces (key_id, nonce, seen_at, expires_at) VALUES ('k',?,1,2)", (document_id,)
    )
    if fail:
        conn.execute("INSERT INTO no_such_table VALUES (1)")
    return int(conn.execute("SELECT count(*) FROM nonces").fetchone()[0])


async def test_tx_run_is_one_step_of_the_transaction(store: Store) -> None:
    # Tx.run executes a function on the database thread inside the open transaction: what it
    # writes commits or rolls back with the rest, and its SQLite errors are the store's errors.
    async with store.transaction() as tx:
        assert await tx.run(_count_and_insert, "n1", fail=False) == 1
        assert await tx.fetchall("SELECT nonce FROM nonces") == [("n1",)]
    with pytest.raises(StoreError, match=r"refused the change.*no_such_table"):
        async with store.transaction() as tx:
            await tx.run(_count_and_insert, "n2", fail=True)
    assert await store.query("SELECT nonce FROM nonces") == [("n1",)]


async def test_opened_closes_the_store_after_the_block_even_on_error(tmp_path: Path) -> None:
    kept: list[Store] = []

    async def use_then_fail() -> None:
        async with Store.opened(tmp_path / "n.sqlite3") as store:
            kept.append(store)
            assert await store.schema_version() >= 1
            raise RuntimeError("the command failed")

    with pytest.raises(RuntimeError, match="the command failed"):
        await use_then_fail()
    with pytest.raises(ValueError, match="closed"):
        await kept[0].schema_version()


def _insert_on(tx: SyncTx, nonce: str, *, fail: bool, events: tuple[int, ...] = ()) -> int:
    tx.new_events.extend(events)
    return _count_and_insert(tx.conn, nonce, fail=fail)


@pytest.mark.parametrize("method", ["transact", "transact_here"])
async def test_transact_runs_one_whole_transaction(store: Store, method: str) -> None:
    # transact_here is transact with its statements on the loop's thread: the same outcomes.
    transact = getattr(store, method)
    announced: list[list[int]] = []
    store.add_listener(announced.append)
    assert await transact(_insert_on, "n1", fail=False, events=(7,)) == 1
    assert await store.query("SELECT nonce FROM nonces") == [("n1",)]
    assert announced == [[7]]
    # Any failure rolls the whole transaction back; SQLite's is the store's error, and
    # nothing is announced for it.
    with pytest.raises(StoreError, match=r"refused the change.*no_such_table"):
        await transact(_insert_on, "n2", fail=True, events=(8,))
    assert await store.query("SELECT nonce FROM nonces") == [("n1",)]
    assert announced == [[7]]

    def refuse(tx: SyncTx) -> None:
        _count_and_insert(tx.conn, "n3", fail=False)
        raise LookupError("not for this path")

    with pytest.raises(LookupError):
        await transact(refuse)
    assert await store.query("SELECT nonce FROM nonces") == [("n1",)]
    # The connection is usable afterwards: no transaction was left open.
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT INTO nonces (key_id, nonce, seen_at, expires_at) VALUES ('k','n4',1,2)"
        )


async def test_transact_waits_for_an_open_transaction_and_runs_in_order(store: Store) -> None:
    order: list[str] = []

    def mark(tx: SyncTx, name: str) -> None:
        order.append(name)
        _count_and_insert(tx.conn, name, fail=False)

    async with store.transaction() as tx:
        queued = asyncio.ensure_future(store.transact(mark, "after"))
        await asyncio.sleep(0.01)
        await tx.execute(
            "INSERT INTO nonces (key_id, nonce, seen_at, expires_at) VALUES ('k','inside',1,2)"
        )
        order.append("inside")
    await queued
    assert order == ["inside", "after"]
    assert {r[0] for r in await store.query("SELECT nonce FROM nonces")} == {"inside", "after"}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1)), max_size=400))
def test_insert_rows_writes_what_executemany_writes(rows: list[tuple[str, int]]) -> None:
    statement = "INSERT INTO t (a, b) VALUES (?,?)"
    many, multi = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    for conn in (many, multi):
        conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, a TEXT, b INTEGER)")
    many.executemany(statement, rows)
    insert_rows(multi, statement, rows)
    query = "SELECT seq, a, b FROM t ORDER BY seq"
    assert many.execute(query).fetchall() == multi.execute(query).fetchall()


def test_insert_rows_splits_below_sqlites_parameter_limit() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a, b, c)")
    rows = [(i, i, i) for i in range(25_000)]  # 75,000 parameters: three statements
    insert_rows(conn, "INSERT INTO t (a, b, c) VALUES (?,?,?)", rows)
    assert conn.execute("SELECT count(*), sum(a) FROM t").fetchone() == (25_000, sum(range(25_000)))


async def test_a_transact_whose_caller_is_cancelled_still_commits_and_announces(
    store: Store,
) -> None:
    announced: list[list[int]] = []
    store.add_listener(announced.append)
    started = threading.Event()

    def slow(tx: SyncTx) -> None:
        started.set()
        time.sleep(0.2)
        _insert_on(tx, "late", fail=False, events=(9,))

    caller = asyncio.ensure_future(store.transact(slow))
    await asyncio.to_thread(started.wait, 10)
    await _cancel_and_wait_for_announcement(caller, announced)
    assert announced == [[9]]
    assert await store.query("SELECT nonce FROM nonces") == [("late",)]


async def _cancel_and_wait_for_announcement(
    caller: asyncio.Future[Any], announced: list[list[int]]
) -> None:
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    # The database thread commits all the same; the listeners hear of it.
    async with asyncio.timeout(10):
        while not announced:  # noqa: ASYNC110 - a listener call is no event to await
            await asyncio.sleep(0.01)


def _on_thread(tx: SyncTx, nonce: str, threads: list[int]) -> None:
    threads.append(threading.get_ident())
    _count_and_insert(tx.conn, nonce, fail=False)


async def test_transact_here_runs_on_the_calling_thread_and_commits_on_the_database_thread(
    store: Store, tmp_path: Path
) -> None:
    threads: list[int] = []
    await store.transact_here(_on_thread, "here", threads)
    assert threads == [threading.get_ident()]
    assert await store.query("SELECT nonce FROM nonces") == [("here",)]
    # The busy timeout, set to 0 only while taking the write lock, is back for the next one.
    assert await store.query("PRAGMA busy_timeout") == [(5000,)]
    # Committed: another connection sees it.
    other = sqlite3.connect(str(tmp_path / "node.sqlite3"))
    try:
        assert other.execute("SELECT nonce FROM nonces").fetchall() == [("here",)]
    finally:
        other.close()


async def test_transact_here_never_waits_on_the_loop_for_another_writer(
    store: Store, tmp_path: Path
) -> None:
    # Another process holds the write lock: transact_here does not wait for it on the event
    # loop's thread (which would stop the node) but hands the whole transaction to the
    # database thread, which waits there, and commits once the lock is free.
    other = sqlite3.connect(
        str(tmp_path / "node.sqlite3"), isolation_level=None, check_same_thread=False
    )
    other.execute("BEGIN IMMEDIATE")
    threads: list[int] = []
    writing = asyncio.ensure_future(store.transact_here(_on_thread, "after", threads))
    # The loop keeps turning meanwhile (a wait on it would last the 5 s busy timeout).
    longest = 0.0
    for _ in range(20):
        before = time.monotonic()
        await asyncio.sleep(0.01)
        longest = max(longest, time.monotonic() - before)
    assert longest < 1.0
    assert not writing.done()
    other.execute("INSERT INTO nonces (key_id, nonce, seen_at, expires_at) VALUES ('k','o',1,2)")
    other.execute("COMMIT")
    other.close()
    async with asyncio.timeout(10):
        await writing
    assert len(threads) == 1
    assert threads != [threading.get_ident()]
    assert {r[0] for r in await store.query("SELECT nonce FROM nonces")} == {"o", "after"}


async def test_transact_here_waits_its_turn_behind_a_queued_transact(store: Store) -> None:
    # A transact queued earlier may still be running on the database thread: the connection
    # is then not this thread's to use, so transact_here queues behind it, in order.
    order: list[str] = []
    started = threading.Event()

    def slow(tx: SyncTx) -> None:
        started.set()
        time.sleep(0.1)
        order.append("first")
        _count_and_insert(tx.conn, "first", fail=False)

    def second(tx: SyncTx) -> None:
        order.append("second")
        _count_and_insert(tx.conn, "second", fail=False)

    first = asyncio.ensure_future(store.transact(slow))
    await asyncio.to_thread(started.wait, 10)
    await store.transact_here(second)
    await first
    assert order == ["first", "second"]
    assert {r[0] for r in await store.query("SELECT nonce FROM nonces")} == {"first", "second"}


async def test_transact_here_cancelled_during_its_commit_still_commits_and_announces(
    store: Store,
) -> None:
    announced: list[list[int]] = []
    store.add_listener(announced.append)
    caller = asyncio.ensure_future(store.transact_here(_insert_on, "late", fail=False, events=(3,)))
    await asyncio.sleep(0)  # the statements ran; the COMMIT is queued on the database thread
    await _cancel_and_wait_for_announcement(caller, announced)
    assert announced == [[3]]
    assert await store.query("SELECT nonce FROM nonces") == [("late",)]
