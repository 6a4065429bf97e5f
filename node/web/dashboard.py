"""The dashboard: what needs doing on this node, and how fresh its registry data is."""

from __future__ import annotations

from aiohttp import web

from permitnet.node.accounts import Permission
from permitnet.node.web import _queries
from permitnet.node.web._base import (
    SETTINGS_KEY,
    PageContext,
    date_today,
    now,
    page,
    registry,
    render,
    store,
)

__all__ = ["routes"]

routes = web.RouteTableDef()


def registry_freshness(request: web.Request) -> dict[str, object]:
    """Describe the registry data the node holds: version, age, expiry and the last error."""
    holder = registry(request)
    current = now(request)
    view = holder.view
    if view is None:
        return {
            "ok": False,
            "message": "No verified registry data yet: keys and estimates cannot be checked.",
            "last_error": holder.last_error,
        }
    expired = holder.expired(current)
    return {
        "ok": not expired and holder.last_error is None,
        "version": view.version,
        "issued_at": view.issued_at,
        "expires_at": view.expires_at,
        "updated_at": holder.updated_at,
        "age_hours": max(0, current - view.issued_at) // 3600,
        "expired": expired,
        "last_error": holder.last_error,
        "message": (
            f"Registry snapshot version {view.version} has expired: refresh the registry data."
            if expired
            else f"Registry snapshot version {view.version}."
        ),
    }


@routes.get("/", name="dashboard")
@page(permission=Permission.VIEW)
async def dashboard(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """What needs doing."""
    settings_country = request.app[SETTINGS_KEY].country
    today = date_today(request)
    todo = await _queries.dashboard(store(request), country=settings_country, today=today)
    return render(
        request,
        ctx,
        "dashboard.html",
        title="Dashboard",
        todo=todo,
        registry=registry_freshness(request),
    )
