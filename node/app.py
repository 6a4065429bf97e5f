"""The node's application factory: ``create_app(config) -> web.Application``.

Every resource lives in ``cleanup_ctx``: the database, the decrypted signing key, the event bus,
the lifecycle services, the one HTTP client session, the registry fetcher and the supervised
background loops (registry refresh, overdue check). Typed state is reached through
the ``web.AppKey`` constants below, which the exchange and the web app use too.

Background work is owned, never fire-and-forget: each loop is a task created here, cancelled
and awaited at cleanup; one failed round is logged (a failed refresh is also recorded in the
:class:`RegistryHolder`, which ``/readyz`` and the API show), and the loop goes on.

``create_app`` also mounts the node-to-node exchange (:mod:`permitnet.node.peer_http`) and the
operations endpoints (:mod:`permitnet.node.ops`); those modules reach the resources through the
keys defined here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import aiohttp
from aiohttp import web

from permitnet.node import api, audit, ops, peer_http, registry_gossip
from permitnet.node.background import every, stop
from permitnet.node.config import NodeConfig
from permitnet.node.errors import ConfigError, NodeError
from permitnet.node.events import EventBus
from permitnet.node.keystore import SigningKey, load_key
from permitnet.node.lifecycle import NodeServices
from permitnet.node.registry_fetch import RegistryFetcher
from permitnet.node.registry_holder import RegistryHolder
from permitnet.node.store import Store
from permitnet.node.web import NodeKeys, WebSettings, setup_web
from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.registry_view import RegistryView

__all__ = [
    "BUS_KEY",
    "CLOCK_KEY",
    "CONFIG_KEY",
    "FETCHER_KEY",
    "HTTP_SESSION_KEY",
    "REGISTRY_KEY",
    "SERVICES_KEY",
    "SIGNING_KEY",
    "STORE_KEY",
    "Clock",
    "RegistryRefresh",
    "create_app",
]

_log = logging.getLogger(__name__)

#: How often the running node logs the audit log's head (when it has changed).
AUDIT_HEAD_LOG_SECONDS: Final = 3600.0

Clock = Callable[[], int]
#: Fetch and verify the newest registry view (the registry client's refresh).
RegistryRefresh = Callable[[], Awaitable[RegistryView]]

CONFIG_KEY: Final = web.AppKey("permitnet_config", NodeConfig)
STORE_KEY: Final = web.AppKey("permitnet_store", Store)
SIGNING_KEY: Final = web.AppKey("permitnet_signing_key", SigningKey)
REGISTRY_KEY: Final = web.AppKey("permitnet_registry", RegistryHolder)
BUS_KEY: Final = web.AppKey("permitnet_event_bus", EventBus)
SERVICES_KEY: Final = web.AppKey("permitnet_services", NodeServices)
CLOCK_KEY: Final[web.AppKey[Clock]] = web.AppKey("permitnet_clock")
#: The node's one outgoing HTTP session (registry and peers may share it).
HTTP_SESSION_KEY: Final = web.AppKey("permitnet_http_session", aiohttp.ClientSession)
#: The registry fetcher, when the node fetches from ``config.registry_urls`` itself.
FETCHER_KEY: Final = web.AppKey("permitnet_registry_fetcher", RegistryFetcher)


def _system_clock() -> int:
    return int(time.time())


def _load_signing_key(config: NodeConfig) -> SigningKey:
    passphrase = os.environ.get(config.passphrase_env)
    if not config.insecure_plaintext_key and not passphrase:
        raise ConfigError(
            f"the signing key is encrypted: set {config.passphrase_env} to its passphrase"
        )
    return load_key(config.key_path, passphrase=passphrase)


def create_app(
    config: NodeConfig,
    *,
    signing_key: SigningKey | None = None,
    registry_refresh: RegistryRefresh | None = None,
    registry_view: RegistryView | None = None,
    clock: Clock | None = None,
) -> web.Application:
    """Build the node's web application.

    Args:
        config: the node's configuration.
        signing_key: the decrypted key; by default it is loaded from ``config.key_path`` with
            the passphrase from ``config.passphrase_env`` when the app starts.
        registry_refresh: fetches a verified registry view; called at start-up and every
            ``config.registry_refresh_seconds``. Without it, the view stays ``registry_view``.
        registry_view: an initial verified view (tests, or a cache read before start).
        clock: the time source (Unix seconds); the system clock by default.

    Returns:
        The application; its resources open when it starts and close when it stops.
    """
    app = web.Application(
        client_max_size=config.max_request_bytes, middlewares=[api.error_middleware]
    )
    now = clock or _system_clock
    app[CONFIG_KEY] = config
    app[CLOCK_KEY] = now
    app[REGISTRY_KEY] = RegistryHolder()
    app[BUS_KEY] = EventBus()
    if registry_view is not None:
        app[REGISTRY_KEY].replace(registry_view, now())

    async def release_streams(app: web.Application) -> None:
        # Server-sent-event handlers wait on the bus; closing it lets them end so that
        # shutdown does not wait for long-lived streams.
        app[BUS_KEY].close()

    app.cleanup_ctx.append(_resources_ctx(config, signing_key, now))
    app.cleanup_ctx.append(_background_ctx(config, registry_refresh, registry_view, now))
    app.on_shutdown.append(release_streams)
    api.setup_routes(app)
    # Node-to-node exchange (push, pull, delivery worker); its context uses the resources above.
    peer_http.setup_exchange(app)
    # Registry split-view detection (node/registry_gossip.py): /peer/v1/registry-head and the
    # loop comparing heads with partner nodes; its context uses the fetcher and session above.
    app[registry_gossip.GOSSIP_INTERVAL_KEY] = config.registry_head_check_seconds
    registry_gossip.setup_registry_gossip(app)
    # Pull (node.toml [exchange] pull_from): the peers a node behind NAT fetches its documents
    # from. Callers may still set the key themselves after create_app (tests do).
    if config.pull_from:
        app[peer_http.PULL_FROM_KEY] = config.pull_from
    # Operations (node/ops.py): /healthz, /readyz, /metrics, and the LAN discovery challenge.
    ops.mount_on_node(
        app,
        country=config.country,
        store=lambda: app[STORE_KEY],
        registry=lambda: app[REGISTRY_KEY].view,
        signing_key=lambda: app.get(SIGNING_KEY),
        clock=now,
    )
    # The web pages for competent national authorities (node/web/); their accounts context
    # is appended after the resources context above, so it opens after the store.
    setup_web(
        app,
        settings=WebSettings(
            country=config.country,
            authority_name=config.authority_name,
            # Reached over HTTPS (directly or through a TLS-terminating proxy): Secure cookies.
            secure_cookies=True if config.public_url.startswith("https://") else None,
        ),
        database=config.database_path,
        keys=NodeKeys(
            store=STORE_KEY,
            registry=REGISTRY_KEY,
            clock=CLOCK_KEY,
            services=SERVICES_KEY,
            config=CONFIG_KEY,
        ),
    )
    return app


Context = Callable[[web.Application], AsyncIterator[None]]


def _resources_ctx(config: NodeConfig, signing_key: SigningKey | None, now: Clock) -> Context:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        key: SigningKey = (
            signing_key
            if signing_key is not None
            else await asyncio.to_thread(_load_signing_key, config)
        )
        store = await Store.open(config.database_path, clock=now)
        store.add_listener(app[BUS_KEY].notify)
        app[STORE_KEY] = store
        app[SIGNING_KEY] = key
        app[SERVICES_KEY] = NodeServices(
            store=store,
            country=config.country,
            authority=config.authority_name,
            signing_key=key,
            registry=app[REGISTRY_KEY],
        )
        try:
            yield
        finally:
            store.remove_listener(app[BUS_KEY].notify)
            await store.close()

    return resources


def _background_ctx(
    config: NodeConfig,
    registry_refresh: RegistryRefresh | None,
    registry_view: RegistryView | None,
    now: Clock,
) -> Context:
    async def background(app: web.Application) -> AsyncIterator[None]:
        session = aiohttp.ClientSession()
        app[HTTP_SESSION_KEY] = session
        refresh = registry_refresh
        fetcher: RegistryFetcher | None = None
        if refresh is None and registry_view is None:
            try:
                fetcher = await asyncio.to_thread(_make_fetcher, config, session)
            except ConfigError as e:
                # The node still starts, so that its pages and /readyz can say what is wrong;
                # without a registry view it accepts and signs nothing.
                _log.error("registry client not started: %s", e)
                app[REGISTRY_KEY].last_error = str(e)
                fetcher = None
        if refresh is None and registry_view is None and fetcher is not None:
            app[FETCHER_KEY] = fetcher
            if fetcher.current is not None:
                app[REGISTRY_KEY].replace(fetcher.current, now())

            async def refresh_from_mirrors() -> RegistryView:
                return await fetcher.refresh(now())

            refresh = refresh_from_mirrors
        tasks = [
            asyncio.create_task(
                every(config.overdue_check_seconds, app[SERVICES_KEY].flag_overdue, "overdue"),
                name="permitnet-overdue-check",
            ),
            asyncio.create_task(
                every(
                    AUDIT_HEAD_LOG_SECONDS,
                    _audit_head_logger(app[STORE_KEY], config.country),
                    "audit head",
                ),
                name="permitnet-audit-head",
            ),
        ]
        if refresh is not None:
            tasks.append(
                asyncio.create_task(
                    every(
                        config.registry_refresh_seconds,
                        functools.partial(_refresh_round, app, refresh),
                        "registry refresh",
                    ),
                    name="permitnet-registry-refresh",
                )
            )
        try:
            yield
        finally:
            await stop(tasks)
            await session.close()

    return background


async def refresh_once(app: web.Application, refresh: RegistryRefresh) -> bool:
    """Fetch the registry once; on a newer view, release held certificates it now allows.

    Returns:
        Whether a newer view was installed.
    """
    holder = app[REGISTRY_KEY]
    view = await refresh()
    if not holder.replace(view, app[CLOCK_KEY]()):
        return False
    released = await app[SERVICES_KEY].recheck_held()
    if released:
        _log.info("registry snapshot %d released held certificates %s", view.version, released)
    return True


def _make_fetcher(config: NodeConfig, session: aiohttp.ClientSession) -> RegistryFetcher:
    try:
        pinned_root = config.registry_root_path.read_bytes()
    except OSError as e:
        raise ConfigError(
            f"cannot read the pinned registry root {config.registry_root_path}: {e}"
        ) from e
    try:
        return RegistryFetcher(
            list(config.registry_urls),
            config.registry_cache_path,
            pinned_root,
            session,
            config.registry_grace_seconds,
        )
    except (ProtocolError, ValueError) as e:
        raise ConfigError(f"cannot set up the registry client: {e}") from e


async def _refresh_round(app: web.Application, refresh: RegistryRefresh) -> None:
    try:
        await refresh_once(app, refresh)
    except (NodeError, ProtocolError, aiohttp.ClientError, TimeoutError) as e:
        app[REGISTRY_KEY].last_error = f"{type(e).__name__}: {e}"
        raise


def _audit_head_logger(store: Store, country: str) -> Callable[[], Awaitable[None]]:
    # The log leaves the machine (journald, syslog forwarding) where the database does not:
    # a head logged there lets `permitnet node audit verify --witnessed` find rows cut from
    # the end of the audit log (node/audit.py). Logged when it has changed.
    logged: list[audit.AuditHead] = []

    async def log_head() -> None:
        current = await audit.head(store)
        if not logged or logged[-1] != current:
            _log.info("audit head %s of the %s node", current, country)
            logged[:] = [current]

    return log_head
