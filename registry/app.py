"""The registry's HTTP server: public signed files and proofs, and the authenticated admin API.

Public reads serve the stored signed bytes exactly (``application/cbor``); everything a
client needs to verify them is itself signed, so mirrors and caches need no trust. The admin
API under ``/v1/admin/`` takes ``Authorization: Bearer <token>`` (tokens stored hashed) and
audits every action under the token's name. Countries submit key requests to the public
``POST /v1/key-requests``: a request proves itself by its signatures and waits for the
operator's approval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from aiohttp import web

from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.registry_snapshot import encode_delta_bundle
from permitnet.registry.admin import routes as admin_routes
from permitnet.registry.base import DELTA_WINDOW
from permitnet.registry.errors import (
    NotFoundError,
    OperationError,
    RegistryServerError,
    TooManyRequestsError,
)
from permitnet.registry.runner import RUNNER, Runner, cbor_response
from permitnet.registry.service import PUBLIC_ACTOR, Registry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from permitnet.registry.store import KeyRequestRow

__all__ = ["RegistryConfig", "create_app"]

_log = logging.getLogger(__name__)

MAX_BODY: Final = 64 * 1024
MAX_PENDING_REQUESTS: Final = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryConfig:
    """How to run the registry server.

    Attributes:
        directory: the registry data directory.
        max_body: the largest request body accepted, in bytes.
        clock: the time source (Unix seconds); tests pass a fixed one.
    """

    directory: Path
    max_body: int = MAX_BODY
    clock: Callable[[], int] = field(default=lambda: int(time.time()))


routes = web.RouteTableDef()


def _int(text: str | None, name: str) -> int:
    try:
        value = int(text or "")
    except ValueError as e:
        raise OperationError(f"{name} must be an integer") from e
    if value < 0:
        raise OperationError(f"{name} must not be negative")
    return value


async def _latest(runner: Runner) -> int:
    version = await runner.run(lambda r: r.store.latest_version())
    if version is None:
        raise NotFoundError("nothing published yet")
    return version


@routes.get("/v1/root")
async def latest_root(request: web.Request) -> web.Response:
    """Serve the newest signed root metadata."""
    return cbor_response(await request.app[RUNNER].run(lambda r: r.store.root()))


@routes.get("/v1/root/{version}")
async def root_version(request: web.Request) -> web.StreamResponse:
    """Serve signed root metadata ``version`` (``latest``: the newest)."""
    if request.match_info["version"] == "latest":
        return await latest_root(request)
    version = _int(request.match_info["version"], "version")
    return cbor_response(await request.app[RUNNER].run(lambda r: r.store.root(version)))


@routes.get("/v1/snapshot")
async def latest_snapshot(request: web.Request) -> web.Response:
    """Serve the newest full snapshot, with an ETag; 304 when the client already has it."""
    runner = request.app[RUNNER]
    version = await _latest(runner)
    tag = await runner.etag(version)
    if request.headers.get("If-None-Match") == tag:
        return web.Response(status=304, headers={"ETag": tag})
    raw = await runner.run(lambda r: r.store.artefact("snapshot", version))
    return cbor_response(raw, ETag=tag, **{"Cache-Control": "no-cache"})


async def _artefact(request: web.Request, column: str) -> web.Response:
    version = _int(request.match_info["version"], "version")
    return cbor_response(await request.app[RUNNER].run(lambda r: r.store.artefact(column, version)))


@routes.get("/v1/snapshot/{version}")
async def snapshot_version(request: web.Request) -> web.StreamResponse:
    """Serve full snapshot ``version`` (``latest``: as ``/v1/snapshot``)."""
    if request.match_info["version"] == "latest":
        return await latest_snapshot(request)
    return await _artefact(request, "snapshot")


@routes.get("/v1/head")
async def latest_head(request: web.Request) -> web.Response:
    """Serve the newest signed log head."""
    runner = request.app[RUNNER]
    version = await _latest(runner)
    return cbor_response(await runner.run(lambda r: r.store.artefact("head", version)))


@routes.get("/v1/head/{version}")
async def head_version(request: web.Request) -> web.StreamResponse:
    """Serve the signed log head of ``version`` (``latest``: the newest)."""
    if request.match_info["version"] == "latest":
        return await latest_head(request)
    return await _artefact(request, "head")


def _param(request: web.Request, name: str) -> int:
    """An integer from the path (static-file style URL) or else from the query string."""
    return _int(request.match_info.get(name, request.query.get(name)), name)


@routes.get("/v1/delta")
@routes.get("/v1/delta/{since}")
async def delta(request: web.Request) -> web.Response:
    """Serve the chained signed deltas from version ``since`` to the newest version."""
    since = _param(request, "since")
    runner = request.app[RUNNER]
    latest = await _latest(runner)
    if not 1 <= since <= latest:
        raise NotFoundError(f"no snapshot version {since}: fetch /v1/snapshot")
    if since < latest - DELTA_WINDOW:
        raise NotFoundError(
            f"version {since} is more than {DELTA_WINDOW} versions old: fetch /v1/snapshot"
        )
    deltas = await runner.run(lambda r: r.store.deltas_since(since))
    return cbor_response(encode_delta_bundle(deltas))


@routes.get("/v1/proof/inclusion")
@routes.get("/v1/proof/inclusion/{index}/{size}")
async def inclusion(request: web.Request) -> web.Response:
    """Serve the inclusion proof of leaf ``index`` in the published log of ``size``."""
    index, size = _param(request, "index"), _param(request, "size")
    runner = request.app[RUNNER]
    return cbor_response(await runner.run(lambda r: runner.proofs.inclusion(r, index, size)))


@routes.get("/v1/proof/consistency")
@routes.get("/v1/proof/consistency/{first}/{second}")
async def consistency(request: web.Request) -> web.Response:
    """Serve the consistency proof between published log sizes ``first`` and ``second``."""
    first, second = _param(request, "first"), _param(request, "second")
    runner = request.app[RUNNER]
    return cbor_response(await runner.run(lambda r: runner.proofs.consistency(r, first, second)))


@routes.post("/v1/key-requests")
async def submit_key_request(request: web.Request) -> web.Response:
    """Receive a country's signed key request; it waits for the operator's approval."""
    runner = request.app[RUNNER]
    raw = await request.read()

    def submit(registry: Registry) -> KeyRequestRow:
        # Counted and stored in one serialised call, so that the limit holds under load.
        pending = registry.store.count_requests("pending")
        if pending >= MAX_PENDING_REQUESTS:
            raise TooManyRequestsError(
                f"{pending} key requests are waiting for the operator: try again later"
            )
        return registry.submit_key_request(raw, actor=PUBLIC_ACTOR, now=runner.clock())

    row = await runner.run(submit)
    return web.json_response(
        {"id": row.id, "action": row.action, "country": row.country, "status": row.status},
        status=201,
    )


@web.middleware
async def errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer every refusal as JSON with the error's status and a one-line message."""
    try:
        return await handler(request)
    except (RegistryServerError, ProtocolError) as e:
        status = e.status_hint
        if status >= 500:
            _log.exception("registry request %s %s failed", request.method, request.path)
        return web.json_response({"error": type(e).__name__, "message": str(e)}, status=status)
    except web.HTTPRequestEntityTooLarge as e:
        return web.json_response({"error": "TooLarge", "message": e.text}, status=413)


def create_app(config: RegistryConfig) -> web.Application:
    """Build the registry server for the data directory in ``config``."""
    app = web.Application(middlewares=[errors], client_max_size=config.max_body)

    async def open_registry(app: web.Application) -> AsyncIterator[None]:
        registry = await asyncio.to_thread(Registry.open, config.directory)
        app[RUNNER] = Runner(registry, config.clock)
        yield
        registry.close()

    app.cleanup_ctx.append(open_registry)
    app.add_routes(routes)
    app.add_routes(admin_routes)
    return app
