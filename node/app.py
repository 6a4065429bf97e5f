"""The node's application factory: ``create_app(config) -> web.Application``.

Every resource lives in ``cleanup_ctx``: the database, the decrypted signing key, the event bus,
the lifecycle services and the supervised registry-refresh loop. Typed state is reached through
the ``web.AppKey`` constants below, which the exchange and the web app use too.

Background work is owned, never fire-and-forget: the refresh loop is a task created here,
cancelled and awaited at cleanup; one failed refresh is logged and recorded in the
:class:`RegistryHolder` (``/readyz`` and the API show it), and the loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from aiohttp import web

from permitnet.node import api, peer_http
from permitnet.node.config import NodeConfig
from permitnet.node.errors import ConfigError
from permitnet.node.events import EventBus
from permitnet.node.keystore import SigningKey, load_key
from permitnet.node.lifecycle import NodeServices
from permitnet.node.registry_holder import RegistryHolder
from permitnet.node.store import Store
from permitnet.protocol.registry_view import RegistryView

__all__ = [
    "BUS_KEY",
    "CLOCK_KEY",
    "CONFIG_KEY",
    "REGISTRY_KEY",
    "SERVICES_KEY",
    "SIGNING_KEY",
    "STORE_KEY",
    "Clock",
    "RegistryRefresh",
    "create_app",
]

_log = logging.getLogger(__name__)

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

    async def registry_loop(app: web.Application) -> AsyncIterator[None]:
        if registry_refresh is None:
            yield
            return
        task = asyncio.create_task(
            _refresh_forever(app, registry_refresh, config.registry_refresh_seconds),
            name="permitnet-registry-refresh",
        )
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def release_streams(app: web.Application) -> None:
        # Server-sent-event handlers wait on the bus; closing it lets them end so that
        # shutdown does not wait for long-lived streams.
        app[BUS_KEY].close()

    app.cleanup_ctx.append(resources)
    app.cleanup_ctx.append(registry_loop)
    app.on_shutdown.append(release_streams)
    api.setup_routes(app)
    # Node-to-node exchange (push, pull, delivery worker); its context uses the resources above.
    peer_http.setup_exchange(app)
    return app


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


async def _refresh_forever(app: web.Application, refresh: RegistryRefresh, every: float) -> None:
    holder = app[REGISTRY_KEY]
    while True:
        try:
            await refresh_once(app, refresh)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - one failed refresh must not stop the loop
            holder.last_error = f"{type(e).__name__}: {e}"
            _log.warning("registry refresh failed: %s", holder.last_error, exc_info=e)
        await asyncio.sleep(every)
