"""The node-to-node HTTP endpoints and the exchange's supervised background work.

:func:`setup_exchange` adds ``/peer/v1/documents``, ``/peer/v1/outbox`` and
``/peer/v1/receipts`` (``docs/exchange.md``) and a ``cleanup_ctx`` that owns the inbound
pipeline, the delivery worker, the pull worker and the retry of documents held for stale
registry data; they use the node's one client session. The workers are tasks created there
and cancelled and awaited there; a worker that fails unexpectedly is logged and restarted after
a pause, never lost.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from aiohttp import web

from permitnet.node import app as node_app
from permitnet.node import background
from permitnet.node.delivery import Backoff, DeliveryWorker, NodeIdentity
from permitnet.node.discovery import DISCOVERED_PEERS_KEY
from permitnet.node.errors import ForbiddenError, NodeError
from permitnet.node.exchange import InboundPipeline, LifecycleApplier, make_receipt_verifier
from permitnet.node.peer_auth import (
    MAX_CLOCK_SKEW,
    AuthenticatedPeer,
    NonceCache,
    PeerKeyResolver,
    UncheckedRequest,
    prepare_request,
    resolver_from_registry,
)
from permitnet.node.peer_wire import (
    CBOR_MEDIA_TYPE,
    PATH_DOCUMENTS,
    PATH_OUTBOX,
    PATH_RECEIPTS,
    PeerWireError,
    decode_byte_strings,
    encode_results,
)
from permitnet.node.pull import PullWorker, outbox_answer, record_receipts
from permitnet.node.signature_worker import IN_THREAD, SignatureWorker
from permitnet.protocol.errors import ProtocolError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    from permitnet.node.signature_worker import SignatureChecks
    from permitnet.node.store import Store

__all__ = [
    "DELIVERY_BACKOFF_KEY",
    "EXCHANGE_KEY",
    "PULL_FROM_KEY",
    "PeerExchange",
    "authenticate",
    "setup_exchange",
]

log = logging.getLogger(__name__)

#: How often documents held for stale registry data are re-checked.
PENDING_RETRY_SECONDS: Final = 30.0
#: Pause before restarting a worker that failed unexpectedly.


@dataclass(slots=True, kw_only=True)
class PeerExchange:
    """The exchange's running parts, reachable from handlers and tests through the app."""

    country: str
    store: Store
    pipeline: InboundPipeline
    nonces: NonceCache
    resolve_key: PeerKeyResolver
    delivery: DeliveryWorker
    puller: PullWorker | None
    clock: Callable[[], int]
    signatures: SignatureChecks


EXCHANGE_KEY: Final = web.AppKey("permitnet_exchange", PeerExchange)
#: The countries this node pulls from (set before the app starts; default none).
PULL_FROM_KEY: Final = web.AppKey("permitnet_pull_from", tuple)
#: The delivery retry schedule (set before the app starts; default ``Backoff()``).
DELIVERY_BACKOFF_KEY: Final = web.AppKey("permitnet_delivery_backoff", Backoff)


def _error(e: NodeError | ProtocolError, status: int | None = None) -> web.Response:
    code = getattr(e, "code", "bad_peer_body" if isinstance(e, ProtocolError) else "node_error")
    return web.json_response(
        {"error": {"code": code, "message": str(e)}}, status=status or e.status_hint
    )


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(request.content_length, limit)
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as e:
        raise _too_large(None, limit) from e


def _too_large(size: int | None, limit: int) -> PeerWireError:
    error = PeerWireError(f"body of {size or 'more than ' + str(limit)} bytes is over {limit}")
    error.status_hint = 413
    return error


async def authenticate(request: web.Request, body: bytes) -> AuthenticatedPeer:
    """Check a ``/peer/v1`` request's signed ``Authorization`` header; return its sender.

    The Ed25519 check runs in the signature worker when the node has one.

    Raises:
        PeerAuthError: see :func:`permitnet.node.peer_auth.verify_request`.
    """
    exchange = request.app[EXCHANGE_KEY]
    now = exchange.clock()
    unchecked = prepare_request(
        request.headers.get("Authorization"), now=now, resolve_key=exchange.resolve_key
    )
    [holds] = await exchange.signatures.holds([unchecked.check])
    return _finish(request, exchange, unchecked, body, holds=holds, now=now)


def _finish(
    request: web.Request,
    exchange: PeerExchange,
    unchecked: UncheckedRequest,
    body: bytes,
    *,
    holds: bool,
    now: int,
) -> AuthenticatedPeer:
    return unchecked.finish(
        holds=holds,
        method=request.method,
        target=request.raw_path,
        body=body,
        audience=exchange.country,
        now=now,
        nonces=exchange.nonces,
    )


def _handler(
    inner: Callable[[web.Request, PeerExchange, bytes], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        exchange = request.app[EXCHANGE_KEY]
        limit = request.app[node_app.CONFIG_KEY].max_request_bytes
        try:
            body = await _read_body(request, limit)
        except PeerWireError as e:
            return _error(e)
        if body and request.content_type != CBOR_MEDIA_TYPE:
            return _error(PeerWireError(f"Content-Type must be {CBOR_MEDIA_TYPE}"), 415)
        try:
            return await inner(request, exchange, body)
        except (NodeError, ProtocolError) as e:
            return _error(e)

    return handle


async def _post_documents(
    request: web.Request, exchange: PeerExchange, body: bytes
) -> web.Response:
    # The request's signature and its documents' go to the signature worker together: one
    # round trip, not two. Nothing of a document is used unless the request then verifies.
    unchecked = prepare_request(
        request.headers.get("Authorization"), now=exchange.clock(), resolve_key=exchange.resolve_key
    )
    try:
        raws = decode_byte_strings(body, max_size=len(body))
        unframed: PeerWireError | None = None
    except PeerWireError as e:
        # Answered once the request is authenticated: a stranger learns nothing from it.
        raws, unframed = [], e
    documents = exchange.pipeline.prepare(raws)
    holds = await exchange.signatures.holds([unchecked.check, *documents.checks])
    peer = _finish(request, exchange, unchecked, body, holds=holds[0], now=documents.now)
    if unframed is not None:
        raise unframed
    claims = peer.claims
    nonce = (peer.kid, claims.nonce, claims.timestamp + MAX_CLOCK_SKEW)
    results = await exchange.pipeline.receive_prepared(
        documents, holds[1:], from_peer=peer.country, nonce=nonce
    )
    return web.Response(body=encode_results(results), content_type=CBOR_MEDIA_TYPE)


async def _persist_nonce(exchange: PeerExchange, peer: AuthenticatedPeer) -> None:
    # Pushes persist their nonce with the documents; pull requests do it here, so that a replay
    # is refused after a restart too.
    async with exchange.store.transaction() as tx:
        await tx.execute(
            "INSERT INTO nonces (key_id, nonce, seen_at, expires_at) VALUES (?,?,?,?)",
            (
                peer.kid.hex(),
                peer.claims.nonce.hex(),
                tx.now,
                peer.claims.timestamp + MAX_CLOCK_SKEW,
            ),
        )


async def _get_outbox(request: web.Request, exchange: PeerExchange, body: bytes) -> web.Response:
    peer = await authenticate(request, body)
    await _persist_nonce(exchange, peer)
    wanted = request.query.get("for", "")
    if wanted != peer.country:
        raise ForbiddenError(f"{peer.country} may pull only its own documents, not {wanted!r}")
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError as e:
        raise PeerWireError("limit must be an integer") from e
    answer = await outbox_answer(exchange.store, peer.country, limit)
    return web.Response(body=answer, content_type=CBOR_MEDIA_TYPE)


async def _post_receipts(request: web.Request, exchange: PeerExchange, body: bytes) -> web.Response:
    peer = await authenticate(request, body)
    await _persist_nonce(exchange, peer)
    receipts = decode_byte_strings(body, max_size=len(body))
    answer = await record_receipts(
        exchange.store,
        request.app[node_app.REGISTRY_KEY],
        country=exchange.country,
        peer=peer.country,
        receipts=receipts,
        now=exchange.clock(),
    )
    return web.Response(body=answer, content_type=CBOR_MEDIA_TYPE)


async def _housekeeping(pipeline: InboundPipeline, store: Store) -> None:
    # Documents held for stale registry data are re-decided once it is fresh again, and
    # nonces past the replay window are dropped (the window check refuses those requests).
    await pipeline.retry_pending()
    async with store.transaction() as tx:
        await tx.execute("DELETE FROM nonces WHERE expires_at < ?", (tx.now,))


def _endpoints(app: web.Application) -> Callable[[str], Sequence[str]]:
    def lookup(country: str) -> Sequence[str]:
        view = app[node_app.REGISTRY_KEY].view
        record = None if view is None else view.country(country)
        registered = () if record is None else tuple(record.endpoints)
        # LAN discovery (node/discovery.py): addresses that passed the signed challenge, tried
        # after the registry's endpoints.
        found = app.get(DISCOVERED_PEERS_KEY)
        discovered = () if found is None else found.urls(country)
        return (*registered, *(u for u in discovered if u not in registered))

    return lookup


async def _exchange_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[node_app.CONFIG_KEY]
    store = app[node_app.STORE_KEY]
    key = app[node_app.SIGNING_KEY]
    holder = app[node_app.REGISTRY_KEY]
    clock = app[node_app.CLOCK_KEY]
    identity = NodeIdentity(country=config.country, key=key)
    nonces = NonceCache()
    async with store.read() as tx:
        rows = await tx.fetchall("SELECT key_id, nonce, expires_at FROM nonces")
    nonces.load([(bytes.fromhex(k) + bytes.fromhex(n), exp) for k, n, exp in rows], now=clock())
    worker = SignatureWorker() if config.signature_worker else None
    signatures: SignatureChecks = worker or IN_THREAD
    pipeline = InboundPipeline(
        store=store,
        country=config.country,
        authority=config.authority_name,
        signing_key=key,
        registry=holder,
        applier=LifecycleApplier(app[node_app.SERVICES_KEY]),
        clock=clock,
        grace_seconds=config.registry_grace_seconds,
        signatures=signatures,
    )
    # The node's one outgoing HTTP session (node/app.py), opened by a context appended before
    # this one and so closed after it.
    session = app[node_app.HTTP_SESSION_KEY]
    delivery = DeliveryWorker(
        store=store,
        session=session,
        identity=identity,
        endpoints=_endpoints(app),
        verify_receipt=make_receipt_verifier(holder, config.country),
        backoff=app.get(DELIVERY_BACKOFF_KEY),
    )
    pull_from: tuple[str, ...] = app.get(PULL_FROM_KEY, ())
    puller = (
        PullWorker(
            peers=pull_from,
            pipeline=pipeline,
            session=session,
            identity=identity,
            endpoints=_endpoints(app),
            clock=clock,
            interval_seconds=config.pull_interval_seconds,
        )
        if pull_from
        else None
    )
    app[EXCHANGE_KEY] = PeerExchange(
        country=config.country,
        store=store,
        pipeline=pipeline,
        nonces=nonces,
        resolve_key=resolver_from_registry(lambda: holder.view),
        delivery=delivery,
        puller=puller,
        clock=clock,
        signatures=signatures,
    )

    store.add_outbox_listener(delivery.wake)
    tasks = [
        asyncio.create_task(
            background.supervise("delivery", delivery.run), name="permitnet-delivery"
        ),
        asyncio.create_task(
            background.every(
                PENDING_RETRY_SECONDS,
                lambda: _housekeeping(pipeline, store),
                "exchange housekeeping",
            ),
            name="permitnet-exchange-housekeeping",
        ),
    ]
    if puller is not None:
        tasks.append(
            asyncio.create_task(background.supervise("pull", puller.run), name="permitnet-pull")
        )
    try:
        yield
    finally:
        store.remove_outbox_listener(delivery.wake)
        await background.stop(tasks)
        await pipeline.close()
        if worker is not None:
            await worker.close()


def setup_exchange(app: web.Application) -> None:
    """Add the peer endpoints and the exchange's resources to a node application.

    Call it after the node's own ``cleanup_ctx`` (store, key, services) has been appended: the
    exchange's context uses them.
    """
    app.router.add_post(PATH_DOCUMENTS, _handler(_post_documents))
    app.router.add_get(PATH_OUTBOX, _handler(_get_outbox))
    app.router.add_post(PATH_RECEIPTS, _handler(_post_receipts))
    app.cleanup_ctx.append(_exchange_ctx)
