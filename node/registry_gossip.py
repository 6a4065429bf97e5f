"""Split-view detection: nodes compare the registry log heads they were shown.

The INCB registry signs every snapshot's Merkle log head. A registry that showed different
countries different logs (a split view) would sign two heads that are not one append-only log;
no single node can see that alone, but two nodes comparing their heads can. This module adds:

- ``GET /peer/v1/registry-head``: answers the registry-signed head of the view this node
  accepted, the exact bytes the registry signed (``application/cbor``), to an authenticated
  partner node (the same request signatures as the other ``/peer/v1`` endpoints);
- :class:`SplitViewMonitor`, a supervised background loop that asks each partner node with a
  registry-listed endpoint for its head, verifies it under the pinned root chain (an unsigned
  head proves nothing) and compares it with this node's log
  (:meth:`~permitnet.node.registry_fetch.RegistryFetcher.check_peer_head`: same size must mean
  same root, different sizes are checked with the registry's consistency proof). A split view
  raises a ``registry_split_view`` alert, once per peer head, with both signed heads as the
  evidence to report to the INCB.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

import aiohttp
from aiohttp import web
from prometheus_client import Gauge

from permitnet.node import app as node_app
from permitnet.node import background, ops, peer_http
from permitnet.node.delivery import DeliveryError, NodeIdentity, request_peer
from permitnet.node.peer_wire import CBOR_MEDIA_TYPE
from permitnet.node.registry_fetch import RegistryFetchError
from permitnet.node.registry_holder import RegistryUnavailableError
from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.registry_errors import MixAndMatchError, SplitViewError
from permitnet.protocol.registry_snapshot import MAX_HEAD_SIZE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from permitnet.node.store import Store
    from permitnet.protocol.registry_snapshot import SignedHead

__all__ = [
    "ALERT_REGISTRY_SPLIT_VIEW",
    "DEFAULT_GOSSIP_SECONDS",
    "GOSSIP_INTERVAL_KEY",
    "PATH_REGISTRY_HEAD",
    "SPLIT_VIEW_KEY",
    "HeadCheck",
    "HeadOutcome",
    "HeadSource",
    "SplitViewMonitor",
    "setup_registry_gossip",
]

log = logging.getLogger(__name__)

PATH_REGISTRY_HEAD: Final = "/peer/v1/registry-head"
ALERT_REGISTRY_SPLIT_VIEW: Final = "registry_split_view"
#: How often the heads are compared by default; the actual wait is jittered by +-20 %.
DEFAULT_GOSSIP_SECONDS: Final = 600.0
#: The wait between rounds while this node has no signed head of its own yet.
NO_HEAD_RETRY: Final = 30.0
#: How many partner nodes are asked at the same time.
MAX_CONCURRENT_PEERS: Final = 8


class HeadOutcome(enum.StrEnum):
    """What comparing heads with one partner node showed."""

    CONSISTENT = "consistent"
    SPLIT_VIEW = "split-view"
    #: The peer answered something that is not a head signed by the registry's snapshot key.
    UNVERIFIED = "unverified"
    #: Neither is wrong, but they cannot be compared now (no data yet, another root version,
    #: or no mirror served the consistency proof).
    NOT_COMPARED = "not-compared"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadCheck:
    """The last comparison with one partner node."""

    country: str
    outcome: HeadOutcome
    detail: str
    checked_at: int


class HeadSource(Protocol):
    """What the monitor needs of the registry fetcher (its head and the comparison)."""

    @property
    def head(self) -> bytes | None:
        """The registry-signed head of the view held, or None."""
        ...

    async def check_peer_head(self, peer_head: bytes) -> SignedHead:
        """Verify a peer's head and compare it with this node's log."""
        ...


class SplitViewMonitor:
    """Asks partner nodes for their registry head and compares it with this node's."""

    def __init__(
        self,
        *,
        source: HeadSource,
        store: Store,
        identity: NodeIdentity,
        session: aiohttp.ClientSession,
        partners: Callable[[], Sequence[str]],
        endpoints: Callable[[str], Sequence[str]],
        clock: Callable[[], int],
        request_timeout: float = 30.0,
    ) -> None:
        """Set up the monitor.

        Args:
            source: the registry fetcher (the head to compare with and the proofs).
            store: where alerts are raised.
            identity: this node's country and key, to sign the requests.
            session: the node's client session.
            partners: the countries to compare with (read at each round).
            endpoints: a country's node URLs.
            clock: the current Unix time.
            request_timeout: the total time allowed for one request.
        """
        self._source = source
        self._store = store
        self._identity = identity
        self._session = session
        self._partners = partners
        self._endpoints = endpoints
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        #: The last check of each partner, by country.
        self.last: dict[str, HeadCheck] = {}

    @property
    def split_views(self) -> list[str]:
        """The partner countries whose last head showed a split view."""
        return sorted(c for c, r in self.last.items() if r.outcome is HeadOutcome.SPLIT_VIEW)

    async def run(self, interval: float, rng: random.Random | None = None) -> None:
        """Compare with every partner each ``interval`` (jittered) seconds until cancelled."""
        draw = rng or random.Random()  # noqa: S311 - jitter, not a secret
        while True:
            await self.check_all()
            # Until this node holds a signed head (just started, registry not reached yet),
            # try again sooner than the full interval.
            wait = interval if self._source.head is not None else min(interval, NO_HEAD_RETRY)
            await asyncio.sleep(wait * draw.uniform(0.8, 1.2))

    async def check_all(self) -> list[HeadCheck]:
        """Compare with every partner node now, a few at a time."""
        limit = asyncio.Semaphore(MAX_CONCURRENT_PEERS)
        own = self._identity.country

        async def one(country: str) -> HeadCheck:
            async with limit:
                return await self.check_peer(country)

        countries = [c for c in self._partners() if c != own]
        # A task group, not gather: if one check fails unexpectedly, the others are cancelled
        # and awaited rather than left running unowned.
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(c)) for c in countries]
        return [t.result() for t in tasks]

    async def check_peer(self, country: str) -> HeadCheck:
        """Fetch ``country``'s head, verify and compare it; raise an alert on a split view."""
        try:
            raw = await self._fetch(country)
        except DeliveryError as e:
            return self._record(country, HeadOutcome.UNREACHABLE, str(e))
        try:
            theirs = await self._source.check_peer_head(raw)
        except SplitViewError as e:
            await self._alert(country, raw, e)
            return self._record(country, HeadOutcome.SPLIT_VIEW, str(e))
        except (MixAndMatchError, RegistryFetchError) as e:
            return self._record(country, HeadOutcome.NOT_COMPARED, str(e))
        except ProtocolError as e:
            log.warning("%s's node answered a registry head that does not verify: %s", country, e)
            return self._record(country, HeadOutcome.UNVERIFIED, str(e))
        detail = f"registry head v{theirs.version} (log size {theirs.log_size}) is one log"
        return self._record(country, HeadOutcome.CONSISTENT, detail)

    def _record(self, country: str, outcome: HeadOutcome, detail: str) -> HeadCheck:
        check = HeadCheck(country=country, outcome=outcome, detail=detail, checked_at=self._clock())
        self.last[country] = check
        return check

    async def _alert(self, country: str, theirs: bytes, error: SplitViewError) -> None:
        mine = self._source.head
        # The subject names the peer and its head, so that each distinct conflicting head is
        # alerted once, not at every round.
        subject = f"registry-split-view-{country}-{hashlib.sha256(theirs).hexdigest()[:16]}"
        message = (
            f"Split view: the INCB registry showed {country}'s node a different log than this "
            f"node ({error}). Report it to the INCB with both registry-signed heads: "
            f"{country}'s head {theirs.hex()}; this node's head "
            f"{mine.hex() if mine else '(not fetched)'}."
        )
        log.error("registry split view detected with %s: %s", country, message)
        async with self._store.transaction() as tx:
            await tx.raise_alert(ALERT_REGISTRY_SPLIT_VIEW, subject, message)

    async def _fetch(self, country: str) -> bytes:
        return await request_peer(
            self._session,
            self._identity,
            list(self._endpoints(country)),
            peer=country,
            method="GET",
            target=PATH_REGISTRY_HEAD,
            body=b"",
            now=self._clock,
            max_answer=MAX_HEAD_SIZE,
            request_timeout=self._timeout,
            accept=bytes,
        )


#: The comparison interval in seconds (set before the app starts; default 10 minutes).
GOSSIP_INTERVAL_KEY: Final = web.AppKey("permitnet_registry_gossip_seconds", float)
#: The running monitor (present when the node fetches the registry itself).
SPLIT_VIEW_KEY: Final = web.AppKey("permitnet_split_view", SplitViewMonitor)


async def _get_head(
    request: web.Request, _exchange: peer_http.PeerExchange, body: bytes
) -> web.Response:
    await peer_http.authenticate(request, body)  # the one request check of /peer/v1
    fetcher = request.app.get(node_app.FETCHER_KEY)
    head = None if fetcher is None else fetcher.head
    if head is None:
        raise RegistryUnavailableError("this node holds no registry-signed log head yet")
    return web.Response(body=head, content_type=CBOR_MEDIA_TYPE)


def _partners(app: web.Application) -> Callable[[], Sequence[str]]:
    def countries() -> Sequence[str]:
        view = app[node_app.REGISTRY_KEY].view
        if view is None:
            return ()
        return [code for code, record in view.countries.items() if record.endpoints]

    return countries


def _endpoints(app: web.Application) -> Callable[[str], Sequence[str]]:
    def lookup(country: str) -> Sequence[str]:
        view = app[node_app.REGISTRY_KEY].view
        record = None if view is None else view.country(country)
        return () if record is None else tuple(record.endpoints)

    return lookup


async def _gossip_ctx(app: web.Application) -> AsyncIterator[None]:
    fetcher = app.get(node_app.FETCHER_KEY)
    if fetcher is None:
        # Without its own fetcher (a view given by the caller), the node has no signed head.
        log.info("registry split-view comparison off: the node does not fetch the registry")
        yield
        return
    config = app[node_app.CONFIG_KEY]
    monitor = SplitViewMonitor(
        source=fetcher,
        store=app[node_app.STORE_KEY],
        identity=NodeIdentity(country=config.country, key=app[node_app.SIGNING_KEY]),
        session=app[node_app.HTTP_SESSION_KEY],
        partners=_partners(app),
        endpoints=_endpoints(app),
        clock=app[node_app.CLOCK_KEY],
    )
    app[SPLIT_VIEW_KEY] = monitor
    # /metrics (node/ops.py): how many partners' last head showed a split view (alert on > 0).
    metrics = app.get(ops.OPS_KEY)
    gauge = None
    if metrics is not None:
        gauge = Gauge(
            "permitnet_registry_split_view_peers",
            "Partner nodes whose registry log head is not one log with this node's.",
            registry=metrics.registry,
        )
        gauge.set_function(lambda: len(monitor.split_views))
    interval = app.get(GOSSIP_INTERVAL_KEY, DEFAULT_GOSSIP_SECONDS)

    async def forever() -> None:
        await monitor.run(interval)

    task = asyncio.create_task(
        background.supervise("registry split-view comparison", forever),
        name="permitnet-registry-gossip",
    )
    try:
        yield
    finally:
        await background.stop([task])
        if metrics is not None and gauge is not None:
            metrics.registry.unregister(gauge)


def setup_registry_gossip(app: web.Application) -> None:
    """Add ``GET /peer/v1/registry-head`` and the comparison loop to a node application.

    Call it after the node's background context (which opens the fetcher and the session) and
    after :func:`permitnet.node.peer_http.setup_exchange` (whose request checks it uses).
    """
    app.router.add_get(PATH_REGISTRY_HEAD, peer_http._handler(_get_head))  # noqa: SLF001
    app.cleanup_ctx.append(_gossip_ctx)
