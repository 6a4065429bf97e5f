"""Pull: documents for a node that cannot accept inbound connections.

The holder keeps outbox rows until the puller acknowledges them with signed receipts
(``docs/exchange.md`` section 6). Here are both sides: what the holder serves and records
(:func:`outbox_answer`, :func:`record_receipts`; the HTTP handlers in
:mod:`permitnet.node.peer_http` call them after authenticating the request) and the puller's
worker (:class:`PullWorker`), which feeds pulled documents through the same inbound pipeline as
pushed ones and posts the receipts back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import urlencode

import aiohttp

from permitnet.node.delivery import ALERT_DELIVERY_REJECTED, DeliveryError, request_peer
from permitnet.node.errors import NodeError
from permitnet.node.exchange_checks import ReceiptError, check_receipt
from permitnet.node.peer_wire import (
    MAX_BATCH,
    PATH_OUTBOX,
    PATH_RECEIPTS,
    WIRE_VERSION,
    PeerWireError,
    encode_byte_strings,
)
from permitnet.protocol.cbor import decode_cbor, encode_cbor
from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.signed import document_id

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from permitnet.node.delivery import NodeIdentity, PeerEndpoints
    from permitnet.node.exchange import InboundPipeline
    from permitnet.node.registry_holder import RegistryHolder
    from permitnet.node.store import Store
    from permitnet.protocol.documents import DeliveryReceipt

__all__ = ["DEFAULT_PULL_LIMIT", "PullWorker", "outbox_answer", "record_receipts"]

T = TypeVar("T")

log = logging.getLogger(__name__)

#: Documents served per GET unless the puller asks for fewer.
DEFAULT_PULL_LIMIT: Final = 100
#: Largest outbox answer a puller reads.
MAX_OUTBOX_ANSWER: Final = 16 * 1024 * 1024
#: Most pages one pull round fetches from one peer (bounded work per round).
MAX_PAGES_PER_ROUND: Final = 100


async def outbox_answer(store: Store, country: str, limit: int) -> bytes:
    """Return the CBOR answer listing undelivered documents held for ``country``, oldest first.

    Raises:
        PeerWireError: ``limit`` is outside 1..500.
    """
    if not 1 <= limit <= MAX_BATCH:
        raise PeerWireError(f"limit must be 1 to {MAX_BATCH}, got {limit}")
    async with store.read() as tx:
        rows = await tx.outbox_undelivered_for_peer(country, limit=limit + 1)
    documents = [row.raw for row in rows[:limit]]
    return encode_cbor({"v": WIRE_VERSION, "documents": documents, "more": len(rows) > limit})


async def record_receipts(
    store: Store,
    registry: RegistryHolder,
    *,
    country: str,
    peer: str,
    receipts: Sequence[bytes],
    now: int,
) -> bytes:
    """Record a puller's signed receipts against the outbox; return the CBOR answer.

    Each receipt must verify with a key the registry lists for ``peer``, be issued by ``peer``
    to ``country``, and name a document held for ``peer``. An ``accepted`` receipt marks the row
    delivered and is kept as proof; a ``rejected`` one keeps it undelivered and raises the
    alert, as a rejected push does.
    """
    view = registry.require()
    checked: list[tuple[bytes, DeliveryReceipt | str]] = []
    for raw in receipts:
        try:
            checked.append(check_receipt(raw, view, peer=peer, country=country, now=now))
        except ReceiptError as e:
            checked.append((document_id(raw), str(e)))
    results: list[dict[str, object]] = []
    async with store.transaction() as tx:
        for raw, (receipt_id, check) in zip(receipts, checked, strict=True):
            if isinstance(check, str):
                results.append({"id": receipt_id, "status": "refused", "reason": check})
                continue
            doc = check.document.hex()
            rows = [r for r in await tx.outbox_for_document(doc) if r.peer == peer]
            if not rows:
                reason = f"no document {doc} is held for {peer}"
                results.append({"id": check.document, "status": "refused", "reason": reason})
                continue
            if check.status == "rejected":
                if rows[0].delivered_at is not None:
                    # Already acknowledged as accepted: a later rejection cannot undo that.
                    reason = "already delivered with an acceptance receipt"
                    results.append({"id": check.document, "status": "refused", "reason": reason})
                    continue
                await tx.outbox_record_failure(
                    doc, peer, error=f"rejected by {peer}: {check.reason}", next_attempt_at=tx.now
                )
                await tx.raise_alert(
                    ALERT_DELIVERY_REJECTED,
                    doc,
                    f"{peer}'s node rejected the document: {check.reason}",
                )
                results.append({"id": check.document, "status": "recorded", "reason": ""})
                continue
            fresh = await tx.outbox_record_delivery(doc, peer, receipt=raw)
            status = "recorded" if fresh else "duplicate"
            results.append({"id": check.document, "status": status, "reason": ""})
    return encode_cbor({"v": WIRE_VERSION, "results": results})


class PullWorker:
    """Fetches the documents peers hold for this node, applies them, and acknowledges them."""

    def __init__(
        self,
        *,
        peers: Sequence[str],
        pipeline: InboundPipeline,
        session: aiohttp.ClientSession,
        identity: NodeIdentity,
        endpoints: PeerEndpoints,
        clock: Callable[[], int],
        interval_seconds: float = 30.0,
        request_timeout: float = 30.0,
    ) -> None:
        self._peers = tuple(peers)
        self._pipeline = pipeline
        self._session = session
        self._identity = identity
        self._endpoints = endpoints
        self._clock = clock
        self._interval = interval_seconds
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Pull now instead of at the next interval."""
        self._wake.set()

    async def run(self) -> None:
        """Pull from every peer each interval until cancelled; failures are logged and retried."""
        while True:
            for peer in self._peers:
                try:
                    await self.pull_from(peer)
                except (NodeError, OSError, aiohttp.ClientError) as e:
                    log.warning("pull from %s failed: %s", peer, e)
            # asyncio.timeout, not wait_for: see DeliveryWorker.run (node/delivery.py).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()

    async def pull_from(self, peer: str, *, limit: int = DEFAULT_PULL_LIMIT) -> int:
        """Fetch, apply and acknowledge what ``peer`` holds for this node; return how many.

        Raises:
            DeliveryError: the peer could not be reached or answered with something invalid.
        """
        handled = 0
        for _ in range(MAX_PAGES_PER_ROUND):
            documents, more = await self._fetch(peer, limit)
            if not documents:
                break
            results = await self._pipeline.receive(documents, from_peer=peer)
            receipts = [r.receipt for r in results if r.receipt]
            if receipts:
                await self._acknowledge(peer, receipts)
            handled += len(documents)
            # Documents held as pending here carry no receipt and stay in the peer's outbox;
            # stop rather than fetch the same page again in this round.
            if not more or len(receipts) < len(documents):
                break
        return handled

    async def _fetch(self, peer: str, limit: int) -> tuple[list[bytes], bool]:
        target = PATH_OUTBOX + "?" + urlencode({"for": self._identity.country, "limit": limit})

        def outbox(answer: bytes) -> tuple[list[bytes], bool]:
            # Checked as the endpoint's answer: a malformed one passes to the next endpoint.
            try:
                item = decode_cbor(answer, max_size=MAX_OUTBOX_ANSWER, max_depth=2)
            except ProtocolError as e:
                raise DeliveryError(f"{peer}'s outbox answer is not strict CBOR: {e}") from e
            if (
                not isinstance(item, dict)
                or set(item) != {"v", "documents", "more"}
                or item["v"] != WIRE_VERSION
                or not isinstance(item["documents"], list)
                or not all(isinstance(d, bytes) for d in item["documents"])
                or not isinstance(item["more"], bool)
                or len(item["documents"]) > limit
            ):
                raise DeliveryError(f"{peer}'s outbox answer is not a version-1 outbox map")
            return item["documents"], item["more"]

        return await self._request("GET", peer, target, b"", outbox)

    async def _acknowledge(self, peer: str, receipts: list[bytes]) -> None:
        for start in range(0, len(receipts), MAX_BATCH):
            body = encode_byte_strings(receipts[start : start + MAX_BATCH])
            await self._request("POST", peer, PATH_RECEIPTS, body, bytes)

    async def _request(
        self, method: str, peer: str, target: str, body: bytes, accept: Callable[[bytes], T]
    ) -> T:
        return await request_peer(
            self._session,
            self._identity,
            list(self._endpoints(peer)),
            peer=peer,
            method=method,
            target=target,
            body=body,
            now=self._clock,
            max_answer=MAX_OUTBOX_ANSWER,
            request_timeout=self._timeout,
            accept=accept,
        )
