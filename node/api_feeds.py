"""API handlers for what national systems follow: status, alerts, balances, the event feed.

Also the operators' views of received inputs: quarantine (refused, kept for audit) and pending
(waiting for a dependency or fresh registry data).
"""

from __future__ import annotations

import asyncio
import json
from typing import Final

from aiohttp import web

from permitnet.node import openapi
from permitnet.node.api_common import PREFIX, auth, int_param, services
from permitnet.node.errors import ValidationError

__all__ = ["routes"]

routes = web.RouteTableDef()
_SSE_KEEPALIVE_SECONDS: Final = 15.0


# Discovery and status --------------------------------------------------------------------


@routes.get(f"{PREFIX}/openapi.json")
async def get_openapi(_request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of this API (no token needed)."""
    return web.json_response(openapi.SPEC)


@routes.get(f"{PREFIX}/status")
async def get_status(request: web.Request) -> web.Response:
    """The node's country, key and registry freshness."""
    await auth(request, "read")
    node = services(request)
    holder = node.registry
    view = holder.view
    now = node.store.now()
    return web.json_response(
        {
            "country": node.country,
            "authority": node.authority,
            "kid": node.signing_key.kid.hex(),
            "registry": {
                "version": None if view is None else view.version,
                "issued_at": None if view is None else view.issued_at,
                "expires_at": None if view is None else view.expires_at,
                "age_seconds": None if view is None else max(0, now - view.issued_at),
                "expired": holder.expired(now),
                "last_error": holder.last_error,
                "freshness": _freshness(request, now),
            },
        }
    )


def _freshness(request: web.Request, now: int) -> str | None:
    from permitnet.node.app import FETCHER_KEY  # noqa: PLC0415 - app imports this module

    fetcher = request.app.get(FETCHER_KEY)
    return None if fetcher is None else fetcher.status(now).describe()


# Alerts, balances, events ----------------------------------------------------------------


@routes.get(f"{PREFIX}/alerts")
async def list_alerts(request: web.Request) -> web.Response:
    """Alerts, newest first; ``?all=true`` includes acknowledged ones."""
    await auth(request, "read")
    alerts = await services(request).list_alerts(
        include_acknowledged=request.query.get("all") == "true"
    )
    return web.json_response({"alerts": [a.to_json() for a in alerts]})


@routes.post(PREFIX + "/alerts/{id}/acknowledge")
async def acknowledge_alert(request: web.Request) -> web.Response:
    """Mark an alert as seen."""
    token = await auth(request, "draft")
    try:
        alert_id = int(request.match_info["id"])
    except ValueError as e:
        raise ValidationError("an alert id is an integer") from e
    await services(request).acknowledge_alert(alert_id, actor=token.actor)
    return web.json_response({"acknowledged": alert_id})


@routes.get(f"{PREFIX}/quarantine")
async def list_quarantine(request: web.Request) -> web.Response:
    """Received inputs that were refused, newest first, with the reason (kept for audit)."""
    await auth(request, "read")
    limit = int_param(request, "limit", 100, lo=1, hi=1000)
    async with services(request).store.read() as tx:
        entries = await tx.quarantined(limit=limit)
    return web.json_response(
        {
            "quarantine": [
                {
                    "seq": q.seq,
                    "document_id": q.document_id,
                    "reason": q.reason,
                    "from_peer": q.from_peer,
                    "received_at": q.received_at,
                    "size": len(q.raw),
                }
                for q in entries
            ]
        }
    )


@routes.get(f"{PREFIX}/pending")
async def list_pending(request: web.Request) -> web.Response:
    """Received documents waiting for what they refer to, or for fresh registry data."""
    await auth(request, "read")
    async with services(request).store.read() as tx:
        entries = await tx.pending()
    return web.json_response(
        {
            "pending": [
                {
                    "document_id": p.document_id,
                    "reason": p.reason,
                    "waiting_for": p.waiting_for,
                    "from_peer": p.from_peer,
                    "received_at": p.received_at,
                    "attempts": p.attempts,
                    "last_error": p.last_error,
                }
                for p in entries
            ]
        }
    )


@routes.get(f"{PREFIX}/balances")
async def get_balances(request: web.Request) -> web.Response:
    """Estimate/assessment balances for a year (``?year=``, required)."""
    await auth(request, "read")
    if "year" not in request.query:
        raise ValidationError("year is required")
    year = int_param(request, "year", 0, lo=1961, hi=9999)
    balances = await services(request).balances(year)
    return web.json_response({"year": year, "balances": [b.to_json() for b in balances]})


@routes.get(f"{PREFIX}/events")
async def list_events(request: web.Request) -> web.Response:
    """Feed events after ``?after=`` (a sequence number), oldest first."""
    await auth(request, "read")
    after = int_param(request, "after", 0, lo=0, hi=2**62)
    limit = int_param(request, "limit", 100, lo=1, hi=1000)
    events = await services(request).store.events_after(after, limit)
    return web.json_response({"events": [e.to_json() for e in events]})


@routes.get(f"{PREFIX}/events/stream")
async def stream_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: every new feed event; resumes after ``Last-Event-ID``."""
    from permitnet.node.app import BUS_KEY  # noqa: PLC0415 - app imports this module

    await auth(request, "read")
    last_header = request.headers.get("Last-Event-ID", request.query.get("after", "0"))
    try:
        last = int(last_header)
    except ValueError as e:
        raise ValidationError("Last-Event-ID must be an integer") from e
    bus = request.app[BUS_KEY]
    store = services(request).store
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    while not bus.closed:
        events = await store.events_after(last, 100)
        for event in events:
            data = json.dumps(event.to_json())
            await response.write(f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n".encode())
            last = event.seq
        if events:
            continue
        try:
            async with asyncio.timeout(_SSE_KEEPALIVE_SECONDS):
                await bus.wait_beyond(last)
        except TimeoutError:
            await response.write(b": keep-alive\n\n")
    return response
