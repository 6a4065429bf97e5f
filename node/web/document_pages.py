"""The documents list with its filters, the document page, printing and the signed file."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from permitnet.node import drafting
from permitnet.node.accounts import Permission
from permitnet.node.errors import NotFoundError, ValidationError
from permitnet.node.printing import PRINTABLE_TYPES, attachment_name, print_document
from permitnet.node.web import _queries
from permitnet.node.web._base import (
    SETTINGS_KEY,
    PageContext,
    audit,
    page,
    registry,
    render,
    safe_next,
    services,
    store,
)
from permitnet.protocol.catalogue import DEFAULT_CATALOGUE
from permitnet.protocol.signed import SignedDocument, peek_kid

if TYPE_CHECKING:
    from permitnet.node.store import DocumentRecord

__all__ = ["routes"]

routes = web.RouteTableDef()

_TYPES: Final = (
    ("import_certificate", "Import certificate"),
    ("export_authorization", "Export authorization"),
    ("endorsement", "Endorsement"),
    ("export_declaration", "Export declaration"),
    ("cancellation", "Cancellation"),
    ("message", "Message"),
)
_STATES: Final = ("active", "endorsed", "overdue", "cancelled")
#: Links in the chain certificate -> authorization -> endorsement.
_CHAIN_TYPES: Final = ("import_certificate", "export_authorization", "endorsement")


def _filter(request: web.Request) -> _queries.DocumentFilter:
    q = {k: request.query.get(k, "").strip() for k in _queries.DocumentFilter.__slots__}
    for key in ("date_from", "date_to"):
        if q[key]:
            try:
                dt.date.fromisoformat(q[key])
            except ValueError as e:
                raise ValidationError(f"{key.replace('_', ' ')}: {q[key]!r} is not a date") from e
    if q["partner"]:
        q["partner"] = q["partner"].upper()
    return _queries.DocumentFilter(**q)


@routes.get("/documents", name="documents")
@page(permission=Permission.VIEW)
async def documents(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Every document, newest first, with search and filters."""
    query = _filter(request)
    country = request.app[SETTINGS_KEY].country
    rows = await _queries.documents(store(request), country=country, query=query)
    view = registry(request).view
    partners = sorted(view.countries) if view is not None else []
    return render(
        request,
        ctx,
        "documents.html",
        title="Documents",
        rows=rows,
        query=query,
        types=_TYPES,
        states=_STATES,
        partners=[p for p in partners if p != country],
        substances=sorted(s.code for s in DEFAULT_CATALOGUE.substances if s.is_base),
    )


async def _related(record: DocumentRecord, request: web.Request) -> dict[str, Any]:
    """The chain, the messages, cancellations, deliveries and alerts of a document."""
    node_store = store(request)
    async with node_store.read() as tx:
        # Up the chain to the certificate, then down to the endorsements.
        chain_ids: list[str] = []
        current: str | None = record.id
        while current is not None and len(chain_ids) < 3:
            row = await tx.fetchone(
                "SELECT id, doc_type, refers_to FROM documents WHERE id = ?", (current,)
            )
            if row is None or row[1] not in _CHAIN_TYPES:
                break
            chain_ids.insert(0, row[0])
            current = row[2]
        # The walk reads ids only; the documents are read together after it.
        frontier = [chain_ids[0]] if chain_ids else []
        walked: list[str] = []
        while frontier and len(walked) < 50:
            doc_id = frontier.pop(0)
            walked.append(doc_id)
            children = await tx.fetchall(
                "SELECT id FROM documents WHERE refers_to = ? AND doc_type IN (?, ?) "
                "ORDER BY issued_at, id",
                (doc_id, "export_authorization", "endorsement"),
            )
            frontier += [c[0] for c in children]
        chain: list[Any] = await tx.get_documents(walked)
        notices = await tx.fetchall(
            "SELECT id FROM documents WHERE refers_to = ? AND doc_type IN (?, ?) "
            "ORDER BY issued_at, id",
            (record.id, "message", "cancellation"),
        )
        notice_docs = await tx.get_documents([n[0] for n in notices])
        deliveries = await tx.outbox_for_document(record.id)
        attachments = await tx.fetchall(
            "SELECT id, filename FROM attachments WHERE document_id = ? ORDER BY id",
            (record.id,),
        )
        alerts = await tx.fetchall(
            "SELECT id, kind, message, created_at, acknowledged_at, acknowledged_by "
            "FROM alerts WHERE document_id = ? ORDER BY id",
            (record.id,),
        )
    messages = [(n, drafting.decode_stored(n)) for n in notice_docs]
    return {
        "chain": chain,
        "messages": [(n, d) for n, d in messages if n.doc_type == "message"],
        "cancellations": [(n, d) for n, d in messages if n.doc_type == "cancellation"],
        "deliveries": deliveries,
        "attachments": [{"id": a[0], "filename": a[1]} for a in attachments],
        "alerts": [
            {
                "id": a[0],
                "kind": a[1],
                "message": a[2],
                "created_at": a[3],
                "acknowledged_at": a[4],
                "acknowledged_by": a[5],
            }
            for a in alerts
        ],
    }


def _signature(record: DocumentRecord, request: web.Request) -> dict[str, Any]:
    if record.direction == "paper":
        return {"paper": True}
    kid = peek_kid(record.raw)
    view = registry(request).view
    key = view.key(kid) if view is not None else None
    return {
        "paper": False,
        "kid": kid.hex(),
        "key_status": key.status if key is not None else None,
        "key_country": key.country if key is not None else None,
        "registry_version": view.version if view is not None else None,
    }


@routes.get("/documents/{document_id}", name="document")
@page(permission=Permission.VIEW)
async def document(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """One document: every field, its chain, signature, deliveries, messages and actions."""
    record = await store(request).get_document(request.match_info["document_id"])
    doc = drafting.decode_stored(record)
    country = request.app[SETTINGS_KEY].country
    return render(
        request,
        ctx,
        "document.html",
        title=f"{record.doc_type.replace('_', ' ').capitalize()} {record.reference or ''}",
        record=record,
        doc=doc,
        payload=doc.to_payload(),
        signature=_signature(record, request),
        own=record.issuer == country,
        printable=record.doc_type in PRINTABLE_TYPES and record.direction != "paper",
        **await _related(record, request),
    )


def _signed(record: DocumentRecord, request: web.Request) -> SignedDocument:
    kid = peek_kid(record.raw)
    node = services(request)
    if kid == node.signing_key.kid:
        public_key = node.signing_key.public_key
    else:
        key = registry(request).require().key(kid)
        if key is None:
            raise NotFoundError("the registry no longer lists the key that signed this document")
        public_key = key.public_key
    return SignedDocument.verify(record.raw, public_key)


@routes.get("/documents/{document_id}/pdf", name="document_pdf")
@page(permission=Permission.VIEW)
async def document_pdf(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """The document printed as a PDF, with its QR code and the signed file attached."""
    record = await store(request).get_document(request.match_info["document_id"])
    if record.direction == "paper":
        raise ValidationError("a paper certificate recorded by hand has no signed file to print")
    signed = _signed(record, request)
    # Rendering takes a few hundred milliseconds of CPU: off the event loop, so that the node
    # keeps answering its peers and other officials meanwhile.
    pdf = await asyncio.to_thread(print_document, signed)
    name = attachment_name(signed).rsplit(".", 1)[0] + ".pdf"
    await audit(request, ctx.username, "print", record.id, {})
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@routes.get("/documents/{document_id}/signed", name="document_signed")
@page(permission=Permission.VIEW)
async def document_signed(request: web.Request, _ctx: PageContext) -> web.StreamResponse:
    """The exact signed bytes (COSE_Sign1), as stored."""
    record = await store(request).get_document(request.match_info["document_id"])
    if record.direction == "paper":
        raise ValidationError("a paper certificate recorded by hand has no signed file")
    return web.Response(
        body=record.raw,
        content_type="application/cose",
        headers={"Content-Disposition": f'attachment; filename="{record.id[:16]}.cose"'},
    )


@routes.post("/alerts/{alert_id}/acknowledge", name="alert_ack")
@page(permission=Permission.DRAFT)
async def acknowledge(request: web.Request, ctx: PageContext) -> web.StreamResponse:
    """Mark an alert as seen (it stays on the document's page)."""
    try:
        alert_id = int(request.match_info["alert_id"])
    except ValueError as e:
        raise NotFoundError("no such alert") from e
    await services(request).acknowledge_alert(alert_id, actor=ctx.username)
    raise web.HTTPSeeOther(safe_next(ctx.field("next", "/")))
