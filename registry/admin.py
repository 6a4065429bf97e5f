"""The authenticated admin API: the same operations as the CLI, audited under the token's name.

Every request needs ``Authorization: Bearer <token>``; bodies are JSON objects (a key request
is its raw signed bytes). Answers are JSON.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from permitnet.protocol.registry_records import ESTIMATE_KINDS
from permitnet.registry.errors import OperationError, UnauthorizedError
from permitnet.registry.runner import RUNNER

if TYPE_CHECKING:
    from permitnet.protocol.registry_records import KeyRecord
    from permitnet.registry.runner import Runner

__all__ = ["routes"]

routes = web.RouteTableDef()
_log = logging.getLogger(__name__)


async def _actor(request: web.Request) -> tuple[Runner, str]:
    runner = request.app[RUNNER]
    try:
        actor = await _authenticate(runner, request.headers.get("Authorization", ""))
    except UnauthorizedError as e:
        # Logged, not audited: the audit log records what token holders did, and writing a
        # row per anonymous attempt would let anyone grow the database.
        _log.warning(
            "admin %s %s from %s refused: %s", request.method, request.path, request.remote, e
        )
        raise
    return runner, actor


async def _authenticate(runner: Runner, header: str) -> str:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("missing 'Authorization: Bearer <token>' header")
    return await runner.run(lambda r: r.authenticate(token.strip()))


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as e:
        raise OperationError(f"the body is not JSON: {e}") from e
    if not isinstance(body, dict):
        raise OperationError("the body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type, *, default: object = ...) -> Any:
    value = body.get(name, default)
    if value is ... or isinstance(value, bool) or not isinstance(value, kind):
        raise OperationError(f"field {name!r} must be {kind.__name__}")
    return value


def _key_json(key: KeyRecord) -> dict[str, object]:
    return {
        "country": key.country,
        "kid": key.kid.hex(),
        "public_key": key.public_key.hex(),
        "valid_from": key.valid_from,
        "valid_until": key.valid_until,
        "status": key.status,
        "compromised_at": key.compromised_at,
        "reason": key.reason,
    }


@routes.get("/v1/admin/audit")
async def audit(request: web.Request) -> web.Response:
    """Return the latest audit rows (``?limit=``, default 100, at most 1000)."""
    runner, _ = await _actor(request)
    try:
        limit = min(max(int(request.query.get("limit", "100")), 1), 1000)
    except ValueError as e:
        raise OperationError("limit must be an integer") from e
    rows = await runner.run(lambda r: r.store.audit_rows(limit))
    return web.json_response(
        [
            {"id": a.id, "at": a.at, "actor": a.actor, "action": a.action, "detail": a.detail}
            for a in rows
        ]
    )


@routes.post("/v1/admin/countries")
async def set_country(request: web.Request) -> web.Response:
    """Add or update a country: ``{code, authority, endpoints, contact}``."""
    runner, actor = await _actor(request)
    body = await _json(request)
    endpoints = _field(body, "endpoints", list, default=[])
    record = await runner.run(
        lambda r: r.set_country(
            _field(body, "code", str),
            authority=_field(body, "authority", str),
            endpoints=endpoints,
            contact=_field(body, "contact", str, default=""),
            actor=actor,
            now=runner.clock(),
        )
    )
    return web.json_response({"code": record.code, "name": record.name}, status=201)


@routes.get("/v1/admin/key-requests")
async def list_requests(request: web.Request) -> web.Response:
    """List key requests (``?status=pending|approved|rejected``)."""
    runner, _ = await _actor(request)
    status = request.query.get("status")
    rows = await runner.run(lambda r: r.store.requests(status))
    return web.json_response(
        [
            {
                "id": q.id,
                "action": q.action,
                "country": q.country,
                "received_at": q.received_at,
                "status": q.status,
                "decided_by": q.decided_by,
            }
            for q in rows
        ]
    )


@routes.post("/v1/admin/key-requests/{id}/approve")
async def approve(request: web.Request) -> web.Response:
    """Approve a key request: ``{fingerprint, overlap_seconds}`` (fingerprint for enrollments)."""
    runner, actor = await _actor(request)
    body = await _json(request)
    request_id = _request_id(request)
    fingerprint = body.get("fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise OperationError("fingerprint must be the key id in hex")
    overlap = _field(body, "overlap_seconds", int, default=86_400)
    records = await runner.run(
        lambda r: r.approve_key_request(
            request_id,
            fingerprint=fingerprint,
            overlap_seconds=overlap,
            actor=actor,
            now=runner.clock(),
        )
    )
    return web.json_response({"keys": [_key_json(k) for k in records]})


@routes.post("/v1/admin/key-requests/{id}/reject")
async def reject(request: web.Request) -> web.Response:
    """Reject a key request: ``{reason}``."""
    runner, actor = await _actor(request)
    body = await _json(request)
    request_id = _request_id(request)
    reason = _field(body, "reason", str)
    await runner.run(
        lambda r: r.reject_key_request(request_id, reason=reason, actor=actor, now=runner.clock())
    )
    return web.json_response({"id": request_id, "status": "rejected"})


def _request_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError as e:
        raise OperationError("request id must be an integer") from e


@routes.post("/v1/admin/keys/{kid}/revoke")
async def revoke(request: web.Request) -> web.Response:
    """Revoke any key as the operator: ``{compromised_at, reason}``."""
    runner, actor = await _actor(request)
    body = await _json(request)
    try:
        kid = bytes.fromhex(request.match_info["kid"])
    except ValueError as e:
        raise OperationError("kid must be hex") from e
    compromised_at = _field(body, "compromised_at", int)
    reason = _field(body, "reason", str)
    record = await runner.run(
        lambda r: r.revoke_key(
            kid, compromised_at=compromised_at, reason=reason, actor=actor, now=runner.clock()
        )
    )
    return web.json_response(_key_json(record))


@routes.post("/v1/admin/estimates")
async def set_estimate(request: web.Request) -> web.Response:
    """Publish ``{country, substance, year, quantity_mg, kind, effective}``."""
    runner, actor = await _actor(request)
    body = await _json(request)
    kind = _field(body, "kind", str)
    if kind not in ESTIMATE_KINDS:
        raise OperationError(f"kind must be one of {ESTIMATE_KINDS}")
    values = {
        "country": _field(body, "country", str),
        "substance": _field(body, "substance", str),
        "year": _field(body, "year", int),
        "quantity_mg": _field(body, "quantity_mg", int),
        "effective": _field(body, "effective", str),
    }
    record = await runner.run(
        lambda r: r.set_estimate(**values, kind=kind, actor=actor, now=runner.clock())
    )
    return web.json_response({"sequence": record.sequence, **values, "kind": kind}, status=201)


@routes.post("/v1/admin/catalogue")
async def set_catalogue(request: web.Request) -> web.Response:
    """Publish the catalogue edition in force: ``{edition, digest}`` (digest in hex)."""
    runner, actor = await _actor(request)
    body = await _json(request)
    try:
        digest = bytes.fromhex(_field(body, "digest", str))
    except ValueError as e:
        raise OperationError("digest must be hex") from e
    edition = _field(body, "edition", str)
    await runner.run(lambda r: r.set_catalogue(edition, digest, actor=actor, now=runner.clock()))
    return web.json_response({"edition": edition, "digest": digest.hex()}, status=201)


@routes.post("/v1/admin/publish")
async def publish(request: web.Request) -> web.Response:
    """Sign and publish the next snapshot: ``{expiry_seconds}`` optional."""
    runner, actor = await _actor(request)
    body = await _json(request) if request.can_read_body else {}
    expiry = body.get("expiry_seconds")
    if expiry is not None and (
        isinstance(expiry, bool) or not isinstance(expiry, int) or expiry < 1
    ):
        raise OperationError("expiry_seconds must be a positive integer")
    publication = await runner.run(
        lambda r: r.publish(actor=actor, now=runner.clock(), expiry_seconds=expiry)
    )
    return web.json_response(
        {
            "version": publication.version,
            "log_size": publication.log_size,
            "log_root": publication.log_root.hex(),
            "expires_at": publication.expires_at,
        },
        status=201,
    )
