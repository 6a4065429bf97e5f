"""The outbox worker against a scripted peer on a real loopback socket."""

from __future__ import annotations

import asyncio
import hashlib
import random
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from permitnet.node.delivery import (
    ALERT_DELIVERY_REJECTED,
    MAX_BATCH_BYTES,
    Backoff,
    DeliveryWorker,
    NodeIdentity,
    plan_batches,
)
from permitnet.node.errors import NodeError
from permitnet.node.keystore import SigningKey
from permitnet.node.peer_auth import NonceCache, PeerKey, verify_request
from permitnet.node.peer_wire import (
    PATH_DOCUMENTS,
    DocumentResult,
    Outcome,
    decode_byte_strings,
    encode_results,
)
from permitnet.node.store import DocumentRecord, Store
from permitnet.node.store_exchange import OutboxEntry
from permitnet.protocol.signed import document_id

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine
    from pathlib import Path

DE_KEY = SigningKey.from_seed(bytes(range(32)))
START = 1_790_000_000


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now


@given(failures=st.integers(min_value=1, max_value=200), seed=st.integers())
def test_backoff_grows_is_capped_and_never_zero(failures: int, seed: int) -> None:
    backoff = Backoff(base=2.0, cap=900.0)
    delay = backoff.delay(failures, random.Random(seed))
    ceiling = min(900.0, 2.0 * 2 ** (failures - 1))
    assert ceiling / 2 <= delay <= ceiling


def test_backoff_jitter_spreads_retries() -> None:
    rng = random.Random(7)
    delays = {round(Backoff().delay(6, rng), 3) for _ in range(50)}
    assert len(delays) > 40


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(NodeError, match="base <= cap"):
        Backoff(base=10, cap=1)


def _entry(peer: str, size: int, n: int) -> OutboxEntry:
    raw = bytes([n % 256]) * size
    return OutboxEntry(
        document_id=hashlib.sha256(raw).hexdigest(),
        peer=peer,
        raw=raw,
        created_at=0,
        attempts=0,
        next_attempt_at=0,
        last_error=None,
        delivered_at=None,
        receipt=None,
    )


def test_plan_batches_groups_by_peer_and_bounds_size() -> None:
    entries = [_entry("FR", 100_000, i) for i in range(20)] + [
        _entry("IN", 10, i) for i in range(3)
    ]
    batches = plan_batches(entries)
    assert {b[0].peer for b in batches} == {"FR", "IN"}
    assert all(len({e.peer for e in b}) == 1 for b in batches)
    assert all(sum(len(e.raw) for e in b) <= MAX_BATCH_BYTES for b in batches)
    assert sorted(e.raw for b in batches for e in b) == sorted(e.raw for e in entries)


class ScriptedPeer:
    """FR's node, reduced to what delivery needs: it checks the signed request and answers."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.outcome: Outcome = "accepted"
        self.status = 200
        self.bad_receipts = False
        self.nonces = NonceCache()
        self.auth_errors: list[str] = []
        self.streamed = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            verify_request(
                request.headers.get("Authorization"),
                method=request.method,
                target=request.path_qs,
                body=body,
                audience="FR",
                now=START,
                resolve_key=lambda _kid, _at: PeerKey(country="DE", public_key=DE_KEY.public_key),
                nonces=self.nonces,
            )
        except NodeError as e:
            self.auth_errors.append(str(e))
            return web.Response(status=401, text=str(e))
        if self.status != 200:
            return web.Response(status=self.status, text="peer is unwell")
        raws = decode_byte_strings(body, max_size=1 << 22)
        self.received.extend(raws)
        results = [
            DocumentResult(
                document_id=document_id(raw),
                outcome=self.outcome,
                reason="" if self.outcome == "accepted" else "addressed to IN",
                receipt=b""
                if self.outcome == "pending"
                else b"bad"
                if self.bad_receipts
                else ("rejected:" if self.outcome == "rejected" else "accepted:").encode()
                + document_id(raw),
            )
            for raw in raws
        ]
        answer = encode_results(results)
        if not self.streamed:
            return web.Response(body=answer, content_type="application/cbor")
        # Chunked, in small pieces a moment apart: the reader must keep reading to the end.
        response = web.StreamResponse(headers={"Content-Type": "application/cbor"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(answer), 97):
            await response.write(answer[start : start + 97])
            await asyncio.sleep(0.002)  # paces the pieces so they arrive separately
        await response.write_eof()
        return response


def check_receipt(receipt: bytes, doc_id: bytes, peer: str, now: int) -> str:
    """Stands in for the signed receipt: ``status:`` followed by the document id."""
    del now
    status, _, named = receipt.partition(b":")
    if peer != "FR" or named != doc_id or status not in {b"accepted", b"rejected"}:
        raise NodeError("receipt does not prove delivery")
    return status.decode()


@pytest.fixture
async def peer() -> AsyncIterator[tuple[ScriptedPeer, TestServer]]:
    scripted = ScriptedPeer()
    app = web.Application()
    app.router.add_post(PATH_DOCUMENTS, scripted.handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    yield scripted, server
    await server.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "de.sqlite3", clock=Clock(), synchronous="NORMAL")
    yield s
    await s.close()


async def _issue(store: Store, n: int, peer: str = "FR") -> list[str]:
    ids: list[str] = []
    async with store.transaction() as tx:
        for i in range(n):
            raw = f"signed document {i}".encode()
            record = DocumentRecord(
                id=hashlib.sha256(raw).hexdigest(),
                raw=raw,
                doc_type="import_certificate",
                issuer="DE",
                recipient=peer,
                issued_at=START,
                direction="outbound",
                state="issued",
            )
            await tx.insert_document(record, actor="test", outbox_peers=[peer])
            ids.append(record.id)
    return ids


def _worker(store: Store, session: aiohttp.ClientSession, endpoints: list[str]) -> DeliveryWorker:
    return DeliveryWorker(
        store=store,
        session=session,
        identity=NodeIdentity(country="DE", key=DE_KEY),
        endpoints=lambda country: endpoints if country == "FR" else [],
        verify_receipt=check_receipt,
        backoff=Backoff(base=2, cap=60),
        rng=random.Random(1),
        request_timeout=5,
    )


async def test_delivers_a_batch_once_and_stores_each_receipt(
    store: Store, peer: tuple[ScriptedPeer, TestServer]
) -> None:
    scripted, server = peer
    ids = await _issue(store, 5)
    async with aiohttp.ClientSession() as session:
        worker = _worker(store, session, [str(server.make_url(""))])
        assert await worker.deliver_due() == 5
        assert await worker.deliver_due() == 0
    assert len(scripted.received) == 5
    async with store.read() as tx:
        for doc in ids:
            (row,) = await tx.outbox_for_document(doc)
            assert row.delivered_at == START
            assert row.receipt == b"accepted:" + bytes.fromhex(doc)


async def test_peer_down_then_up_backs_off_then_delivers_exactly_once(
    store: Store, peer: tuple[ScriptedPeer, TestServer], unused_tcp_port: int
) -> None:
    scripted, server = peer
    clock = store._clock
    assert isinstance(clock, Clock)
    ids = await _issue(store, 3)
    async with aiohttp.ClientSession() as session:
        down = _worker(store, session, [f"http://127.0.0.1:{unused_tcp_port}"])
        assert await down.deliver_due() == 0
        async with store.read() as tx:
            rows = [r for d in ids for r in await tx.outbox_for_document(d)]
        assert all(r.attempts == 1 and r.delivered_at is None for r in rows)
        assert all("unreachable" in (r.last_error or "") for r in rows)
        assert all(START + 1 <= r.next_attempt_at <= START + 2 for r in rows)
        # Not due yet: nothing is attempted.
        up = _worker(store, session, [str(server.make_url(""))])
        assert await up.deliver_due() == 0
        assert scripted.received == []
        clock.now += 2
        assert await up.deliver_due() == 3
        assert await up.deliver_due() == 0
    assert sorted(scripted.received) == sorted({r.raw for r in rows})


async def test_second_endpoint_is_tried_when_first_is_down(
    store: Store, peer: tuple[ScriptedPeer, TestServer], unused_tcp_port: int
) -> None:
    _, server = peer
    await _issue(store, 1)
    async with aiohttp.ClientSession() as session:
        worker = _worker(
            store, session, [f"http://127.0.0.1:{unused_tcp_port}", str(server.make_url(""))]
        )
        assert await worker.deliver_due() == 1


FAILURES: list[tuple[str, dict[str, object], str]] = [
    ("peer answers 503", {"status": 503}, "HTTP 503"),
    ("receipt that proves nothing", {"bad_receipts": True}, "receipt refused"),
    ("peer rejects the document", {"outcome": "rejected"}, "rejected by FR: addressed to IN"),
    ("peer holds it as pending", {"outcome": "pending"}, "held as pending by FR"),
]


@pytest.mark.parametrize(("script", "error"), [pytest.param(c[1], c[2], id=c[0]) for c in FAILURES])
async def test_failed_delivery_is_kept_and_retried_later(
    store: Store, peer: tuple[ScriptedPeer, TestServer], script: dict[str, object], error: str
) -> None:
    scripted, server = peer
    for name, value in script.items():
        setattr(scripted, name, value)
    (doc,) = await _issue(store, 1)
    async with aiohttp.ClientSession() as session:
        assert await _worker(store, session, [str(server.make_url(""))]).deliver_due() == 0
    async with store.read() as tx:
        (row,) = await tx.outbox_for_document(doc)
        alerts = await tx.fetchall("SELECT kind, message FROM alerts WHERE document_id = ?", (doc,))
    assert row.delivered_at is None
    assert row.receipt is None
    assert error in (row.last_error or "")
    assert row.next_attempt_at > START
    if script.get("outcome") == "rejected":
        assert alerts == [
            (ALERT_DELIVERY_REJECTED, "FR's node rejected the document: addressed to IN")
        ]
    else:
        assert alerts == []


async def test_no_endpoint_is_a_recorded_failure(store: Store) -> None:
    (doc,) = await _issue(store, 1, peer="IN")
    async with aiohttp.ClientSession() as session:
        assert await _worker(store, session, []).deliver_due() == 0
    async with store.read() as tx:
        (row,) = await tx.outbox_for_document(doc)
    assert "no node endpoint for IN" in (row.last_error or "")


async def test_an_answer_streamed_in_pieces_is_read_whole(
    store: Store, peer: tuple[ScriptedPeer, TestServer]
) -> None:
    scripted, server = peer
    scripted.streamed = True
    await _issue(store, 20)
    async with aiohttp.ClientSession() as session:
        assert await _worker(store, session, [str(server.make_url(""))]).deliver_due() == 20


async def test_cancelled_just_as_woken_the_worker_stops(store: Store) -> None:
    # On Python 3.11, asyncio.wait_for returns normally when its task is cancelled in the same
    # loop iteration as the awaited event is set, and a worker built on it never stopped: the
    # node (and ``permitnet demo``) hung on shutdown when a commit woke it at that instant.
    async with aiohttp.ClientSession() as session:
        worker = DeliveryWorker(
            store=store,
            session=session,
            identity=NodeIdentity(country="DE", key=DE_KEY),
            endpoints=lambda country: [],
            verify_receipt=check_receipt,
            idle_poll_seconds=60,
        )
        await assert_stops_when_cancelled_as_woken(worker.run, worker.wake)


async def assert_stops_when_cancelled_as_woken(
    run: Callable[[], Coroutine[Any, Any, None]], wake: Callable[[], None]
) -> None:
    """Start a worker, let it go idle, then wake and cancel it in the same loop iteration."""
    task = asyncio.create_task(run())
    for _ in range(10):  # until it is idle, waiting to be woken
        await asyncio.sleep(0.01)
    wake()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done
    assert task.cancelled()
