"""The OpenAPI 3.1 description of the node's API, served at ``/api/v1/openapi.json``.

The schemas are JSON Schema 2020-12 (OpenAPI 3.1's dialect); tests validate real responses
against them, so this document stays true to what the handlers send. The component schemas
are in :mod:`permitnet.node.openapi_schemas`; this module holds the paths and assembles SPEC.
"""

from __future__ import annotations

from typing import Any, Final

from permitnet.node.api_common import DRAFT_PATHS
from permitnet.node.openapi_schemas import INT, SCHEMAS, STR, ref

__all__ = ["SPEC"]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS: Final = {
    str(code): {"$ref": "#/components/responses/Error"}
    for code in (400, 401, 403, 404, 409, 413, 422, 503)
}

_BEARER: Final[list[dict[str, list[str]]]] = [{"bearer": []}]
_IDEMPOTENCY: Final = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 200},
    "description": "Same key and same body: the same answer; same key, other body: 409.",
}
_RAW: Final = {
    media: {"schema": {"type": "string", "contentMediaType": media}}
    for media in ("application/cose", "application/cbor")
}
_ID_PARAM: Final = {"name": "id", "in": "path", "required": True, "schema": STR}


def _op(
    summary: str,
    ok: dict[str, Any],
    *,
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
    status: str = "200",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": _BEARER,
        "responses": {status: ok, **(extra or {}), **_ERRORS},
    }
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(body)}},
        }
    return op


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    list_params = [
        {"name": n, "in": "query", "required": False, "schema": s}
        for n, s in (
            ("direction", STR),
            ("state", STR),
            ("refers_to", STR),
            ("limit", INT),
            ("before_issued_at", INT),
        )
    ]
    for path, doc_type in DRAFT_PATHS.items():
        what = doc_type.replace("_", " ") + "s"
        paths[f"/api/v1/{path}"] = {
            "get": _op(f"List {what}", _json(ref("DocumentList"), "documents"), params=list_params),
            "post": _op(
                f"Prepare a draft of one of the {what}",
                _json(ref("Draft"), "the draft"),
                body="DraftInput",
                params=[_IDEMPOTENCY],
                status="201",
            ),
        }
    paths["/api/v1/messages"] = {
        "get": _op("List messages", _json(ref("DocumentList"), "messages"), params=list_params),
        "post": _op(
            "Sign and send a message about a document",
            _json(ref("DocumentSummary"), "the message"),
            body="DraftInput",
            params=[_IDEMPOTENCY],
            status="201",
        ),
    }
    paths["/api/v1/paper-import-certificates"] = {
        "post": _op(
            "Record a paper import certificate by hand, with its scan",
            _json(ref("DocumentSummary"), "the record"),
            body="DraftInput",
            params=[_IDEMPOTENCY],
            status="201",
        ),
    }
    paths["/api/v1/documents"] = {
        "get": _op(
            "List every document",
            _json(ref("DocumentList"), "documents"),
            params=[*list_params, {"name": "type", "in": "query", "schema": STR}],
        ),
    }
    paths["/api/v1/documents/{id}"] = {
        "get": {
            **_op(
                "A document as JSON, or its signed bytes with Accept: application/cose",
                _json(ref("DocumentDetail"), "the document"),
                params=[_ID_PARAM],
            ),
        }
    }
    paths["/api/v1/documents/{id}"]["get"]["responses"]["200"]["content"].update(_RAW)
    paths["/api/v1/documents/{id}/raw"] = {
        "get": _op(
            "The exact signed bytes (a paper record: its CBOR, application/cbor)",
            {"description": "COSE_Sign1, or the CBOR of a paper record", "content": _RAW},
            params=[_ID_PARAM],
        ),
    }
    paths["/api/v1/drafts"] = {
        "get": _op(
            "List drafts",
            _json(ref("DraftList"), "drafts"),
            params=[
                {"name": "state", "in": "query", "schema": STR},
                {"name": "limit", "in": "query", "schema": INT},
            ],
        ),
    }
    paths["/api/v1/drafts/{id}"] = {
        "get": _op("One draft", _json(ref("Draft"), "the draft"), params=[_ID_PARAM]),
    }
    paths["/api/v1/drafts/{id}/approve"] = {
        "post": _op(
            "Approve and sign a draft (not its author; scope sign)",
            _json(ref("Approval"), "signed"),
            params=[_ID_PARAM, _IDEMPOTENCY],
            status="201",
            extra={"202": _json(ref("Approval"), "held over estimate")},
        ),
    }
    paths["/api/v1/drafts/{id}/discard"] = {
        "post": _op("Discard a draft", _json(ref("Draft"), "discarded"), params=[_ID_PARAM]),
    }
    paths["/api/v1/alerts"] = {
        "get": _op(
            "List alerts",
            _json(ref("AlertList"), "alerts"),
            params=[{"name": "all", "in": "query", "schema": STR}],
        ),
    }
    paths["/api/v1/alerts/{id}/acknowledge"] = {
        "post": _op(
            "Acknowledge an alert",
            _json(
                {
                    "type": "object",
                    "required": ["acknowledged"],
                    "properties": {"acknowledged": INT},
                },
                "ok",
            ),
            params=[_ID_PARAM],
        ),
    }
    paths["/api/v1/quarantine"] = {
        "get": _op(
            "Refused inputs kept for audit, newest first",
            _json(ref("QuarantineList"), "quarantine"),
            params=[{"name": "limit", "in": "query", "schema": INT}],
        ),
    }
    paths["/api/v1/pending"] = {
        "get": _op(
            "Received documents waiting for a dependency or fresh registry data",
            _json(ref("PendingList"), "pending"),
        ),
    }
    paths["/api/v1/balances"] = {
        "get": _op(
            "Estimate and assessment balances",
            _json(ref("Balances"), "balances"),
            params=[{"name": "year", "in": "query", "required": True, "schema": INT}],
        ),
    }
    paths["/api/v1/events"] = {
        "get": _op(
            "Feed events after a sequence number",
            _json(ref("EventList"), "events"),
            params=[
                {"name": "after", "in": "query", "schema": INT},
                {"name": "limit", "in": "query", "schema": INT},
            ],
        ),
    }
    paths["/api/v1/events/stream"] = {
        "get": _op(
            "Server-sent events (id = event seq; resumes after Last-Event-ID)",
            {
                "description": "text/event-stream of Event objects",
                "content": {"text/event-stream": {"schema": STR}},
            },
        ),
    }
    paths["/api/v1/status"] = {
        "get": _op(
            "The node's country, key and registry freshness", _json(ref("Status"), "status")
        ),
    }
    paths["/api/v1/openapi.json"] = {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1"}},
        },
    }
    return paths


#: The OpenAPI document.
SPEC: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "permitnet node API",
        "version": "1",
        "description": "Import certificates, export authorizations, endorsements, cancellations "
        "and messages of one country's competent national authority.",
    },
    "paths": _paths(),
    "components": {
        "schemas": SCHEMAS,
        "responses": {"Error": _json(ref("Error"), "an error, with a code and a message")},
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}
