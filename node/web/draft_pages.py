"""Preparing and approving documents: the import certificate form, drafts, four-eyes approval.

A clerk prepares a draft; a signing officer other than the clerk approves it, and the node signs
it then (or holds an import certificate that would exceed the estimate). The lifecycle services
enforce four eyes; the page also says so before anyone presses the button.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from aiohttp import web

from permitnet.node import drafting
from permitnet.node.accounts import Permission, check_four_eyes
from permitnet.node.errors import NodeError, ValidationError
from permitnet.node.registry_holder import RegistryUnavailableError
from permitnet.node.web import _forms
from permitnet.node.web._base import (
    PageContext,
    date_today,
    page,
    render,
    services,
)
from permitnet.protocol.doc_trade import TRANSPORT_MODES
from permitnet.protocol.documents import ExportAuthorization, ImportCertificate
from permitnet.protocol.errors import ProtocolError

if TYPE_CHECKING:
    from collections.abc import Callable

    from permitnet.node.checks import Balance
    from permitnet.node.store import DocumentRecord

__all__ = ["routes"]

routes = web.RouteTableDef()


def _certificate_defaults(request: web.Request) -> dict[str, str]:
    today = date_today(request)
    return {
        "date_of_issue": today.isoformat(),
        "valid_from": today.isoformat(),
        "valid_until": (today + dt.timedelta(days=180)).isoformat(),
        "estimate_year": str(today.year),
    }


async def _balances(request: web.Request, totals: dict[str, int], year: int) -> dict[str, Balance]:
    node = services(request)
    return {base: await node.balance(base, year) for base in totals}


async def _preview(request: web.Request, get: Callable[[str], str]) -> _forms.Preview:
    items = _forms.certificate_items(get)
    year_text = get("estimate_year")
    if not year_text.isdigit():
        raise ValidationError("Estimate year: give a year such as 2026")
    year = int(year_text)
    totals = _forms.base_totals(items)
    return _forms.preview(totals, await _balances(request, totals, year), year)


def _query_getter(request: web.Request) -> Callable[[str], str]:
    return lambda name: request.query.get(name, "").strip()


def _certificate_page(
    request: web.Request, ctx: PageContext, *, status: int = 200, **extra: Any
) -> web.Response:
    return _forms.render_trade_form(
        request,
        ctx,
        "certificate_new.html",
        title="New import certificate",
        regime="import_certificate",
        status=status,
        **extra,
    )


@routes.get("/certificates/new", name="certificate_new")
@page(permission=Permission.DRAFT)
async def certificate_form(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """The empty import certificate form."""
    return _certificate_page(request, ctx, values=_certificate_defaults(request))


@routes.get("/certificates/preview", name="certificate_preview")
@page(permission=Permission.DRAFT)
async def certificate_preview(request: web.Request, _ctx: PageContext) -> web.StreamResponse:
    """JSON for the form's script: base equivalent and remaining estimate of what is typed."""
    try:
        result = await _preview(request, _query_getter(request))
    except (NodeError, ProtocolError) as e:
        return web.json_response({"ok": False, "blocking": False, "message": str(e)})
    return web.json_response(result.to_json())


@routes.post("/certificates/new")
@page(permission=Permission.DRAFT)
async def create_certificate(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Check the form against the estimate (without JavaScript), or save it as a draft."""
    get = ctx.field
    values = ctx.values()
    try:
        check = await _preview(request, get)
    except RegistryUnavailableError as e:
        # Without registry data the estimate cannot be checked now; the draft may still be
        # saved, and approval checks the estimate (and holds the certificate if need be).
        check = _forms.Preview(ok=False, blocking=False, message=str(e))
    except (NodeError, ProtocolError) as e:
        return _certificate_page(request, ctx, status=400, values=values, error=str(e))
    if ctx.field("action") == "check":
        return _certificate_page(request, ctx, values=values, check=check)
    try:
        body = _forms.certificate_body(get)
        draft = await services(request).create_draft("import_certificate", body, actor=ctx.username)
    except (NodeError, ProtocolError) as e:
        return _certificate_page(request, ctx, status=400, values=values, error=str(e), check=check)
    raise web.HTTPSeeOther(f"/drafts/{draft.id}")


_DRAFT_STATES = ("draft", "held", "signed", "discarded")


@routes.get("/drafts", name="drafts")
@page(permission=Permission.VIEW)
async def drafts(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Drafts by state, newest first: what awaits approval, what is held, what was done."""
    state = request.query.get("state", "draft")
    if state not in _DRAFT_STATES:
        raise ValidationError(f"state: one of {', '.join(_DRAFT_STATES)}")
    rows = await services(request).list_drafts(state=state, limit=200)
    return render(
        request, ctx, "drafts.html", title="Drafts", drafts=rows, state=state, states=_DRAFT_STATES
    )


@routes.get("/drafts/{draft_id}", name="draft")
@page(permission=Permission.VIEW)
async def draft_page(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """A draft: its fields, who prepared it, and approve/discard for a signing officer."""
    draft = await services(request).get_draft(request.match_info["draft_id"])
    assert ctx.session is not None  # the page needs a login
    account = ctx.session.account
    four_eyes = None
    try:
        check_four_eyes(approver=account.username, preparer=draft.created_by)
    except NodeError as e:
        four_eyes = str(e)
    check = None
    if draft.doc_type == "import_certificate" and draft.state == "draft":
        # What the officer is about to sign, against the estimate as it stands now.
        try:
            items = draft.body["items"]
            year = int(draft.body["estimate_year"])
            totals = _forms.base_totals(items)
            check = _forms.preview(totals, await _balances(request, totals, year), year)
        except (NodeError, ProtocolError, KeyError, TypeError, ValueError) as e:
            check = _forms.Preview(ok=False, blocking=False, message=f"Cannot check: {e}")
    return render(
        request,
        ctx,
        "draft.html",
        check=check,
        title=f"Draft {draft.doc_type.replace('_', ' ')}",
        draft=draft,
        can_approve=account.can(Permission.SIGN) and four_eyes is None,
        four_eyes=four_eyes,
        error=request.query.get("error"),
    )


@routes.post("/drafts/{draft_id}/approve", name="draft_approve")
@page(permission=Permission.SIGN)
async def approve(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Approve and sign (or hold) a draft; refused for the person who prepared it."""
    draft_id = request.match_info["draft_id"]
    # The lifecycle refuses an approval by the person who prepared the draft (four eyes).
    result = await services(request).approve_draft(draft_id, actor=ctx.username)
    if result.document is not None:
        raise web.HTTPSeeOther(f"/documents/{result.document.id}")
    raise web.HTTPSeeOther(f"/drafts/{draft_id}")


@routes.post("/drafts/{draft_id}/discard", name="draft_discard")
@page(permission=Permission.DRAFT)
async def discard(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Discard a draft that has not been signed."""
    draft_id = request.match_info["draft_id"]
    await services(request).discard_draft(draft_id, actor=ctx.username)
    raise web.HTTPSeeOther(f"/drafts/{draft_id}")


async def _received_certificate(
    request: web.Request,
) -> tuple[DocumentRecord, ImportCertificate]:
    """The import certificate named in the path, received from (or recorded for) the importer.

    Raises:
        NotFoundError: no such document.
        ValidationError: it is not an import certificate this node received.
    """
    record = await services(request).store.get_document(request.match_info["document_id"])
    document = drafting.decode_stored(record)
    if not isinstance(document, ImportCertificate) or record.direction == "outbound":
        raise ValidationError("this is not an import certificate received from the other country")
    return record, document


async def _received_authorization(
    request: web.Request,
) -> tuple[DocumentRecord, ExportAuthorization]:
    """The export authorization named in the path, received from the exporting country.

    Raises:
        NotFoundError: no such document.
        ValidationError: it is not an export authorization this node received.
    """
    record = await services(request).store.get_document(request.match_info["document_id"])
    document = drafting.decode_stored(record)
    if not isinstance(document, ExportAuthorization) or record.direction != "inbound":
        raise ValidationError("this is not an export authorization received from the other country")
    return record, document


async def _already_authorized(request: web.Request, certificate_id: str) -> dict[str, int]:
    """What live export authorizations already draw on the certificate, per substance (mg)."""
    async with services(request).store.read() as tx:
        rows = await tx.fetchall(
            "SELECT i.substance, sum(i.quantity_mg) FROM documents d "
            "JOIN document_items i ON i.document_id = d.id WHERE d.refers_to = ? "
            "AND d.doc_type = 'export_authorization' AND d.state != 'cancelled' "
            "GROUP BY i.substance",
            (certificate_id,),
        )
    return {str(r[0]): int(r[1]) for r in rows}


async def _authorize_page(
    request: web.Request,
    ctx: PageContext,
    record: DocumentRecord,
    certificate: ImportCertificate,
    **extra: Any,
) -> web.Response:
    today = date_today(request)
    defaults = {
        "date_of_issue": today.isoformat(),
        "valid_from": max(today, certificate.valid_from).isoformat(),
        "valid_until": certificate.valid_until.isoformat(),
    }
    for n, item in enumerate(certificate.items, start=1):
        defaults[f"item{n}_preparation"] = item.preparation
    return render(
        request,
        ctx,
        "authorize.html",
        title="Issue an export authorization",
        record=record,
        certificate=certificate,
        values=extra.pop("values", defaults),
        transport_modes=TRANSPORT_MODES,
        already=await _already_authorized(request, record.id),
        **extra,
    )


@routes.get("/documents/{document_id}/authorize", name="authorize")
@page(permission=Permission.DRAFT)
async def authorize_form(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """The export authorization form, filled in from the received import certificate."""
    record, certificate = await _received_certificate(request)
    return await _authorize_page(request, ctx, record, certificate)


@routes.post("/documents/{document_id}/authorize")
@page(permission=Permission.DRAFT)
async def authorize(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Prepare an export authorization draft against the certificate."""
    record, certificate = await _received_certificate(request)
    values = ctx.values()
    try:
        body = _forms.authorization_body(ctx.field, record.id, len(certificate.items))
        draft = await services(request).create_draft(
            "export_authorization", body, actor=ctx.username
        )
    except (NodeError, ProtocolError) as e:
        return await _authorize_page(
            request, ctx, record, certificate, values=values, error=str(e), status=400
        )
    raise web.HTTPSeeOther(f"/drafts/{draft.id}")


def _endorse_page(
    request: web.Request,
    ctx: PageContext,
    record: DocumentRecord,
    authorization: ExportAuthorization,
    **extra: Any,
) -> web.Response:
    return render(
        request,
        ctx,
        "endorse.html",
        title="Record an endorsement",
        record=record,
        authorization=authorization,
        values=extra.pop("values", {"date_received": date_today(request).isoformat()}),
        **extra,
    )


@routes.get("/documents/{document_id}/endorse", name="endorse")
@page(permission=Permission.DRAFT)
async def endorse_form(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """The endorsement form: the quantity actually received on each line."""
    record, authorization = await _received_authorization(request)
    return _endorse_page(request, ctx, record, authorization)


@routes.post("/documents/{document_id}/endorse")
@page(permission=Permission.DRAFT)
async def endorse(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Prepare the endorsement draft."""
    record, authorization = await _received_authorization(request)
    values = ctx.values()
    try:
        body = _forms.endorsement_body(ctx.field, record.id, len(authorization.items))
        draft = await services(request).create_draft("endorsement", body, actor=ctx.username)
    except (NodeError, ProtocolError) as e:
        return _endorse_page(
            request, ctx, record, authorization, values=values, error=str(e), status=400
        )
    raise web.HTTPSeeOther(f"/drafts/{draft.id}")


@routes.post("/documents/{document_id}/cancel", name="cancel")
@page(permission=Permission.DRAFT)
async def cancel(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Prepare the cancellation of a document this node issued (approved like any draft)."""
    reason = ctx.field("reason")
    if not reason:
        raise ValidationError("Reason: say why the document is cancelled")
    draft = await services(request).create_draft(
        "cancellation",
        {"document": request.match_info["document_id"], "reason": reason},
        actor=ctx.username,
    )
    raise web.HTTPSeeOther(f"/drafts/{draft.id}")


@routes.post("/documents/{document_id}/message", name="message")
@page(permission=Permission.DRAFT)
async def message(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Sign and send a message about the document to the other authority."""
    document_id = request.match_info["document_id"]
    text = ctx.field("text")
    if not text:
        raise ValidationError("Message: write the message to send")
    body: dict[str, str] = {"about": document_id, "text": text}
    if ctx.field("in_reply_to"):
        body["in_reply_to"] = ctx.field("in_reply_to")
    await services(request).send_message(body, actor=ctx.username)
    raise web.HTTPSeeOther(f"/documents/{document_id}#messages")
