"""From the fields a national system or clerk sends to typed documents, and back to records.

Pure functions: the lifecycle services fetch what a document refers to and pass it in. Each
builder assembles the payload and reads it back with the protocol's own validating
``from_payload``, so a draft is checked by exactly the rules a receiving node applies, and every
error names the field. The issuer, authority and time come from the node, never from the body.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any, Final

from permitnet.node.errors import ValidationError
from permitnet.node.store import DocumentItem, DocumentRecord
from permitnet.protocol import Sign1Message, decode_cbor
from permitnet.protocol.documents import (
    Cancellation,
    Document,
    Endorsement,
    ExportAuthorization,
    ExportDeclaration,
    ImportCertificate,
    Item,
    Message,
    document_from_payload,
    refers_to,
)
from permitnet.protocol.errors import DocumentError

if TYPE_CHECKING:
    from permitnet.node.store import Direction

__all__ = [
    "DRAFT_TYPES",
    "SCAN_TYPES",
    "build_cancellation",
    "build_endorsement",
    "build_export_authorization",
    "build_export_declaration",
    "build_import_certificate",
    "build_message",
    "decode_stored",
    "document_json",
    "parse_id",
    "record_for",
    "scan_media_type",
]

#: What a paper certificate's scan may be, by its first bytes; anything else is refused rather
#: than stored and later served under a type it is not.
SCAN_TYPES: Final = {
    b"%PDF-": "application/pdf",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
}


def scan_media_type(scan: bytes) -> str:
    """The media type of a scan, read from its first bytes.

    Raises:
        ValidationError: it is not a PDF, PNG or JPEG file.
    """
    for magic, media in SCAN_TYPES.items():
        if scan.startswith(magic):
            return media
    raise ValidationError("Scan: upload the scan as a PDF, PNG or JPEG file")


#: The document types a node prepares as drafts, by their API names.
DRAFT_TYPES: Final = (
    "import_certificate",
    "export_authorization",
    "endorsement",
    "cancellation",
    "export_declaration",
)
_HEX_ID: Final = re.compile(r"[0-9a-f]{64}")


def parse_id(value: object, field: str) -> str:
    """Return ``value`` if it is a document identifier in lowercase hex.

    Raises:
        DocumentError: it is not 64 lowercase hex digits.
    """
    if not isinstance(value, str) or not _HEX_ID.fullmatch(value):
        raise DocumentError(f"{field}: a document identifier is 64 lowercase hex digits")
    return value


def _body(body: object, required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object")
    missing = [k for k in required if k not in body]
    if missing:
        raise DocumentError(f"{', '.join(missing)}: required")
    return dict(body)


def _items(raw: object) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise DocumentError("items: a non-empty list of {substance, quantity_mg, preparation}")
    items = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or set(entry) != {"substance", "quantity_mg", "preparation"}:
            raise DocumentError(f"items[{i}]: exactly substance, quantity_mg and preparation")
        substance, quantity, preparation = (
            entry["substance"],
            entry["quantity_mg"],
            entry["preparation"],
        )
        if not isinstance(substance, str) or not isinstance(preparation, str):
            raise DocumentError(f"items[{i}]: substance and preparation are text")
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            raise DocumentError(f"items[{i}].quantity_mg: an integer number of milligrams")
        try:
            items.append(Item.create(substance, quantity, preparation).to_payload())
        except DocumentError as e:
            raise DocumentError(f"items[{i}]: {e}") from e
    return items


def _header(
    doc_type: str, *, issuer: str, recipient: object, authority: str, issued_at: int
) -> dict[str, Any]:
    return {
        "v": 1,
        "type": doc_type,
        "issuer": issuer,
        "recipient": recipient,
        "issued_at": issued_at,
        "authority": authority,
    }


def build_import_certificate(
    body: object, *, issuer: str, authority: str, issued_at: int
) -> ImportCertificate:
    """Build an import certificate; the body's ``exporting_country`` is its recipient.

    Raises:
        DocumentError: a missing or invalid field (named).
        ValidationError: the body is not an object.
    """
    fields = _body(body, ("exporting_country", "items"))
    fields["items"] = _items(fields["items"])
    fields.setdefault("conditions", "")
    fields.setdefault("several_consignments", False)
    header = _header(
        "import_certificate",
        issuer=issuer,
        recipient=fields["exporting_country"],
        authority=authority,
        issued_at=issued_at,
    )
    return ImportCertificate.from_payload(header | fields)


def build_export_authorization(
    body: object,
    *,
    issuer: str,
    authority: str,
    issued_at: int,
    certificate: ImportCertificate,
    certificate_id: str,
) -> ExportAuthorization:
    """Build an export authorization against ``certificate`` (parties and country from it).

    Raises:
        DocumentError: a missing or invalid field (named).
    """
    fields = _body(body, ("import_certificate", "items"))
    fields.pop("import_certificate")
    fields["items"] = _items(fields["items"])
    fields.setdefault("route", "")
    fields.setdefault("transit_countries", [])
    header = _header(
        "export_authorization",
        issuer=issuer,
        recipient=certificate.issuer,
        authority=authority,
        issued_at=issued_at,
    )
    derived = {
        "importer": certificate.importer.to_payload(),
        "exporter": certificate.exporter.to_payload(),
        "importing_country": certificate.issuer,
        "import_certificate": {
            "id": bytes.fromhex(certificate_id),
            "number": certificate.number,
            "date_of_issue": certificate.date_of_issue.isoformat(),
            "authority": certificate.authority,
        },
    }
    for key in derived:
        if key in fields:
            raise DocumentError(f"{key}: taken from the import certificate, not from the request")
    return ExportAuthorization.from_payload(header | fields | derived)


def build_endorsement(
    body: object,
    *,
    issuer: str,
    authority: str,
    issued_at: int,
    authorization: ExportAuthorization,
    authorization_id: str,
) -> Endorsement:
    """Build the endorsement of a received export authorization.

    The body's ``received`` lists ``{line, quantity_mg}``; the substance of each line is
    taken from the authorization.

    Raises:
        DocumentError: a missing or invalid field, or a line the authorization does not have.
    """
    fields = _body(body, ("export_authorization", "received", "date_received"))
    fields.pop("export_authorization")
    received = fields["received"]
    if not isinstance(received, list) or not received:
        raise DocumentError("received: a non-empty list of {line, quantity_mg}")
    lines = []
    for i, entry in enumerate(received):
        if not isinstance(entry, dict) or set(entry) != {"line", "quantity_mg"}:
            raise DocumentError(f"received[{i}]: exactly line and quantity_mg")
        line = entry["line"]
        if not isinstance(line, int) or isinstance(line, bool):
            raise DocumentError(f"received[{i}].line: an integer")
        if not 0 <= line < len(authorization.items):
            raise DocumentError(
                f"received[{i}].line: {line} but the authorization has lines "
                f"0..{len(authorization.items) - 1}"
            )
        substance = authorization.items[line].substance
        lines.append({"line": line, "substance": substance, "quantity_mg": entry["quantity_mg"]})
    fields["received"] = lines
    fields.setdefault("remarks", "")
    fields["export_authorization"] = bytes.fromhex(authorization_id)
    fields["export_authorization_number"] = authorization.number
    header = _header(
        "endorsement",
        issuer=issuer,
        recipient=authorization.issuer,
        authority=authority,
        issued_at=issued_at,
    )
    return Endorsement.from_payload(header | fields)


def build_cancellation(
    body: object, *, issuer: str, authority: str, issued_at: int, target: DocumentRecord
) -> Cancellation:
    """Build the cancellation of a document this node issued.

    Raises:
        DocumentError: a missing or invalid field.
    """
    fields = _body(body, ("document", "reason"))
    header = _header(
        "cancellation",
        issuer=issuer,
        recipient=target.recipient,
        authority=authority,
        issued_at=issued_at,
    )
    fields["document"] = bytes.fromhex(parse_id(fields["document"], "document"))
    return Cancellation.from_payload(header | fields)


def build_message(
    body: object, *, issuer: str, authority: str, issued_at: int, about: DocumentRecord
) -> Message:
    """Build a message to the other authority of the document it is about.

    Raises:
        DocumentError: a missing or invalid field.
    """
    fields = _body(body, ("about", "text"))
    other = about.recipient if about.issuer == issuer else about.issuer
    header = _header(
        "message", issuer=issuer, recipient=other, authority=authority, issued_at=issued_at
    )
    fields["about"] = bytes.fromhex(parse_id(fields["about"], "about"))
    reply = fields.get("in_reply_to")
    fields["in_reply_to"] = None if reply is None else bytes.fromhex(parse_id(reply, "in_reply_to"))
    return Message.from_payload(header | fields)


def build_export_declaration(
    body: object, *, issuer: str, authority: str, issued_at: int
) -> ExportDeclaration:
    """Build an export declaration; the body's ``importing_country`` is its recipient.

    Raises:
        DocumentError: a missing or invalid field.
    """
    fields = _body(body, ("importing_country", "items"))
    fields["items"] = _items(fields["items"])
    header = _header(
        "export_declaration",
        issuer=issuer,
        recipient=fields["importing_country"],
        authority=authority,
        issued_at=issued_at,
    )
    return ExportDeclaration.from_payload(header | fields)


def decode_stored(record: DocumentRecord) -> Document:
    """Read the typed document back from a stored record (verified when it was stored).

    Raises:
        DocumentError: the stored bytes no longer decode (never expected: they are immutable).
    """
    if record.direction == "paper":
        payload = decode_cbor(record.raw)
    else:
        payload = decode_cbor(Sign1Message.from_bytes(record.raw).payload)
    return document_from_payload(payload)


def _refers_to(document: Document) -> str | None:
    reference = refers_to(document)
    return None if reference is None else reference.hex()


def record_for(
    raw: bytes,
    document: Document,
    *,
    direction: Direction,
    state: str,
    electronically_verified: bool = True,
) -> DocumentRecord:
    """Return the store record (indexed columns) of a signed or paper document."""
    items: tuple[Item, ...] = ()
    valid_until = None
    if isinstance(document, ImportCertificate | ExportAuthorization | ExportDeclaration):
        items = document.items
    if isinstance(document, ImportCertificate | ExportAuthorization):
        valid_until = document.valid_until.isoformat()
    return DocumentRecord(
        id=hashlib.sha256(raw).hexdigest(),
        raw=raw,
        doc_type=document.DOCUMENT_TYPE,
        issuer=document.issuer,
        recipient=document.recipient,
        issued_at=document.issued_at,
        direction=direction,
        state=state,
        items=tuple(
            DocumentItem(
                substance=i.substance,
                base_substance=i.base,
                quantity_mg=i.quantity_mg,
                base_mg=i.base_mg,
            )
            for i in items
        ),
        refers_to=_refers_to(document),
        reference=getattr(document, "number", None),
        estimate_year=document.estimate_year if isinstance(document, ImportCertificate) else None,
        valid_until=valid_until,
        electronically_verified=electronically_verified,
    )


def _jsonable(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def document_json(record: DocumentRecord, document: Document) -> dict[str, Any]:
    """Return a stored document as JSON: the node's columns plus the signed fields."""
    return {
        "id": record.id,
        "type": record.doc_type,
        "direction": record.direction,
        "state": record.state,
        "electronically_verified": record.electronically_verified,
        "stored_at": record.stored_at,
        "refers_to": record.refers_to,
        "document": _jsonable(document.to_payload()),
    }
