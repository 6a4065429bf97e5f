"""The OpenAPI 3.1 description of the node's API, served at ``/api/v1/openapi.json``.

The schemas are JSON Schema 2020-12 (OpenAPI 3.1's dialect); tests validate real responses
against them, so this document stays true to what the handlers send.
"""

from __future__ import annotations

from typing import Any, Final

from permitnet.node.api_common import DRAFT_PATHS

__all__ = ["SPEC"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ID: Final = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_COUNTRY: Final = {"type": "string", "pattern": "^[A-Z]{2}$"}
_INT: Final = {"type": "integer"}
_STR: Final = {"type": "string"}
_ERRORS: Final = {
    str(code): {"$ref": "#/components/responses/Error"}
    for code in (400, 401, 403, 404, 409, 413, 422, 503)
}

_SCHEMAS: Final[dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": _STR, "message": _STR, "rule": _STR},
            }
        },
    },
    "DocumentSummary": {
        "type": "object",
        "required": [
            "id",
            "type",
            "issuer",
            "recipient",
            "issued_at",
            "direction",
            "state",
            "reference",
            "refers_to",
            "electronically_verified",
        ],
        "additionalProperties": False,
        "properties": {
            "id": _ID,
            "type": _STR,
            "issuer": _COUNTRY,
            "recipient": _COUNTRY,
            "issued_at": _INT,
            "direction": {"enum": ["outbound", "inbound", "paper"]},
            "state": {"type": "string", "description": "active, cancelled, endorsed, overdue"},
            "reference": _nullable(_STR),
            "refers_to": _nullable(_ID),
            "electronically_verified": {"type": "boolean"},
        },
    },
    "DocumentList": {
        "type": "object",
        "required": ["documents"],
        "properties": {"documents": {"type": "array", "items": _ref("DocumentSummary")}},
    },
    "DocumentDetail": {
        "type": "object",
        "required": [
            "id",
            "type",
            "direction",
            "state",
            "electronically_verified",
            "stored_at",
            "refers_to",
            "document",
            "related",
            "deliveries",
            "attachments",
        ],
        "properties": {
            "id": _ID,
            "type": _STR,
            "direction": {"enum": ["outbound", "inbound", "paper"]},
            "state": _STR,
            "electronically_verified": {"type": "boolean"},
            "stored_at": _INT,
            "refers_to": _nullable(_ID),
            "document": {
                "type": "object",
                "description": "The signed payload; byte strings (identifiers) as lowercase hex.",
                "required": ["v", "type", "issuer", "recipient", "issued_at", "authority"],
            },
            "related": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "type", "issuer", "issued_at"],
                    "properties": {"id": _ID, "type": _STR, "issuer": _COUNTRY, "issued_at": _INT},
                },
            },
            "deliveries": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["peer", "attempts", "delivered_at", "last_error", "receipt"],
                    "properties": {
                        "peer": _COUNTRY,
                        "attempts": _INT,
                        "delivered_at": _nullable(_INT),
                        "last_error": _nullable(_STR),
                        "receipt": {"type": "boolean"},
                    },
                },
            },
            "attachments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "filename", "media_type", "sha256"],
                    "properties": {
                        "id": _INT,
                        "filename": _STR,
                        "media_type": _STR,
                        "sha256": _STR,
                    },
                },
            },
        },
    },
    "Draft": {
        "type": "object",
        "required": [
            "id",
            "type",
            "body",
            "state",
            "created_by",
            "created_at",
            "updated_at",
            "held_reason",
            "approved_by",
            "document_id",
        ],
        "additionalProperties": False,
        "properties": {
            "id": _STR,
            "type": {
                "enum": [
                    "import_certificate",
                    "export_authorization",
                    "endorsement",
                    "cancellation",
                    "export_declaration",
                ]
            },
            "body": {"type": "object"},
            "state": {"enum": ["draft", "held", "signed", "discarded"]},
            "created_by": _STR,
            "created_at": _INT,
            "updated_at": _INT,
            "held_reason": _nullable(_STR),
            "approved_by": _nullable(_STR),
            "document_id": _nullable(_ID),
        },
    },
    "DraftList": {
        "type": "object",
        "required": ["drafts"],
        "properties": {"drafts": {"type": "array", "items": _ref("Draft")}},
    },
    "Approval": {
        "type": "object",
        "required": ["draft", "document"],
        "properties": {"draft": _ref("Draft"), "document": _nullable(_ref("DocumentSummary"))},
    },
    "Alert": {
        "type": "object",
        "required": [
            "id",
            "kind",
            "document_id",
            "message",
            "created_at",
            "acknowledged_at",
            "acknowledged_by",
        ],
        "additionalProperties": False,
        "properties": {
            "id": _INT,
            "kind": {
                "type": "string",
                "description": "quantity_mismatch, overdue, cancelled, delivery_rejected, ...",
            },
            "document_id": _STR,
            "message": _STR,
            "created_at": _INT,
            "acknowledged_at": _nullable(_INT),
            "acknowledged_by": _nullable(_STR),
        },
    },
    "AlertList": {
        "type": "object",
        "required": ["alerts"],
        "properties": {"alerts": {"type": "array", "items": _ref("Alert")}},
    },
    "Balance": {
        "type": "object",
        "required": [
            "substance",
            "year",
            "estimate_mg",
            "supplementary_mg",
            "total_mg",
            "authorized_mg",
            "remaining_mg",
        ],
        "additionalProperties": False,
        "properties": {
            "substance": _STR,
            "year": _INT,
            "estimate_mg": _nullable(_INT),
            "supplementary_mg": _INT,
            "total_mg": _nullable(_INT),
            "authorized_mg": _INT,
            "remaining_mg": _nullable(_INT),
        },
    },
    "Balances": {
        "type": "object",
        "required": ["year", "balances"],
        "properties": {"year": _INT, "balances": {"type": "array", "items": _ref("Balance")}},
    },
    "Event": {
        "type": "object",
        "required": ["seq", "at", "kind", "subject", "from_state", "to_state", "actor", "detail"],
        "additionalProperties": False,
        "properties": {
            "seq": _INT,
            "at": _INT,
            "kind": {"type": "string", "description": "document, draft, alert, quarantine, ..."},
            "subject": _STR,
            "from_state": _nullable(_STR),
            "to_state": _nullable(_STR),
            "actor": _STR,
            "detail": {"type": "object"},
        },
    },
    "EventList": {
        "type": "object",
        "required": ["events"],
        "properties": {"events": {"type": "array", "items": _ref("Event")}},
    },
    "Status": {
        "type": "object",
        "required": ["country", "authority", "kid", "registry"],
        "properties": {
            "country": _COUNTRY,
            "authority": _STR,
            "kid": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "registry": {
                "type": "object",
                "required": [
                    "version",
                    "issued_at",
                    "expires_at",
                    "age_seconds",
                    "expired",
                    "last_error",
                    "freshness",
                ],
                "properties": {
                    "version": _nullable(_INT),
                    "issued_at": _nullable(_INT),
                    "expires_at": _nullable(_INT),
                    "age_seconds": _nullable(_INT),
                    "expired": {"type": "boolean"},
                    "last_error": _nullable(_STR),
                    "freshness": _nullable(_STR),
                },
            },
        },
    },
    "QuarantineList": {
        "type": "object",
        "required": ["quarantine"],
        "properties": {
            "quarantine": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "seq",
                        "document_id",
                        "reason",
                        "from_peer",
                        "received_at",
                        "size",
                    ],
                    "additionalProperties": False,
                    "properties": {
                        "seq": _INT,
                        "document_id": _ID,
                        "reason": _STR,
                        "from_peer": _nullable(_COUNTRY),
                        "received_at": _INT,
                        "size": _INT,
                    },
                },
            }
        },
    },
    "PendingList": {
        "type": "object",
        "required": ["pending"],
        "properties": {
            "pending": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "document_id",
                        "reason",
                        "waiting_for",
                        "from_peer",
                        "received_at",
                        "attempts",
                        "last_error",
                    ],
                    "additionalProperties": False,
                    "properties": {
                        "document_id": _ID,
                        "reason": {"enum": ["dependency", "registry"]},
                        "waiting_for": _nullable(_ID),
                        "from_peer": _nullable(_COUNTRY),
                        "received_at": _INT,
                        "attempts": _INT,
                        "last_error": _nullable(_STR),
                    },
                },
            }
        },
    },
    "DraftInput": {
        "type": "object",
        "description": "The document's fields; see docs/node-api.md for each type. The issuer, "
        "authority and time are the node's.",
    },
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
_ID_PARAM: Final = {"name": "id", "in": "path", "required": True, "schema": _STR}


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
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return op


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    list_params = [
        {"name": n, "in": "query", "required": False, "schema": s}
        for n, s in (
            ("direction", _STR),
            ("state", _STR),
            ("refers_to", _STR),
            ("limit", _INT),
            ("before_issued_at", _INT),
        )
    ]
    for path, doc_type in DRAFT_PATHS.items():
        what = doc_type.replace("_", " ") + "s"
        paths[f"/api/v1/{path}"] = {
            "get": _op(
                f"List {what}", _json(_ref("DocumentList"), "documents"), params=list_params
            ),
            "post": _op(
                f"Prepare a draft of one of the {what}",
                _json(_ref("Draft"), "the draft"),
                body="DraftInput",
                params=[_IDEMPOTENCY],
                status="201",
            ),
        }
    paths["/api/v1/messages"] = {
        "get": _op("List messages", _json(_ref("DocumentList"), "messages"), params=list_params),
        "post": _op(
            "Sign and send a message about a document",
            _json(_ref("DocumentSummary"), "the message"),
            body="DraftInput",
            params=[_IDEMPOTENCY],
            status="201",
        ),
    }
    paths["/api/v1/paper-import-certificates"] = {
        "post": _op(
            "Record a paper import certificate by hand, with its scan",
            _json(_ref("DocumentSummary"), "the record"),
            body="DraftInput",
            params=[_IDEMPOTENCY],
            status="201",
        ),
    }
    paths["/api/v1/documents"] = {
        "get": _op(
            "List every document",
            _json(_ref("DocumentList"), "documents"),
            params=[*list_params, {"name": "type", "in": "query", "schema": _STR}],
        ),
    }
    paths["/api/v1/documents/{id}"] = {
        "get": {
            **_op(
                "A document as JSON, or its signed bytes with Accept: application/cose",
                _json(_ref("DocumentDetail"), "the document"),
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
            _json(_ref("DraftList"), "drafts"),
            params=[
                {"name": "state", "in": "query", "schema": _STR},
                {"name": "limit", "in": "query", "schema": _INT},
            ],
        ),
    }
    paths["/api/v1/drafts/{id}"] = {
        "get": _op("One draft", _json(_ref("Draft"), "the draft"), params=[_ID_PARAM]),
    }
    paths["/api/v1/drafts/{id}/approve"] = {
        "post": _op(
            "Approve and sign a draft (not its author; scope sign)",
            _json(_ref("Approval"), "signed"),
            params=[_ID_PARAM, _IDEMPOTENCY],
            status="201",
            extra={"202": _json(_ref("Approval"), "held over estimate")},
        ),
    }
    paths["/api/v1/drafts/{id}/discard"] = {
        "post": _op("Discard a draft", _json(_ref("Draft"), "discarded"), params=[_ID_PARAM]),
    }
    paths["/api/v1/alerts"] = {
        "get": _op(
            "List alerts",
            _json(_ref("AlertList"), "alerts"),
            params=[{"name": "all", "in": "query", "schema": _STR}],
        ),
    }
    paths["/api/v1/alerts/{id}/acknowledge"] = {
        "post": _op(
            "Acknowledge an alert",
            _json(
                {
                    "type": "object",
                    "required": ["acknowledged"],
                    "properties": {"acknowledged": _INT},
                },
                "ok",
            ),
            params=[_ID_PARAM],
        ),
    }
    paths["/api/v1/quarantine"] = {
        "get": _op(
            "Refused inputs kept for audit, newest first",
            _json(_ref("QuarantineList"), "quarantine"),
            params=[{"name": "limit", "in": "query", "schema": _INT}],
        ),
    }
    paths["/api/v1/pending"] = {
        "get": _op(
            "Received documents waiting for a dependency or fresh registry data",
            _json(_ref("PendingList"), "pending"),
        ),
    }
    paths["/api/v1/balances"] = {
        "get": _op(
            "Estimate and assessment balances",
            _json(_ref("Balances"), "balances"),
            params=[{"name": "year", "in": "query", "required": True, "schema": _INT}],
        ),
    }
    paths["/api/v1/events"] = {
        "get": _op(
            "Feed events after a sequence number",
            _json(_ref("EventList"), "events"),
            params=[
                {"name": "after", "in": "query", "schema": _INT},
                {"name": "limit", "in": "query", "schema": _INT},
            ],
        ),
    }
    paths["/api/v1/events/stream"] = {
        "get": _op(
            "Server-sent events (id = event seq; resumes after Last-Event-ID)",
            {
                "description": "text/event-stream of Event objects",
                "content": {"text/event-stream": {"schema": _STR}},
            },
        ),
    }
    paths["/api/v1/status"] = {
        "get": _op(
            "The node's country, key and registry freshness", _json(_ref("Status"), "status")
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
        "schemas": _SCHEMAS,
        "responses": {"Error": _json(_ref("Error"), "an error, with a code and a message")},
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}
