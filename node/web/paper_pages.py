"""A partner country without a node: record its paper import certificate by hand, with the scan.

The record is marked as not electronically verified and keeps the scan; an export authorization
may then be issued against it and printed (it goes to no node). The scan can be downloaded from
the document page.
"""

from __future__ import annotations

from aiohttp import web

from permitnet.node import drafting
from permitnet.node.accounts import Permission
from permitnet.node.errors import NodeError, NotFoundError, ValidationError
from permitnet.node.web import _forms
from permitnet.node.web._base import PageContext, audit, page, services, store
from permitnet.protocol.errors import ProtocolError

__all__ = ["routes"]

routes = web.RouteTableDef()


def _page(
    request: web.Request, ctx: PageContext, *, status: int = 200, **extra: object
) -> web.Response:
    return _forms.render_trade_form(
        request,
        ctx,
        "paper_new.html",
        title="Record a paper import certificate",
        regime="import_certificate",
        status=status,
        **extra,
    )


@routes.get("/certificates/paper", name="paper_new")
@page(permission=Permission.DRAFT)
async def paper_form(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """The form for a paper import certificate received from a country without a node."""
    return _page(request, ctx, values={})


@routes.post("/certificates/paper")
@page(permission=Permission.DRAFT)
async def record_paper(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Record the paper certificate and its scan."""
    values = ctx.values()
    upload = ctx.form.get("scan") if ctx.form is not None else None
    try:
        if not isinstance(upload, web.FileField):
            raise ValidationError("Scan: attach the scan of the paper certificate")
        scan = upload.file.read()
        if not scan:
            raise ValidationError(f"Scan: {upload.filename} is empty")
        media_type = drafting.scan_media_type(scan)
        body = _forms.certificate_body(ctx.field)
        body.pop("exporting_country")
        body["issuer"] = ctx.field("issuer").upper()
        body["authority"] = ctx.field("authority")
        record = await services(request).record_paper_certificate(
            body,
            scan=scan,
            media_type=media_type,
            filename=upload.filename or "scan",
            actor=ctx.username,
        )
    except (NodeError, ProtocolError) as e:
        return _page(request, ctx, status=400, values=values, error=str(e))
    raise web.HTTPSeeOther(f"/documents/{record.id}")


@routes.get("/documents/{document_id}/attachments/{attachment_id}", name="attachment")
@page(permission=Permission.VIEW)
async def attachment(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Download a file attached to a document (the scan of a paper certificate)."""
    document_id = request.match_info["document_id"]
    try:
        attachment_id = int(request.match_info["attachment_id"])
    except ValueError as e:
        raise NotFoundError("no such attachment") from e
    async with store(request).read() as tx:
        row = await tx.fetchone(
            "SELECT filename, media_type, content FROM attachments "
            "WHERE id = ? AND document_id = ?",
            (attachment_id, document_id),
        )
    if row is None:
        raise NotFoundError(f"document {document_id} has no attachment {attachment_id}")
    await audit(request, ctx.username, "download attachment", document_id, {"id": attachment_id})
    filename = "".join(c for c in str(row[0]) if c.isalnum() or c in "._-") or "scan"
    return web.Response(
        body=bytes(row[2]),
        content_type=str(row[1]),
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
