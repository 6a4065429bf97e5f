"""Export declarations: for substances in Schedules III and IV of the 1971 Convention.

These need no import certificate (1971 art. 12(2)): the exporting country declares the export
to the importing country. Prepared as a draft and signed by another person, like every document.
"""

from __future__ import annotations

from aiohttp import web

from permitnet.node.accounts import Permission
from permitnet.node.errors import NodeError
from permitnet.node.web import _forms
from permitnet.node.web._base import PageContext, date_today, page, services
from permitnet.protocol.errors import ProtocolError

__all__ = ["routes"]

routes = web.RouteTableDef()


def _page(
    request: web.Request, ctx: PageContext, *, status: int = 200, **extra: object
) -> web.Response:
    return _forms.render_trade_form(
        request,
        ctx,
        "declaration_new.html",
        title="New export declaration",
        regime="export_declaration",
        status=status,
        **extra,
    )


@routes.get("/declarations/new", name="declaration_new")
@page(permission=Permission.DRAFT)
async def declaration_form(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """The export declaration form."""
    today = date_today(request)
    return _page(request, ctx, values={"date_of_export": today.isoformat()})


@routes.post("/declarations/new")
@page(permission=Permission.DRAFT)
async def create_declaration(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Save the export declaration as a draft."""
    values = ctx.values()
    try:
        draft = await services(request).create_draft(
            "export_declaration", _forms.declaration_body(ctx.field), actor=ctx.username
        )
    except (NodeError, ProtocolError) as e:
        return _page(request, ctx, status=400, values=values, error=str(e))
    raise web.HTTPSeeOther(f"/drafts/{draft.id}")
