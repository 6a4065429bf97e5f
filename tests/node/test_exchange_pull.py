"""The holder's side of pull: serving the outbox and recording the puller's signed receipts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import aiohttp
import pytest

from permitnet.node import drafting
from permitnet.node.delivery import NodeIdentity
from permitnet.node.keystore import SigningKey
from permitnet.node.peer_wire import PeerWireError
from permitnet.node.pull import PullWorker, outbox_answer, record_receipts
from permitnet.node.registry_holder import RegistryHolder, RegistryUnavailableError
from permitnet.node.store import Store
from permitnet.protocol.cbor import decode_cbor
from permitnet.protocol.doc_examples import (
    example_delivery_receipt,
    example_import_certificate,
    example_message,
    example_seed,
)
from permitnet.protocol.signed import SignedDocument
from tests.node.test_delivery import assert_stops_when_cancelled_as_woken
from tests.node.test_exchange import NOW, make_view

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from permitnet.node.exchange import InboundPipeline


def signed_by(country: str, document: Any) -> bytes:
    key = SigningKey.from_seed(example_seed(country))
    return SignedDocument.sign(document, signing_key=key.seed, kid=key.kid).raw


class Holder:
    """DE's node holding certificates for IN, which pulls."""

    def __init__(self, store: Store, registry: RegistryHolder, ids: list[bytes]) -> None:
        self.store = store
        self.registry = registry
        self.ids = ids

    def receipt(self, doc_id: bytes, **changes: Any) -> bytes:
        fields: dict[str, Any] = {"issued_at": NOW - 10, "received_at": NOW - 10}
        issuer = changes.get("issuer", "IN")
        return signed_by(issuer, example_delivery_receipt(doc_id, **(fields | changes)))

    async def record(self, receipts: list[bytes]) -> list[dict[str, Any]]:
        answer = await record_receipts(
            self.store, self.registry, country="DE", peer="IN", receipts=receipts, now=NOW
        )
        decoded = decode_cbor(answer, max_size=1 << 20, max_depth=4)
        assert isinstance(decoded, dict)
        assert decoded["v"] == 1
        results: list[dict[str, Any]] = decoded["results"]
        return results

    async def row(self, doc_id: bytes) -> Any:
        async with self.store.read() as tx:
            (row,) = await tx.outbox_for_document(doc_id.hex())
        return row


@pytest.fixture
async def holder(tmp_path: Path) -> AsyncIterator[Holder]:
    registry = RegistryHolder()
    registry.replace(make_view(), NOW)
    store = await Store.open(tmp_path / "de.sqlite3", clock=lambda: NOW, synchronous="NORMAL")
    ids = []
    async with store.transaction() as tx:
        for n in range(3):
            document = example_import_certificate(number=f"DE-IC-P-{n}")
            raw = signed_by("DE", document)
            record = drafting.record_for(raw, document, direction="outbound", state="active")
            await tx.insert_document(record, actor="officer", outbox_peers=["IN"])
            ids.append(bytes.fromhex(record.id))
    yield Holder(store, registry, ids)
    await store.close()


async def test_outbox_is_served_in_pages_and_kept_until_acknowledged(holder: Holder) -> None:
    first = decode_cbor(await outbox_answer(holder.store, "IN", 2), max_size=1 << 20, max_depth=2)
    assert isinstance(first, dict)
    assert first["more"] is True
    assert len(first["documents"]) == 2
    assert await holder.record([holder.receipt(i) for i in holder.ids]) == [
        {"id": i, "status": "recorded", "reason": ""} for i in holder.ids
    ]
    empty = decode_cbor(await outbox_answer(holder.store, "IN", 2), max_size=1 << 20, max_depth=2)
    assert empty == {"v": 1, "documents": [], "more": False}
    row = await holder.row(holder.ids[0])
    assert row.delivered_at == NOW
    assert row.receipt == holder.receipt(holder.ids[0])
    # The same acknowledgement again changes nothing.
    assert (await holder.record([holder.receipt(holder.ids[0])]))[0]["status"] == "duplicate"


async def test_a_rejection_keeps_the_document_and_raises_the_alert(holder: Holder) -> None:
    doc = holder.ids[1]
    rejection = holder.receipt(doc, status="rejected", reason="certificate number reused")
    assert (await holder.record([rejection]))[0]["status"] == "recorded"
    row = await holder.row(doc)
    assert row.delivered_at is None
    assert "certificate number reused" in (row.last_error or "")
    async with holder.store.read() as tx:
        alerts = await tx.fetchall("SELECT kind FROM alerts WHERE document_id = ?", (doc.hex(),))
    assert alerts == [("delivery_rejected",)]
    # Once accepted, a late rejection cannot undo the delivery.
    assert (await holder.record([holder.receipt(doc)]))[0]["status"] == "recorded"
    late = holder.receipt(doc, status="rejected", reason="changed its mind", received_at=NOW - 5)
    assert (await holder.record([late]))[0]["status"] == "refused"
    assert (await holder.row(doc)).delivered_at == NOW


REFUSED: list[tuple[str, Any, str]] = [
    (
        "signed by another country (FR) than the puller",
        lambda h: h.receipt(h.ids[0], issuer="FR", authority="FR"),
        "receipt from FR",
    ),
    (
        "for a document not held for the puller",
        lambda h: h.receipt(bytes(32)),
        "is held for IN",
    ),
    (
        "a message, not a receipt",
        lambda h: signed_by(
            "IN", example_message(h.ids[0], issued_at=NOW - 10, issuer="IN", recipient="DE")
        ),
        "not a delivery receipt",
    ),
    ("garbage", lambda h: b"\x01\x02", "does not verify"),
]


@pytest.mark.parametrize(("make", "why"), [pytest.param(c[1], c[2], id=c[0]) for c in REFUSED])
async def test_receipts_that_prove_nothing_are_refused(holder: Holder, make: Any, why: str) -> None:
    (result,) = await holder.record([make(holder)])
    assert result["status"] == "refused"
    assert why in result["reason"]
    for doc in holder.ids:
        assert (await holder.row(doc)).delivered_at is None


async def test_limits_and_missing_registry_are_errors(holder: Holder) -> None:
    with pytest.raises(PeerWireError, match="limit"):
        await outbox_answer(holder.store, "IN", 0)
    with pytest.raises(RegistryUnavailableError):
        await record_receipts(
            holder.store, RegistryHolder(), country="DE", peer="IN", receipts=[b""], now=NOW
        )


async def test_pull_worker_cancelled_just_as_woken_stops() -> None:
    # The pull worker's wait is the delivery worker's (tests/node/test_delivery.py): a
    # cancellation arriving with a wake-up must stop it, not be lost.
    async with aiohttp.ClientSession() as session:
        worker = PullWorker(
            peers=(),
            pipeline=cast("InboundPipeline", None),  # no peers: never used
            session=session,
            identity=NodeIdentity(country="IN", key=SigningKey.from_seed(example_seed("IN"))),
            endpoints=lambda country: [],
            clock=lambda: NOW,
            interval_seconds=60,
        )
        await assert_stops_when_cancelled_as_woken(worker.run, worker.wake)
