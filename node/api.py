"""The JSON API for national IT systems, under ``/api/v1``; described in :mod:`openapi`.

Handlers are thin: authenticate the bearer token and its scope, parse, call the lifecycle
service, answer. Every error is a JSON body ``{"error": {"code", "message"}}`` with the status
its exception names (400, 401, 403, 404, 409, 413, 422, 503). Creates honour an
``Idempotency-Key`` header: the same key with the same body gives the same answer; with a
different body, 409.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from permitnet.node import api_feeds, drafting, tokens
from permitnet.node.api_common import DRAFT_PATHS, PREFIX, auth, int_param, json_body, services
from permitnet.node.errors import ConflictError, NodeError, ValidationError
from permitnet.protocol.errors import DocumentError, ProtocolError, RuleViolation

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from permitnet.node.store import DocumentRecord

__all__ = ["COSE_MEDIA_TYPE", "error_middleware", "setup_routes"]

_log = logging.getLogger(__name__)
routes = web.RouteTableDef()
#: The media type of raw signed documents.
COSE_MEDIA_TYPE: Final = "application/cose"
_MAX_IDEMPOTENCY_KEY: Final = 200


@dataclass(slots=True)
class _KeyLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


_IDEMPOTENCY_LOCKS: Final = web.AppKey("permitnet_idempotency_locks", dict[str, _KeyLock])


#: The API path segment of each draft type.
def _error(status: int, code: str, message: str, **extra: object) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn every failure under ``/api/`` into a JSON error body with the right status."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except NodeError as e:
        return _error(e.status_hint, e.code, str(e))
    except RuleViolation as e:
        return _error(422, "rule_violation", str(e), rule=e.rule)
    except DocumentError as e:
        return _error(422, "invalid_document", str(e))
    except ProtocolError as e:
        return _error(e.status_hint, "protocol_error", str(e))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = {413: "too_large", 404: "not_found", 405: "method_not_allowed"}.get(
            e.status, "http_error"
        )
        return _error(e.status, code, e.reason if e.status != 413 else e.text or "too large")
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:  # noqa: BLE001 - the last resort: log it, answer 500 as JSON
        _log.exception("unexpected error in %s %s", request.method, request.path)
        return _error(500, "internal_error", "an unexpected error occurred; it has been logged")


async def _idempotent(
    request: web.Request,
    token: tokens.ApiToken,
    raw_body: bytes,
    create: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> web.Response:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        status, body = await create()
        return web.json_response(body, status=status)
    if not key or len(key) > _MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ValidationError(f"Idempotency-Key must be 1..{_MAX_IDEMPOTENCY_KEY} printable chars")
    request_hash = hashlib.sha256(
        request.method.encode() + b" " + request.path.encode() + b"\n" + raw_body
    ).digest()
    store = services(request).store
    locks = request.app[_IDEMPOTENCY_LOCKS]
    # One lock per (token, key), so that concurrent retries create one document; the entry
    # counts its users and is dropped when the last one leaves.
    name = f"{token.id}:{key}"
    entry = locks.setdefault(name, _KeyLock())
    entry.users += 1
    try:
        async with entry.lock:
            async with store.read() as tx:
                row = await tx.fetchone(
                    "SELECT request_hash, status, response FROM idempotency "
                    "WHERE token_id = ? AND key = ?",
                    (token.id, key),
                )
            if row is not None:
                if bytes(row[0]) != request_hash:
                    raise ConflictError(
                        f"Idempotency-Key {key!r} was already used with a different request"
                    )
                return web.json_response(
                    json.loads(row[2]), status=row[1], headers={"Idempotent-Replayed": "true"}
                )
            status, body = await create()
            async with store.transaction() as tx:
                await tx.execute(
                    "INSERT INTO idempotency (token_id, key, request_hash, status, response, "
                    "created_at) VALUES (?,?,?,?,?,?)",
                    (token.id, key, request_hash, status, json.dumps(body), tx.now),
                )
    finally:
        entry.users -= 1
        if entry.users == 0:
            del locks[name]
    return web.json_response(body, status=status)


def _summary(record: DocumentRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "type": record.doc_type,
        "issuer": record.issuer,
        "recipient": record.recipient,
        "issued_at": record.issued_at,
        "direction": record.direction,
        "state": record.state,
        "reference": record.reference,
        "refers_to": record.refers_to,
        "electronically_verified": record.electronically_verified,
    }


# Documents -------------------------------------------------------------------------------


async def _list(request: web.Request, doc_type: str | None) -> web.Response:
    await auth(request, "read")
    direction = request.query.get("direction")
    if direction not in {None, "outbound", "inbound", "paper"}:
        raise ValidationError("direction must be outbound, inbound or paper")
    limit = int_param(request, "limit", 100, lo=1, hi=1000)
    before = request.query.get("before_issued_at")
    records = await services(request).store.list_documents(
        doc_type=doc_type or request.query.get("type"),
        direction=direction,  # type: ignore[arg-type]  # checked against the Literal above
        state=request.query.get("state"),
        refers_to=request.query.get("refers_to"),
        limit=limit,
        before_issued_at=None
        if before is None
        else int_param(request, "before_issued_at", 0, lo=0, hi=2**40),
    )
    return web.json_response({"documents": [_summary(r) for r in records]})


@routes.get(f"{PREFIX}/documents")
async def list_documents(request: web.Request) -> web.Response:
    """Every stored document, newest first, filtered by type, direction, state, refers_to."""
    return await _list(request, None)


@routes.get(PREFIX + "/documents/{id}")
async def get_document(request: web.Request) -> web.StreamResponse:
    """A document as JSON, or its exact signed bytes with ``Accept: application/cose``."""
    await auth(request, "read")
    doc_id = request.match_info["id"]
    if COSE_MEDIA_TYPE in request.headers.get("Accept", ""):
        return await _raw(request, doc_id)
    return web.json_response(await services(request).document_json(doc_id))


@routes.get(PREFIX + "/documents/{id}/raw")
async def get_document_raw(request: web.Request) -> web.StreamResponse:
    """The exact signed bytes of a document (``application/cose``)."""
    await auth(request, "read")
    return await _raw(request, request.match_info["id"])


async def _raw(request: web.Request, doc_id: str) -> web.Response:
    record = await services(request).store.get_document(doc_id)
    media = COSE_MEDIA_TYPE if record.direction != "paper" else "application/cbor"
    return web.Response(
        body=record.raw,
        content_type=media,
        headers={"Content-Disposition": f'attachment; filename="{doc_id}.cose"'},
    )


def _typed_list(doc_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return await _list(request, doc_type)

    return handler


def _typed_create(doc_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        token = await auth(request, "draft")
        raw, body = await json_body(request)

        async def create() -> tuple[int, dict[str, Any]]:
            draft = await services(request).create_draft(doc_type, body, actor=token.actor)
            return 201, draft.to_json()

        return await _idempotent(request, token, raw, create)

    return handler


# Drafts ----------------------------------------------------------------------------------


@routes.get(f"{PREFIX}/drafts")
async def list_drafts(request: web.Request) -> web.Response:
    """Drafts, newest first (``state``: draft, held, signed, discarded)."""
    await auth(request, "read")
    state = request.query.get("state")
    if state not in {None, "draft", "held", "signed", "discarded"}:
        raise ValidationError("state must be draft, held, signed or discarded")
    drafts = await services(request).list_drafts(
        state=state, limit=int_param(request, "limit", 100, lo=1, hi=1000)
    )
    return web.json_response({"drafts": [d.to_json() for d in drafts]})


@routes.get(PREFIX + "/drafts/{id}")
async def get_draft(request: web.Request) -> web.Response:
    """One draft."""
    await auth(request, "read")
    return web.json_response(
        (await services(request).get_draft(request.match_info["id"])).to_json()
    )


@routes.post(PREFIX + "/drafts/{id}/approve")
async def approve_draft(request: web.Request) -> web.Response:
    """Approve and sign a draft (another person than its author); held if over the estimate."""
    token = await auth(request, "sign")

    async def create() -> tuple[int, dict[str, Any]]:
        result = await services(request).approve_draft(request.match_info["id"], actor=token.actor)
        document = None if result.document is None else _summary(result.document)
        status = 201 if document is not None else 202
        return status, {"draft": result.draft.to_json(), "document": document}

    return await _idempotent(request, token, await request.read(), create)


@routes.post(PREFIX + "/drafts/{id}/discard")
async def discard_draft(request: web.Request) -> web.Response:
    """Discard an unsigned draft."""
    token = await auth(request, "draft")
    draft = await services(request).discard_draft(request.match_info["id"], actor=token.actor)
    return web.json_response(draft.to_json())


# Messages and paper certificates ---------------------------------------------------------


@routes.post(f"{PREFIX}/messages")
async def post_message(request: web.Request) -> web.Response:
    """Sign and send a message about a document to the other authority."""
    token = await auth(request, "sign")
    raw, body = await json_body(request)

    async def create() -> tuple[int, dict[str, Any]]:
        record = await services(request).send_message(body, actor=token.actor)
        return 201, _summary(record)

    return await _idempotent(request, token, raw, create)


@routes.post(f"{PREFIX}/paper-import-certificates")
async def post_paper_certificate(request: web.Request) -> web.Response:
    """Record a partner's paper import certificate by hand, with its scan (base64)."""
    token = await auth(request, "sign")
    raw, body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("scan"), dict):
        raise ValidationError("scan: an object {filename, media_type, content_base64} is required")
    scan = body.pop("scan")
    try:
        content = base64.b64decode(str(scan.get("content_base64", "")), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValidationError("scan.content_base64 is not valid base64") from e
    media_type, filename = scan.get("media_type"), scan.get("filename")
    if media_type not in {"application/pdf", "image/png", "image/jpeg"}:
        raise ValidationError("scan.media_type must be application/pdf, image/png or image/jpeg")
    if not isinstance(filename, str) or not filename.strip():
        raise ValidationError("scan.filename is required")
    # Served back later under the stored type: the bytes must be what the client says.
    if content and drafting.scan_media_type(content) != media_type:
        raise ValidationError(f"scan: the file is not {media_type}")

    async def create() -> tuple[int, dict[str, Any]]:
        record = await services(request).record_paper_certificate(
            body, scan=content, media_type=media_type, filename=filename, actor=token.actor
        )
        return 201, _summary(record)

    return await _idempotent(request, token, raw, create)


def setup_routes(app: web.Application) -> None:
    """Add the API's routes to ``app``."""
    app[_IDEMPOTENCY_LOCKS] = {}
    for path, doc_type in DRAFT_PATHS.items():
        app.router.add_get(f"{PREFIX}/{path}", _typed_list(doc_type))
        app.router.add_post(f"{PREFIX}/{path}", _typed_create(doc_type))
    app.router.add_get(f"{PREFIX}/messages", _typed_list("message"))
    app.add_routes(routes)
    app.add_routes(api_feeds.routes)
