"""The component schemas of the node API's OpenAPI document, and the helpers that build them.

:mod:`permitnet.node.openapi` puts :data:`SCHEMAS` under ``components.schemas`` and points its
operations at them with :func:`ref`. They are JSON Schema 2020-12 (OpenAPI 3.1's dialect).
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["INT", "SCHEMAS", "STR", "ref"]


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema called ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_ID: Final = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_COUNTRY: Final = {"type": "string", "pattern": "^[A-Z]{2}$"}
INT: Final = {"type": "integer"}
STR: Final = {"type": "string"}

#: The component schemas, by name.
SCHEMAS: Final[dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": STR, "message": STR, "rule": STR},
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
            "type": STR,
            "issuer": _COUNTRY,
            "recipient": _COUNTRY,
            "issued_at": INT,
            "direction": {"enum": ["outbound", "inbound", "paper"]},
            "state": {"type": "string", "description": "active, cancelled, endorsed, overdue"},
            "reference": _nullable(STR),
            "refers_to": _nullable(_ID),
            "electronically_verified": {"type": "boolean"},
        },
    },
    "DocumentList": {
        "type": "object",
        "required": ["documents"],
        "properties": {"documents": {"type": "array", "items": ref("DocumentSummary")}},
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
            "type": STR,
            "direction": {"enum": ["outbound", "inbound", "paper"]},
            "state": STR,
            "electronically_verified": {"type": "boolean"},
            "stored_at": INT,
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
                    "properties": {"id": _ID, "type": STR, "issuer": _COUNTRY, "issued_at": INT},
                },
            },
            "deliveries": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["peer", "attempts", "delivered_at", "last_error", "receipt"],
                    "properties": {
                        "peer": _COUNTRY,
                        "attempts": INT,
                        "delivered_at": _nullable(INT),
                        "last_error": _nullable(STR),
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
                        "id": INT,
                        "filename": STR,
                        "media_type": STR,
                        "sha256": STR,
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
            "id": STR,
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
            "created_by": STR,
            "created_at": INT,
            "updated_at": INT,
            "held_reason": _nullable(STR),
            "approved_by": _nullable(STR),
            "document_id": _nullable(_ID),
        },
    },
    "DraftList": {
        "type": "object",
        "required": ["drafts"],
        "properties": {"drafts": {"type": "array", "items": ref("Draft")}},
    },
    "Approval": {
        "type": "object",
        "required": ["draft", "document"],
        "properties": {"draft": ref("Draft"), "document": _nullable(ref("DocumentSummary"))},
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
            "id": INT,
            "kind": {
                "type": "string",
                "description": "quantity_mismatch, overdue, cancelled, delivery_rejected, ...",
            },
            "document_id": STR,
            "message": STR,
            "created_at": INT,
            "acknowledged_at": _nullable(INT),
            "acknowledged_by": _nullable(STR),
        },
    },
    "AlertList": {
        "type": "object",
        "required": ["alerts"],
        "properties": {"alerts": {"type": "array", "items": ref("Alert")}},
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
            "substance": STR,
            "year": INT,
            "estimate_mg": _nullable(INT),
            "supplementary_mg": INT,
            "total_mg": _nullable(INT),
            "authorized_mg": INT,
            "remaining_mg": _nullable(INT),
        },
    },
    "Balances": {
        "type": "object",
        "required": ["year", "balances"],
        "properties": {"year": INT, "balances": {"type": "array", "items": ref("Balance")}},
    },
    "Event": {
        "type": "object",
        "required": ["seq", "at", "kind", "subject", "from_state", "to_state", "actor", "detail"],
        "additionalProperties": False,
        "properties": {
            "seq": INT,
            "at": INT,
            "kind": {"type": "string", "description": "document, draft, alert, quarantine, ..."},
            "subject": STR,
            "from_state": _nullable(STR),
            "to_state": _nullable(STR),
            "actor": STR,
            "detail": {"type": "object"},
        },
    },
    "EventList": {
        "type": "object",
        "required": ["events"],
        "properties": {"events": {"type": "array", "items": ref("Event")}},
    },
    "Status": {
        "type": "object",
        "required": ["country", "authority", "kid", "registry"],
        "properties": {
            "country": _COUNTRY,
            "authority": STR,
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
                    "version": _nullable(INT),
                    "issued_at": _nullable(INT),
                    "expires_at": _nullable(INT),
                    "age_seconds": _nullable(INT),
                    "expired": {"type": "boolean"},
                    "last_error": _nullable(STR),
                    "freshness": _nullable(STR),
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
                        "seq": INT,
                        "document_id": _ID,
                        "reason": STR,
                        "from_peer": _nullable(_COUNTRY),
                        "received_at": INT,
                        "size": INT,
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
                        "received_at": INT,
                        "attempts": INT,
                        "last_error": _nullable(STR),
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
