"""Example documents of one transaction, signed with fixed, public test keys.

These make the worked example in docs/protocol.md (regenerated and checked by the tests),
and give tests and demonstrations realistic documents without repeating every field. The
keys are derived from published strings: they are for examples and tests only and must
never be registered for a real country.

The transaction: Germany (DE) imports 1 kg of morphine sulfate pentahydrate and 500 g of
oxycodone hydrochloride from India (IN). DE issues the import certificate; IN issues the
export authorization against it; DE endorses it with the quantities received.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

from permitnet.protocol.cbor import Tag, encode_cbor
from permitnet.protocol.cose import Sign1Message, key_id, public_key_from_seed
from permitnet.protocol.doc_declaration import ExportDeclaration
from permitnet.protocol.doc_notices import Cancellation, DeliveryReceipt, Message
from permitnet.protocol.doc_parts import CertificateReference, Item, Party, ReceivedItem
from permitnet.protocol.doc_trade import (
    Endorsement,
    ExportAuthorization,
    ImportCertificate,
)
from permitnet.protocol.errors import EncodeError
from permitnet.protocol.signed import SignedDocument

__all__ = [
    "EXAMPLE_EXPORTER",
    "EXAMPLE_IMPORTER",
    "EXAMPLE_ISSUED_AT",
    "diagnostic_notation",
    "example_cancellation",
    "example_delivery_receipt",
    "example_endorsement",
    "example_export_authorization",
    "example_export_declaration",
    "example_import_certificate",
    "example_kid",
    "example_message",
    "example_seed",
    "worked_example",
]

#: 2026-01-05 09:00:00 UTC, when the example certificate is issued.
EXAMPLE_ISSUED_AT: Final = 1_767_603_600

EXAMPLE_IMPORTER: Final = Party(
    name="Beispiel Pharma GmbH",
    address="Musterstrasse 1\n10115 Berlin\nGermany",
    licence="BtM-4021337",
)
EXAMPLE_EXPORTER: Final = Party(
    name="Example Alkaloids Ltd",
    address="Plot 7, Industrial Area\nHyderabad 500001\nIndia",
    licence="NDPS-MFG-2291",
)


def example_seed(country: str) -> bytes:
    """Return the public test signing key (32-byte seed) of ``country``: never use it for real.

    It is SHA-256 of ``"permitnet example key " + country``.
    """
    return hashlib.sha256(f"permitnet example key {country}".encode()).digest()


def example_kid(country: str) -> bytes:
    """Return the key identifier of :func:`example_seed` for ``country``."""
    return key_id(public_key_from_seed(example_seed(country)))


def example_import_certificate(**changes: Any) -> ImportCertificate:
    """Return the example import certificate from DE to IN, with ``changes`` applied."""
    fields: dict[str, Any] = {
        "issuer": "DE",
        "recipient": "IN",
        "issued_at": EXAMPLE_ISSUED_AT,
        "authority": "Bundesinstitut fur Arzneimittel und Medizinprodukte, Bundesopiumstelle",
        "number": "DE-IC-2026-000123",
        "date_of_issue": dt.date(2026, 1, 5),
        "importer": EXAMPLE_IMPORTER,
        "exporter": EXAMPLE_EXPORTER,
        "exporting_country": "IN",
        "items": (
            Item.create("morphine-sulfate-pentahydrate", 1_000_000, "bulk powder"),
            Item.create("oxycodone-hydrochloride", 500_000, "bulk powder"),
        ),
        "valid_from": dt.date(2026, 1, 5),
        "valid_until": dt.date(2026, 7, 4),
        "several_consignments": False,
        "conditions": "Delivery into bonded warehouse, Berlin.",
        "estimate_year": 2026,
    }
    return ImportCertificate(**(fields | changes))


def example_export_authorization(certificate_id: bytes, **changes: Any) -> ExportAuthorization:
    """Return the example export authorization from IN against certificate ``certificate_id``."""
    certificate = example_import_certificate()
    fields: dict[str, Any] = {
        "issuer": "IN",
        "recipient": "DE",
        "issued_at": EXAMPLE_ISSUED_AT + 10 * 86_400,
        "authority": "Narcotics Commissioner of India, Central Bureau of Narcotics",
        "number": "IN-EA-2026-004567",
        "date_of_issue": dt.date(2026, 1, 15),
        "importer": EXAMPLE_IMPORTER,
        "exporter": EXAMPLE_EXPORTER,
        "importing_country": "DE",
        "items": certificate.items,
        "import_certificate": CertificateReference(
            id=certificate_id,
            number=certificate.number,
            date_of_issue=certificate.date_of_issue,
            authority=certificate.authority,
        ),
        "valid_from": dt.date(2026, 1, 15),
        "valid_until": dt.date(2026, 4, 15),
        "route": "Hyderabad (HYD) - Frankfurt (FRA) by air freight",
        "transport_mode": "air",
        "transit_countries": (),
    }
    return ExportAuthorization(**(fields | changes))


def example_endorsement(authorization_id: bytes, **changes: Any) -> Endorsement:
    """Return DE's example endorsement of export authorization ``authorization_id``."""
    fields: dict[str, Any] = {
        "issuer": "DE",
        "recipient": "IN",
        "issued_at": EXAMPLE_ISSUED_AT + 40 * 86_400,
        "authority": "Bundesinstitut fur Arzneimittel und Medizinprodukte, Bundesopiumstelle",
        "export_authorization": authorization_id,
        "export_authorization_number": "IN-EA-2026-004567",
        "date_received": dt.date(2026, 2, 12),
        "received": (
            ReceivedItem(line=0, substance="morphine-sulfate-pentahydrate", quantity_mg=1_000_000),
            ReceivedItem(line=1, substance="oxycodone-hydrochloride", quantity_mg=499_000),
        ),
        "remarks": "One drum of oxycodone hydrochloride 1 g short.",
    }
    return Endorsement(**(fields | changes))


def example_cancellation(document_id: bytes, **changes: Any) -> Cancellation:
    """Return DE's example cancellation of document ``document_id``."""
    fields: dict[str, Any] = {
        "issuer": "DE",
        "recipient": "IN",
        "issued_at": EXAMPLE_ISSUED_AT + 86_400,
        "authority": "Bundesinstitut fur Arzneimittel und Medizinprodukte, Bundesopiumstelle",
        "document": document_id,
        "reason": "Issued in error: the importer's licence was suspended.",
    }
    return Cancellation(**(fields | changes))


def example_message(about: bytes, **changes: Any) -> Message:
    """Return IN's example message to DE about document ``about``."""
    fields: dict[str, Any] = {
        "issuer": "IN",
        "recipient": "DE",
        "issued_at": EXAMPLE_ISSUED_AT + 2 * 86_400,
        "authority": "Narcotics Commissioner of India, Central Bureau of Narcotics",
        "about": about,
        "in_reply_to": None,
        "text": "Please confirm the importer's licence number.",
    }
    return Message(**(fields | changes))


def example_delivery_receipt(document_id: bytes, **changes: Any) -> DeliveryReceipt:
    """Return IN's example receipt accepting DE's document ``document_id``."""
    fields: dict[str, Any] = {
        "issuer": "IN",
        "recipient": "DE",
        "issued_at": EXAMPLE_ISSUED_AT + 5,
        "authority": "Narcotics Commissioner of India, Central Bureau of Narcotics",
        "document": document_id,
        "status": "accepted",
        "reason": "",
        "received_at": EXAMPLE_ISSUED_AT + 4,
    }
    return DeliveryReceipt(**(fields | changes))


def example_export_declaration(**changes: Any) -> ExportDeclaration:
    """Return IN's example export declaration of diazepam (1971 Schedule IV) to DE."""
    fields: dict[str, Any] = {
        "issuer": "IN",
        "recipient": "DE",
        "issued_at": EXAMPLE_ISSUED_AT,
        "authority": "Narcotics Commissioner of India, Central Bureau of Narcotics",
        "number": "IN-ED-2026-000042",
        "exporter": EXAMPLE_EXPORTER,
        "importer": EXAMPLE_IMPORTER,
        "importing_country": "DE",
        "items": (Item.create("diazepam", 2_000_000, "bulk powder"),),
        "date_of_export": dt.date(2026, 1, 20),
    }
    return ExportDeclaration(**(fields | changes))


def diagnostic_notation(value: object, indent: int = 0) -> str:
    """Write a decoded CBOR value in diagnostic notation (RFC 8949 section 8), for people.

    Maps are written in deterministic key order; arrays and maps holding containers are
    spread over lines, indented by two spaces per level.

    Raises:
        EncodeError: ``value`` holds a type CBOR does not have here (a float, a set, ...).
    """
    pad = "  " * (indent + 1)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return f"h'{value.hex()}'"
    if isinstance(value, Tag):
        return f"{value.tag}({diagnostic_notation(value.value, indent)})"
    if isinstance(value, list | tuple):
        parts = [diagnostic_notation(element, indent + 1) for element in value]
        if not any(isinstance(e, list | tuple | Mapping) for e in value):
            return f"[{', '.join(parts)}]"
        return "[\n" + ",\n".join(pad + part for part in parts) + "\n" + "  " * indent + "]"
    if isinstance(value, Mapping):
        keys = sorted(value, key=encode_cbor)
        parts = [
            f"{diagnostic_notation(key)}: {diagnostic_notation(value[key], indent + 1)}"
            for key in keys
        ]
        if not parts:
            return "{}"
        return "{\n" + ",\n".join(pad + part for part in parts) + "\n" + "  " * indent + "}"
    raise EncodeError(f"type {type(value).__name__} has no CBOR diagnostic notation here")


def _hex_lines(data: bytes, width: int = 32) -> str:
    return "\n".join(data[i : i + width].hex() for i in range(0, len(data), width))


def worked_example() -> dict[str, str]:
    """Return the worked example of docs/protocol.md, block by block, regenerated from code.

    Keys name the blocks of the document (``seed``, ``public-key``, ``kid``, ``payload-diag``,
    ``payload-hex``, ``protected-hex``, ``signature``, ``signed-hex``, ``id``); the tests
    check that the document still shows exactly these.
    """
    seed = example_seed("DE")
    public_key = public_key_from_seed(seed)
    signed = SignedDocument.sign(
        example_import_certificate(), signing_key=seed, kid=key_id(public_key)
    )
    message = Sign1Message.from_bytes(signed.raw)
    return {
        "seed": seed.hex(),
        "public-key": public_key.hex(),
        "kid": signed.kid.hex(),
        "protected-diag": diagnostic_notation(message.protected),
        "protected-hex": message.protected_bytes.hex(),
        "payload-diag": diagnostic_notation(signed.document.to_payload()),
        "payload-hex": _hex_lines(message.payload),
        "signature": _hex_lines(message.signature),
        "signed-hex": _hex_lines(signed.raw),
        "id": signed.id_hex,
    }
