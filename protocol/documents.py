"""The permitnet document types, and reading any of them from a decoded payload.

Seven document types travel between nodes, each a frozen dataclass with ``to_payload()``,
``to_cbor()`` and a validating ``from_payload()``:

* :class:`ImportCertificate` and :class:`ExportAuthorization` (1961 art. 31; 1971 art. 12(1));
* :class:`Endorsement` of an export authorization with the quantities received;
* :class:`ExportDeclaration` (1971 art. 12(2));
* :class:`Cancellation`, :class:`Message` and :class:`DeliveryReceipt`, about other documents.

:func:`document_from_payload` reads any of them, dispatching on the payload's ``"type"``.
The wire format of each is specified in docs/protocol.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from permitnet.protocol.doc_base import HEADER_KEYS, SCHEMA_VERSIONS
from permitnet.protocol.doc_declaration import ExportDeclaration
from permitnet.protocol.doc_notices import RECEIPT_STATUSES, Cancellation, DeliveryReceipt, Message
from permitnet.protocol.doc_parts import MAX_ITEMS, CertificateReference, Item, Party, ReceivedItem
from permitnet.protocol.doc_trade import (
    TRANSPORT_MODES,
    Endorsement,
    ExportAuthorization,
    ImportCertificate,
)
from permitnet.protocol.errors import DocumentError

if TYPE_CHECKING:
    from permitnet.protocol.catalogue import Catalogue

__all__ = [
    "DOCUMENT_TYPES",
    "HEADER_KEYS",
    "MAX_ITEMS",
    "RECEIPT_STATUSES",
    "SCHEMA_VERSIONS",
    "TRANSPORT_MODES",
    "Cancellation",
    "CertificateReference",
    "DeliveryReceipt",
    "Document",
    "Endorsement",
    "ExportAuthorization",
    "ExportDeclaration",
    "ImportCertificate",
    "Item",
    "Message",
    "Party",
    "ReceivedItem",
    "document_from_payload",
    "refers_to",
]

#: Any permitnet document.
Document = (
    ImportCertificate
    | ExportAuthorization
    | Endorsement
    | Cancellation
    | Message
    | DeliveryReceipt
    | ExportDeclaration
)

#: The document classes by their payload ``"type"``.
DOCUMENT_TYPES: Final[dict[str, type[Document]]] = {
    cls.DOCUMENT_TYPE: cls
    for cls in (
        ImportCertificate,
        ExportAuthorization,
        Endorsement,
        Cancellation,
        Message,
        DeliveryReceipt,
        ExportDeclaration,
    )
}


def document_from_payload(payload: object, *, catalogue: Catalogue | None = None) -> Document:
    """Build the typed document a decoded payload describes, checking every field.

    Args:
        payload: the decoded CBOR payload (a map).
        catalogue: the substance catalogue items are checked against (by default the
            built-in edition).

    Returns:
        An instance of the class named by the payload's ``"type"``.

    Raises:
        DocumentError: not a map, an unknown ``"type"``, or any field that does not match
            the schema of that type (the message names the field).
    """
    if not isinstance(payload, dict):
        raise DocumentError(f"a document payload is a map, got {type(payload).__name__}")
    kind = payload.get("type")
    cls = DOCUMENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise DocumentError(
            f"type: {kind!r} is not a document type (known: {', '.join(sorted(DOCUMENT_TYPES))})"
        )
    return cls.from_payload(payload, catalogue=catalogue)


def refers_to(document: Document) -> bytes | None:
    """Return the identifier of the document ``document`` refers to, if it refers to one.

    This is the hash-linked chain: an export authorization refers to its import certificate,
    an endorsement to its export authorization, a cancellation or delivery receipt to the
    document it concerns, a message to the document it is about.
    """
    if isinstance(document, ExportAuthorization):
        return document.import_certificate.id
    if isinstance(document, Endorsement):
        return document.export_authorization
    if isinstance(document, Cancellation | DeliveryReceipt):
        return document.document
    if isinstance(document, Message):
        return document.about
    return None
