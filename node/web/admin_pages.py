"""The administrator's pages beside accounts: API tokens for national systems, node settings."""

from __future__ import annotations

from aiohttp import web

from permitnet.node import audit as audit_log
from permitnet.node import tokens
from permitnet.node.accounts import Permission
from permitnet.node.errors import AuditChainError, NodeError, ValidationError
from permitnet.node.web._base import NODE_KEYS, PageContext, audit, page, render, store

__all__ = ["routes"]

routes = web.RouteTableDef()


async def _tokens_page(
    request: web.Request, ctx: PageContext, *, status: int = 200, **extra: object
) -> web.Response:
    return render(
        request,
        ctx,
        "tokens.html",
        status=status,
        title="API tokens",
        tokens=await tokens.list_tokens(store(request)),
        scopes=sorted(tokens.SCOPES),
        **extra,
    )


@routes.get("/admin/tokens", name="tokens")
@page(permission=Permission.ADMINISTER)
async def token_list(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Every API token (never its secret), with a form to create one."""
    return await _tokens_page(request, ctx)


@routes.post("/admin/tokens")
@page(permission=Permission.ADMINISTER)
async def create(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Create a token and show its secret once."""
    try:
        token, secret = await tokens.create_token(
            store(request),
            name=ctx.field("name"),
            actor=ctx.field("actor"),
            scopes=ctx.fields("scopes"),
            created_by=ctx.username,
        )
    except NodeError as e:
        return await _tokens_page(request, ctx, status=e.status_hint, error=str(e))
    return await _tokens_page(request, ctx, created=token, secret=secret)


@routes.post("/admin/tokens/{token_id}/revoke", name="token_revoke")
@page(permission=Permission.ADMINISTER)
async def revoke(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Revoke a token at once."""
    await tokens.revoke_token(
        store(request), request.match_info["token_id"], revoked_by=ctx.username
    )
    raise web.HTTPSeeOther("/admin/tokens")


@routes.get("/admin/settings", name="settings")
@page(permission=Permission.ADMINISTER)
async def settings(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """The node's settings as loaded from node.toml (changed there, then the node restarted)."""
    key = request.app[NODE_KEYS].config
    config = request.app[key] if key is not None else None
    await audit(request, ctx.username, "view node settings", "node", {})
    return render(request, ctx, "settings.html", title="Node settings", config=config)


_AUDIT_PAGE = 100
#: Beyond any row number SQLite can hold (rowids are 64-bit signed).
_NEWEST = 2**63 - 1


@routes.get("/admin/audit", name="audit")
@page(permission=Permission.ADMINISTER)
async def audit_page(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """The hash-chained audit log, newest first, with the chain verified on every visit.

    ``?before=N`` pages back: the rows before row N.
    """
    text = request.query.get("before", "")
    if text and not text.isdigit():
        raise ValidationError("before: a row number")
    node_store = store(request)
    try:
        checked = await audit_log.verify_chain(node_store)
        chain = {"ok": True, "message": f"All {checked} rows verify: none was changed or removed."}
    except AuditChainError as e:
        chain = {"ok": False, "message": str(e)}
    subject = request.query.get("subject") or None
    # Past the last row when no page is asked for: the newest rows.
    before = min(int(text), _NEWEST) if text else _NEWEST
    rows = await audit_log.entries(node_store, subject=subject, before=before, limit=_AUDIT_PAGE)
    return render(
        request,
        ctx,
        "audit.html",
        title="Audit log",
        rows=rows,
        chain=chain,
        subject=subject or "",
        paged=bool(text),
        earlier=rows[-1].seq if len(rows) == _AUDIT_PAGE and rows[-1].seq > 1 else None,
    )
