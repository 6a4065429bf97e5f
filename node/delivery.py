"""The outbox worker: pushes signed documents to the trading country's node until it has them.

The outbox row is written in the same transaction as the document (``Tx.insert_document``), so
a document that is stored is always scheduled for delivery, across crashes and restarts: this
worker keeps no state of its own beyond the database. It takes the due rows, groups them by
peer country, and POSTs each group as one signed batch (``docs/exchange.md``). For each document
the peer answers with a signed delivery receipt, which is verified and stored with the row as
proof of delivery. A failed attempt is retried after a capped exponential backoff with jitter;
a document the peer rejects is retried on the same schedule (the peer's registry data may lag
behind a new key) and raises an alert once, so that an official looks at it.

If the worker crashes between the peer's answer and the database update, the document is simply
sent again after the restart: the peer acknowledges a re-delivery without changing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

import aiohttp

from permitnet.node.errors import NodeError
from permitnet.node.peer_auth import sign_request
from permitnet.node.peer_wire import (
    CBOR_MEDIA_TYPE,
    MAX_BATCH,
    PATH_DOCUMENTS,
    DocumentResult,
    decode_results,
    encode_byte_strings,
)
from permitnet.protocol.signed import document_id

if TYPE_CHECKING:
    from permitnet.node.keystore import SigningKey
    from permitnet.node.store import Store
    from permitnet.node.store_exchange import OutboxEntry

__all__ = [
    "Backoff",
    "DeliveryError",
    "DeliveryWorker",
    "NodeIdentity",
    "PeerEndpoints",
    "ReceiptVerifier",
    "read_capped",
    "request_peer",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Largest batch body the worker sends; peers accept at least 1 MiB (``max_request_bytes``).
MAX_BATCH_BYTES: Final = 768 * 1024
#: Largest answer accepted from a peer.
MAX_ANSWER_BYTES: Final = 8 * 1024 * 1024
#: Alert kind raised when a peer rejects a document.
ALERT_DELIVERY_REJECTED: Final = "delivery_rejected"

#: Returns the base URLs of a country's node as the registry lists them (first tried first).
PeerEndpoints = Callable[[str], Sequence[str]]
#: Verifies a peer's signed receipt for a document (receipt, document id, peer, now) and returns
#: its status, ``accepted`` or ``rejected``; raises ``NodeError`` if it does not prove that
#: ``peer`` decided on the document with that id.
ReceiptVerifier = Callable[[bytes, bytes, str, int], str]


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read a whole response body, refusing one larger than ``limit`` bytes.

    Raises:
        DeliveryError: the body is larger than ``limit``.
    """
    if response.content_length is not None and response.content_length > limit:
        raise DeliveryError(f"answer of {response.content_length} bytes is over {limit}")
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise DeliveryError(f"answer is over {limit} bytes")
    return bytes(body)


class DeliveryError(NodeError):
    """A push to a peer failed as a whole: unreachable, refused, or an answer not understood."""

    status_hint = 502
    code = "delivery_failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeIdentity:
    """Who this node is on the wire: its country and its registered signing key."""

    country: str
    key: SigningKey


async def request_peer(
    session: aiohttp.ClientSession,
    identity: NodeIdentity,
    endpoints: Sequence[str],
    *,
    peer: str,
    method: str,
    target: str,
    body: bytes,
    now: Callable[[], int],
    max_answer: int,
    request_timeout: aiohttp.ClientTimeout,
    accept: Callable[[bytes], T],
) -> T:
    """Send a signed node-to-node request to ``peer``; return what ``accept`` makes of the answer.

    The registry's endpoints for the peer are tried in order within one attempt: an endpoint
    that is unreachable, answers other than 200, answers too much, or answers what ``accept``
    refuses (a ``NodeError``) is passed over for the next. Each request is signed afresh (a new
    nonce): a peer that saw the first one would refuse its replay.

    Raises:
        DeliveryError: no endpoint gave an answer ``accept`` took; the reasons of each.
    """
    errors: list[str] = []
    for base in endpoints:
        header = sign_request(
            method=method,
            target=target,
            body=body,
            sender=identity.country,
            audience=peer,
            signing_key=identity.key.seed,
            kid=identity.key.kid,
            now=now(),
        )
        headers = {"Authorization": header}
        if body:
            headers["Content-Type"] = CBOR_MEDIA_TYPE
        try:
            async with session.request(
                method,
                base.rstrip("/") + target,
                data=body or None,
                headers=headers,
                timeout=request_timeout,
            ) as response:
                answer = await read_capped(response, max_answer)
                if response.status != 200:
                    text = answer[:300].decode("utf-8", "replace")
                    errors.append(f"{base}: HTTP {response.status}: {text}")
                    continue
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            errors.append(f"{base}: unreachable: {type(e).__name__}: {e}")
            continue
        except DeliveryError as e:
            errors.append(f"{base}: {e}")
            continue
        try:
            return accept(answer)
        except NodeError as e:
            errors.append(f"{base}: answer not understood: {e}")
    raise DeliveryError("; ".join(errors) or f"the registry lists no node endpoint for {peer}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Capped exponential backoff with "equal jitter".

    The n-th consecutive failure waits between half and all of ``min(cap, base * 2**(n-1))``
    seconds: never zero, so a peer that is down is not hammered, and spread out, so that many
    nodes coming back together do not all retry in the same second.
    """

    base: float = 2.0
    cap: float = 900.0

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise NodeError(f"backoff needs 0 < base <= cap, got {self.base} and {self.cap}")

    def delay(self, failures: int, rng: random.Random) -> float:
        """Return the wait in seconds after the ``failures``-th consecutive failure (1-based)."""
        ceiling = min(self.cap, self.base * 2.0 ** min(max(failures, 1) - 1, 60))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def plan_batches(entries: Sequence[OutboxEntry]) -> list[list[OutboxEntry]]:
    """Group due outbox rows by peer, then cut each group into batches of bounded size."""
    by_peer: dict[str, list[OutboxEntry]] = defaultdict(list)
    for entry in entries:
        by_peer[entry.peer].append(entry)
    batches: list[list[OutboxEntry]] = []
    for group in by_peer.values():
        current: list[OutboxEntry] = []
        size = 0
        for entry in group:
            if current and (len(current) >= MAX_BATCH or size + len(entry.raw) > MAX_BATCH_BYTES):
                batches.append(current)
                current, size = [], 0
            current.append(entry)
            size += len(entry.raw) + 5  # each byte string's CBOR head is at most 5 bytes here
        if current:
            batches.append(current)
    return batches


class DeliveryWorker:
    """Delivers due outbox rows; run :meth:`run` under the application's ``cleanup_ctx``."""

    def __init__(
        self,
        *,
        store: Store,
        session: aiohttp.ClientSession,
        identity: NodeIdentity,
        endpoints: PeerEndpoints,
        verify_receipt: ReceiptVerifier,
        backoff: Backoff | None = None,
        idle_poll_seconds: float = 30.0,
        request_timeout: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._session = session
        self._identity = identity
        self._endpoints = endpoints
        self._verify_receipt = verify_receipt
        self._backoff = backoff or Backoff()
        self._idle_poll = idle_poll_seconds
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._rng = rng or random.SystemRandom()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Ask the worker to look at the outbox now (a document was just stored)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled. A failed round is logged and retried, never fatal."""
        while True:
            try:
                await self.deliver_due()
            except (NodeError, OSError, aiohttp.ClientError) as e:
                # The database or the network failed as a whole; rows stay due and are
                # retried on the next round, so nothing is lost.
                log.warning("delivery round failed: %s", e)
            idle = await self._idle_time()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns normally when it is
            # cancelled just as the event is set, and the worker would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(idle):
                    await self._wake.wait()
            self._wake.clear()

    async def _idle_time(self) -> float:
        async with self._store.read() as tx:
            row = await tx.fetchone(
                "SELECT min(next_attempt_at) FROM outbox WHERE delivered_at IS NULL"
            )
        if row is None or row[0] is None:
            return self._idle_poll
        return float(min(self._idle_poll, max(0.05, row[0] - self._store.now())))

    async def deliver_due(self, *, limit: int = 2000) -> int:
        """Attempt every due outbox row once; return how many are delivered now."""
        async with self._store.read() as tx:
            due = await tx.outbox_due(limit=limit)
        if not due:
            return 0
        delivered = 0
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._deliver_batch(batch)) for batch in plan_batches(due)]
        for task in tasks:
            delivered += task.result()
        return delivered

    async def _deliver_batch(self, batch: list[OutboxEntry]) -> int:
        peer = batch[0].peer
        try:
            results = await self.push(peer, [entry.raw for entry in batch])
        except DeliveryError as e:
            await self._record_failures(batch, str(e))
            return 0
        return await self._record_results(batch, results)

    async def push(self, peer: str, raws: Sequence[bytes]) -> list[DocumentResult]:
        """POST signed documents to ``peer``'s node and return its checked answer.

        Raises:
            DeliveryError: no endpoint answered with a valid answer for this batch.
        """
        body = encode_byte_strings(raws)
        expected = [document_id(raw) for raw in raws]
        return await request_peer(
            self._session,
            self._identity,
            list(self._endpoints(peer)),
            peer=peer,
            method="POST",
            target=PATH_DOCUMENTS,
            body=body,
            now=self._store.now,
            max_answer=MAX_ANSWER_BYTES,
            request_timeout=self._timeout,
            accept=lambda answer: decode_results(
                answer, expected=expected, max_size=MAX_ANSWER_BYTES
            ),
        )

    async def _record_failures(self, batch: Sequence[OutboxEntry], error: str) -> None:
        async with self._store.transaction() as tx:
            for entry in batch:
                delay = self._backoff.delay(entry.attempts + 1, self._rng)
                await tx.outbox_record_failure(
                    entry.document_id,
                    entry.peer,
                    error=error,
                    next_attempt_at=tx.now + max(1, round(delay)),
                )

    async def _record_results(
        self, batch: Sequence[OutboxEntry], results: Sequence[DocumentResult]
    ) -> int:
        delivered = 0
        now = self._store.now()
        # Receipts are verified before the transaction: verification is CPU work, and holding
        # the store's writer lock during it would stall the node's other writers.
        verdicts = [
            self._verdict(entry, result, now) for entry, result in zip(batch, results, strict=True)
        ]
        async with self._store.transaction() as tx:
            for entry, result, (error, alert) in zip(batch, results, verdicts, strict=True):
                if error is None:
                    if await tx.outbox_record_delivery(
                        entry.document_id, entry.peer, receipt=result.receipt
                    ):
                        delivered += 1
                    continue
                delay = self._backoff.delay(entry.attempts + 1, self._rng)
                await tx.outbox_record_failure(
                    entry.document_id,
                    entry.peer,
                    error=error,
                    next_attempt_at=tx.now + max(1, round(delay)),
                )
                if alert:
                    await tx.raise_alert(
                        ALERT_DELIVERY_REJECTED,
                        entry.document_id,
                        f"{entry.peer}'s node rejected the document: {result.reason}",
                    )
        return delivered

    def _verdict(
        self, entry: OutboxEntry, result: DocumentResult, now: int
    ) -> tuple[str | None, bool]:
        """Return (error to record or None when delivered, whether to raise the alert)."""
        if result.outcome == "pending":
            return f"held as pending by {entry.peer}: {result.reason}", False
        try:
            status = self._verify_receipt(result.receipt, result.document_id, entry.peer, now)
        except NodeError as e:
            return f"receipt refused: {e}", False
        if result.outcome == "rejected":
            if status != "rejected":
                return "answer says rejected but the signed receipt does not", False
            return f"rejected by {entry.peer}: {result.reason}", True
        if status != "accepted":
            return f"answer says {result.outcome} but the signed receipt says {status}", False
        return None, False
