"""The public verify page: anyone may upload a PDF, a photo of the QR code or the signed file.

The verdict comes from :func:`permitnet.node.offline_verify.verify_offline`, against the registry
view this node holds: authentic or not, who issued it with which key, whether it is in force,
what it refers to, which registry snapshot was used, and the reason when it fails.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from permitnet.node.errors import ValidationError
from permitnet.node.offline_verify import verify_offline
from permitnet.node.web._base import PageContext, now, page, registry, render

__all__ = ["routes"]

routes = web.RouteTableDef()

#: The largest QR text accepted from the text box (a QR code holds under 3 KB).
_MAX_TEXT: Final = 8 * 1024


@routes.get("/verify", name="verify")
@page(permission=None)
async def verify_form(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """The upload form."""
    return render(request, ctx, "verify.html", title="Verify a document")


@routes.post("/verify")
@page(permission=None)
async def verify(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Verify the uploaded file (or pasted QR text) and show the verdict."""
    upload = ctx.form.get("file") if ctx.form is not None else None
    text = ctx.field("qr_text")
    if isinstance(upload, web.FileField):
        data = upload.file.read()
        name = upload.filename
    elif text:
        if len(text) > _MAX_TEXT:
            raise ValidationError("the QR text is longer than any permitnet QR code holds")
        data, name = text.encode(), "the text typed in"
    else:
        return render(
            request,
            ctx,
            "verify.html",
            status=400,
            title="Verify a document",
            error="Choose a file to upload, or paste the text of the QR code.",
        )
    if not data:
        return render(
            request,
            ctx,
            "verify.html",
            status=400,
            title="Verify a document",
            error=f"{name} is empty.",
        )
    # Rendering a PDF and decoding a QR image take CPU time: keep the event loop free.
    verdict = await asyncio.to_thread(
        verify_offline, data, registry(request).view, now=now(request)
    )
    return render(
        request,
        ctx,
        "verify.html",
        title="Verification result",
        verdict=verdict,
        filename=name,
    )
