"""Operating a node: health, readiness and Prometheus metrics (JSON logs: node/logs.py).

* ``GET /healthz`` answers 200 while the process and its event loop are alive (a liveness probe:
  restart the node when it stops answering).
* ``GET /readyz`` answers 200 only when the node can do its work: the database answers a query,
  the signing key is loaded, and the registry data has not expired beyond the grace period;
  otherwise 503, with every check and its reason in the JSON body (a load balancer stops sending
  traffic; an operator reads why).
* ``GET /metrics`` is the Prometheus text exposition format: documents by state, outbox depth
  and the age of its oldest row per peer, deliveries failing now, failed delivery attempts per
  peer, delivery latency as a histogram, and the registry snapshot's version, age and time to
  expiry.

The figures that live in the database are read at scrape time with a few aggregate queries, so
they are true after a restart and need no bookkeeping in the code that changes them. Each app
has its own ``CollectorRegistry``, so several nodes in one process (tests, the demo) never mix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from permitnet.node.config import DEFAULT_REGISTRY_GRACE_SECONDS
from permitnet.node.discovery import DISCOVERED_PEERS_KEY, DiscoveredPeers
from permitnet.node.discovery_challenge import ChallengeResponder, setup_challenge
from permitnet.node.errors import NodeError
from permitnet.node.registry_fetch import Freshness, classify

if TYPE_CHECKING:
    from collections.abc import Callable

    from permitnet.node.keystore import SigningKey
    from permitnet.node.store import Store
    from permitnet.protocol.registry_view import RegistryView

__all__ = [
    "OPS_KEY",
    "OpsProbes",
    "RegistryFreshness",
    "mount_on_node",
    "setup_ops",
]

#: Delivery latency buckets, seconds: from a loopback push to a peer that was down for a day.
LATENCY_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryFreshness:
    """How fresh the node's registry data is.

    Attributes:
        version: the snapshot version the node holds.
        issued_at: when the registry issued it (Unix seconds).
        expires_at: when it expires (Unix seconds).
        grace_seconds: how long past expiry the node keeps exchanging.
    """

    version: int
    issued_at: int
    expires_at: int
    grace_seconds: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OpsProbes:
    """Where the ops endpoints read the node's state; the app factory supplies them.

    Attributes:
        store: returns the node's open store.
        registry: returns the registry data's freshness, or ``None`` before the first snapshot.
        signing_key_loaded: whether the node's signing key is unlocked and usable.
        clock: the current Unix time.
    """

    store: Callable[[], Store]
    registry: Callable[[], RegistryFreshness | None]
    signing_key_loaded: Callable[[], bool]
    clock: Callable[[], int] = lambda: int(time.time())


class _Ops:
    def __init__(self, probes: OpsProbes) -> None:
        self.probes = probes
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.documents = Gauge(
            "permitnet_documents",
            "Stored documents by type, direction and state.",
            ["doc_type", "direction", "state"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "permitnet_outbox_depth", "Undelivered outbox rows per peer.", ["peer"], registry=r
        )
        self.outbox_oldest = Gauge(
            "permitnet_outbox_oldest_age_seconds",
            "Age of the oldest undelivered outbox row per peer.",
            ["peer"],
            registry=r,
        )
        self.outbox_failing = Gauge(
            "permitnet_outbox_failing",
            "Undelivered outbox rows whose last attempt failed, per peer.",
            ["peer"],
            registry=r,
        )
        self.failed_attempts = Gauge(
            "permitnet_delivery_failed_attempts",
            "Delivery attempts to a peer that failed, since the node was set up (from the outbox).",
            ["peer"],
            registry=r,
        )
        self.pending = Gauge(
            "permitnet_inbound_pending",
            "Received documents waiting for a dependency or fresh registry data.",
            ["reason"],
            registry=r,
        )
        self.quarantine = Gauge(
            "permitnet_quarantine_total", "Rejected inputs kept for audit.", registry=r
        )
        self.latency = _LatencyCollector(self)
        r.register(self.latency)
        self.registry_version = Gauge(
            "permitnet_registry_snapshot_version", "Version of the registry snapshot.", registry=r
        )
        self.registry_age = Gauge(
            "permitnet_registry_snapshot_age_seconds",
            "Seconds since the registry issued the snapshot the node holds.",
            registry=r,
        )
        self.registry_expiry = Gauge(
            "permitnet_registry_snapshot_expires_in_seconds",
            "Seconds until the snapshot expires (negative once expired).",
            registry=r,
        )
        self.ready = Gauge("permitnet_ready", "1 when /readyz would answer 200.", registry=r)

    async def refresh(self) -> None:
        """Read the database figures into the gauges (called once per scrape)."""
        store = self.probes.store()
        now = self.probes.clock()
        async with store.read() as tx:
            documents = await tx.fetchall(
                "SELECT doc_type, direction, state, count(*) FROM documents "
                "GROUP BY doc_type, direction, state"
            )
            outbox = await tx.fetchall(
                "SELECT peer, count(*), min(created_at), "
                "sum(CASE WHEN last_error IS NOT NULL THEN 1 ELSE 0 END) "
                "FROM outbox WHERE delivered_at IS NULL GROUP BY peer"
            )
            failed = await tx.fetchall(
                "SELECT peer, sum(attempts) - count(delivered_at) FROM outbox GROUP BY peer"
            )
            pending = await tx.fetchall(
                "SELECT reason, count(*) FROM inbound_pending GROUP BY reason"
            )
            quarantined = await tx.fetchone("SELECT count(*) FROM quarantine")
            latency = await tx.fetchone(_LATENCY_SQL, LATENCY_BUCKETS)
        if latency is not None:
            n = len(LATENCY_BUCKETS)
            self.latency.counts = (
                [int(c) for c in latency[:n]],
                int(latency[n]),
                int(latency[n + 1]),
            )
        # Labels that vanished (a peer whose outbox drained) must not keep their last value.
        for gauge in (self.documents, self.outbox_depth, self.outbox_oldest, self.outbox_failing):
            gauge.clear()
        for doc_type, direction, state, count in documents:
            self.documents.labels(doc_type=doc_type, direction=direction, state=state).set(count)
        for peer, depth, oldest, failing in outbox:
            self.outbox_depth.labels(peer=peer).set(depth)
            self.outbox_oldest.labels(peer=peer).set(max(0, now - int(oldest)))
            self.outbox_failing.labels(peer=peer).set(failing or 0)
        self.failed_attempts.clear()
        for peer, count in failed:
            self.failed_attempts.labels(peer=peer).set(count or 0)
        self.pending.clear()
        for reason, count in pending:
            self.pending.labels(reason=reason).set(count)
        self.quarantine.set(quarantined[0] if quarantined else 0)
        freshness = self.probes.registry()
        if freshness is not None:
            self.registry_version.set(freshness.version)
            self.registry_age.set(now - freshness.issued_at)
            self.registry_expiry.set(freshness.expires_at - now)

    async def checks(self) -> dict[str, dict[str, Any]]:
        """Run the readiness checks; each names its outcome and, when failing, why."""
        results: dict[str, dict[str, Any]] = {}
        try:
            async with self.probes.store().read() as tx:
                await tx.fetchone("SELECT 1")
            results["database"] = {"ok": True}
        except (NodeError, OSError, ValueError) as e:
            # ValueError: aiosqlite raises it on a closed connection.
            results["database"] = {"ok": False, "reason": f"database unreachable: {e}"}
        results["signing_key"] = (
            {"ok": True}
            if self.probes.signing_key_loaded()
            else {"ok": False, "reason": "the signing key is not loaded"}
        )
        results["registry"] = _registry_check(self.probes.registry(), self.probes.clock())
        return results


def _registry_check(freshness: RegistryFreshness | None, now: int) -> dict[str, Any]:
    if freshness is None:
        return {"ok": False, "reason": "no registry snapshot has been accepted yet"}
    detail: dict[str, Any] = {
        "version": freshness.version,
        "age_seconds": now - freshness.issued_at,
        "expires_at": freshness.expires_at,
    }
    deadline = freshness.expires_at + freshness.grace_seconds
    state = classify(freshness.expires_at, freshness.grace_seconds, now)
    if state is Freshness.FRESH:
        return {"ok": True, **detail}
    if state is Freshness.STALE_IN_GRACE:
        return {
            "ok": True,
            "warning": f"registry snapshot v{freshness.version} expired "
            f"{now - freshness.expires_at} s ago; within the grace period until {deadline}",
            **detail,
        }
    return {
        "ok": False,
        "reason": f"registry snapshot v{freshness.version} expired {now - freshness.expires_at} s"
        f" ago, beyond the {freshness.grace_seconds} s grace period",
        **detail,
    }


class _LatencyCollector:
    """Delivery latency (outbox row created to peer's receipt) as a Prometheus histogram.

    The bucket counts are computed by SQLite in one aggregate query at scrape time, so a scrape
    costs one pass over the delivered outbox rows and no rows cross into Python.
    """

    def __init__(self, ops: _Ops) -> None:
        self.ops = ops
        #: (cumulative count per bucket, total count, sum), set by the last refresh.
        self.counts: tuple[list[int], int, int] = ([0] * len(LATENCY_BUCKETS), 0, 0)

    def collect(self) -> list[Any]:
        from prometheus_client.core import HistogramMetricFamily  # noqa: PLC0415 - core is heavy

        counts, total, seconds = self.counts
        buckets = [(_fmt(b), c) for b, c in zip(LATENCY_BUCKETS, counts, strict=True)]
        buckets.append(("+Inf", total))
        family = HistogramMetricFamily(
            "permitnet_delivery_latency_seconds",
            "Time from a document's outbox row to the peer's signed receipt (whole seconds).",
            buckets=buckets,
            sum_value=seconds,
        )
        return [family]

    def describe(self) -> list[Any]:
        return []


#: One aggregate over delivered outbox rows: a cumulative count per bucket, the count and sum.
_LATENCY_SQL: Final = (
    "SELECT "  # noqa: S608 - fixed text; the bucket bounds are bound parameters
    + "coalesce(sum(CASE WHEN lat <= ? THEN 1 ELSE 0 END), 0), " * len(LATENCY_BUCKETS)
    + "count(*), coalesce(sum(lat), 0) FROM (SELECT max(0, delivered_at - created_at) AS lat "
    "FROM outbox WHERE delivered_at IS NOT NULL)"
)


def _fmt(bound: float) -> str:
    return str(float(bound))


#: The ops state of an app: its probes and its metrics registry.
OPS_KEY: Final = web.AppKey("permitnet_ops", _Ops)

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    """Liveness: the process and its event loop answer."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Readiness: database, signing key and registry freshness, each with its reason."""
    ops = request.app[OPS_KEY]
    checks = await ops.checks()
    ready = all(check["ok"] for check in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of the node's figures."""
    ops = request.app[OPS_KEY]
    await ops.refresh()
    checks = await ops.checks()
    ops.ready.set(1 if all(check["ok"] for check in checks.values()) else 0)
    body = generate_latest(ops.registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_PLAIN_0_0_4
    return response


def setup_ops(app: web.Application, probes: OpsProbes) -> None:
    """Mount ``/healthz``, ``/readyz`` and ``/metrics`` on a node app.

    Args:
        app: the node's application, before it starts.
        probes: where the endpoints read the node's state.
    """
    app[OPS_KEY] = _Ops(probes)
    app.add_routes(routes)


def _configured_grace(app: web.Application) -> int:
    # Imported at call time: app.py imports this module, and calls us from create_app, after
    # it has put the configuration in the app.
    from permitnet.node.app import CONFIG_KEY  # noqa: PLC0415

    config = app.get(CONFIG_KEY)
    return DEFAULT_REGISTRY_GRACE_SECONDS if config is None else config.registry_grace_seconds


def mount_on_node(
    app: web.Application,
    *,
    country: str,
    store: Callable[[], Store],
    registry: Callable[[], RegistryView | None],
    signing_key: Callable[[], SigningKey | None],
    clock: Callable[[], int],
    grace_seconds: int | None = None,
) -> None:
    """Mount the ops endpoints and the discovery challenge on the node's app.

    The app factory calls this once; every argument is read at request time, so the store and
    key opened later in the app's cleanup context, and a rotated key, are seen.

    Args:
        app: the node's application, before it starts.
        country: the node's country.
        store: returns the open store.
        registry: returns the current verified registry view, or ``None``.
        signing_key: returns the loaded signing key, or ``None`` before it is loaded.
        clock: the current Unix time.
        grace_seconds: how long past expiry the registry data is still used; by default the
            node configuration's ``registry_grace_seconds``, as the exchange uses.
    """
    if grace_seconds is None:
        grace_seconds = _configured_grace(app)

    def freshness() -> RegistryFreshness | None:
        view = registry()
        if view is None:
            return None
        return RegistryFreshness(
            version=view.version,
            issued_at=view.issued_at,
            expires_at=view.expires_at,
            grace_seconds=grace_seconds,
        )

    def key() -> SigningKey:
        loaded = signing_key()
        if loaded is None:
            raise DiscoveryNotReadyError("the signing key is not loaded yet")
        return loaded

    # Verified LAN addresses of peers (empty unless discovery runs; node/discovery.py).
    app[DISCOVERED_PEERS_KEY] = DiscoveredPeers()
    setup_challenge(
        app,
        ChallengeResponder(
            country=country,
            signing_key=lambda: key().seed,
            kid=lambda: key().kid,
            clock=clock,
        ),
    )
    setup_ops(
        app,
        OpsProbes(
            store=store,
            registry=freshness,
            signing_key_loaded=lambda: signing_key() is not None,
            clock=clock,
        ),
    )


class DiscoveryNotReadyError(NodeError):
    """The challenge cannot be answered before the node has loaded its key."""

    status_hint = 503
    code = "not_ready"
