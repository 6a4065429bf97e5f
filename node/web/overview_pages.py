"""Estimates (balances as bars), trends (monthly charts as inline SVG), registry and peers."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from permitnet.node.accounts import Permission
from permitnet.node.errors import ValidationError
from permitnet.node.web import _queries
from permitnet.node.web._base import (
    SETTINGS_KEY,
    PageContext,
    date_today,
    page,
    registry,
    render,
    services,
    store,
)
from permitnet.node.web.dashboard import registry_freshness

__all__ = ["routes"]

routes = web.RouteTableDef()

_MONTHS: Final = 12


def _year(request: web.Request) -> int:
    text = request.query.get("year", "")
    if not text:
        return date_today(request).year
    if not text.isdigit() or not 1961 <= int(text) <= 9999:
        raise ValidationError(f"year: {text!r} is not a year such as 2026")
    return int(text)


@dataclass(frozen=True, slots=True, kw_only=True)
class BalanceRow:
    """One substance's balance, with the share used for the bar (0 to 100)."""

    substance: str
    estimate_mg: int | None
    supplementary_mg: int
    total_mg: int | None
    authorized_mg: int
    remaining_mg: int | None
    used_percent: int
    exceeded: bool


@routes.get("/estimates", name="estimates")
@page(permission=Permission.VIEW)
async def estimates(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Per substance: estimate and supplementary estimates, used, remaining, as a bar."""
    year = _year(request)
    holder = registry(request)
    rows: list[BalanceRow] = []
    if holder.view is not None:
        for b in await services(request).balances(year):
            total = b.total_mg
            used = 100 if not total else min(100, round(100 * b.authorized_mg / total))
            rows.append(
                BalanceRow(
                    substance=b.substance,
                    estimate_mg=b.estimate_mg,
                    supplementary_mg=b.supplementary_mg,
                    total_mg=total,
                    authorized_mg=b.authorized_mg,
                    remaining_mg=b.remaining_mg,
                    used_percent=used,
                    exceeded=total is None or b.authorized_mg > total,
                )
            )
    return render(
        request,
        ctx,
        "estimates.html",
        title=f"Estimates {year}",
        year=year,
        rows=rows,
        registry=registry_freshness(request),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Chart:
    """A monthly chart of one substance: imports and exports per month, scaled to the tallest."""

    substance: str
    months: list[str]
    imports: list[int]
    exports: list[int]
    peak: int


def _months(end: dt.date, count: int) -> list[str]:
    months = []
    year, month = end.year, end.month
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return months[::-1]


@routes.get("/trends", name="trends")
@page(permission=Permission.VIEW)
async def trends(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Monthly imports and exports by substance and by partner country, as charts."""
    today = date_today(request)
    months = _months(today, _MONTHS)
    first = dt.date.fromisoformat(months[0] + "-01")
    since = int(dt.datetime(first.year, first.month, 1, tzinfo=dt.UTC).timestamp())
    country = request.app[SETTINGS_KEY].country
    totals = await _queries.monthly_totals(store(request), country=country, since=since)
    by_substance: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    by_partner: dict[str, dict[str, int]] = defaultdict(lambda: {"import": 0, "export": 0})
    for month, direction, substance, partner, mg in totals:
        by_substance[substance][(month, direction)] += mg
        by_partner[partner][direction] += mg
    charts = []
    for substance, cells in sorted(by_substance.items()):
        imports = [cells.get((m, "import"), 0) for m in months]
        exports = [cells.get((m, "export"), 0) for m in months]
        charts.append(
            Chart(
                substance=substance,
                months=months,
                imports=imports,
                exports=exports,
                peak=max([*imports, *exports, 1]),
            )
        )
    partners = sorted(by_partner.items(), key=lambda kv: -(kv[1]["import"] + kv[1]["export"]))
    partner_peak = max([max(v["import"], v["export"]) for _, v in partners] + [1])
    return render(
        request,
        ctx,
        "trends.html",
        title="Trends",
        charts=charts,
        partners=partners,
        partner_peak=partner_peak,
        first_month=months[0],
        last_month=months[-1],
    )


@routes.get("/status", name="status")
@page(permission=Permission.VIEW)
async def status(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """The registry data the node holds, the partner countries, and delivery per peer."""
    holder = registry(request)
    view = holder.view
    async with store(request).read() as tx:
        outbox = await tx.fetchall(
            "SELECT peer, count(*), min(created_at), max(attempts), "
            "sum(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) FROM outbox "
            "WHERE delivered_at IS NULL GROUP BY peer ORDER BY peer"
        )
        delivered = await tx.fetchall(
            "SELECT peer, count(*), max(delivered_at) FROM outbox "
            "WHERE delivered_at IS NOT NULL GROUP BY peer"
        )
        errors = await tx.fetchall(
            "SELECT peer, last_error FROM outbox WHERE delivered_at IS NULL "
            "AND last_error IS NOT NULL GROUP BY peer"
        )
        pending = await tx.fetchone("SELECT count(*) FROM inbound_pending")
        quarantined = await tx.fetchone("SELECT count(*) FROM quarantine")
    last_delivery = {r[0]: (r[1], r[2]) for r in delivered}
    last_error = {r[0]: r[1] for r in errors}
    peers = []
    own = request.app[SETTINGS_KEY].country
    if view is not None:
        for code, record in sorted(view.countries.items()):
            if code == own:
                continue
            keys = view.keys_for(code)
            peers.append(
                {
                    "code": code,
                    "record": record,
                    "active_keys": sum(1 for k in keys if k.status == "active"),
                    "revoked_keys": sum(1 for k in keys if k.status == "revoked"),
                }
            )
    return render(
        request,
        ctx,
        "status.html",
        title="Registry and peers",
        registry=registry_freshness(request),
        view=view,
        peers=peers,
        undelivered={
            r[0]: {"count": r[1], "oldest": r[2], "max_attempts": r[3], "retrying": r[4]}
            for r in outbox
        },
        delivered=last_delivery,
        last_error=last_error,
        pending=int(pending[0]) if pending else 0,
        quarantined=int(quarantined[0]) if quarantined else 0,
    )
