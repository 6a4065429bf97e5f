"""The permitnet wire format and rules: deterministic CBOR, COSE_Sign1, documents, Convention rules.

Pure and sans-I/O: bytes and a clock value go in; typed documents or exceptions come out.
"""

from permitnet.protocol.catalogue import DEFAULT_CATALOGUE, Catalogue, CatalogueError, Substance
from permitnet.protocol.cbor import decode_cbor, encode_cbor
from permitnet.protocol.cose import Sign1Message, key_id, public_key_from_seed, sign1, verify1
from permitnet.protocol.documents import (
    Cancellation,
    CertificateReference,
    DeliveryReceipt,
    Document,
    Endorsement,
    ExportAuthorization,
    ExportDeclaration,
    ImportCertificate,
    Item,
    Message,
    Party,
    ReceivedItem,
    document_from_payload,
)
from permitnet.protocol.errors import (
    DecodeError,
    DocumentError,
    EncodeError,
    InvalidSignatureError,
    ProtocolError,
    RegistryError,
    RuleViolation,
    SignatureError,
    SizeLimitError,
)
from permitnet.protocol.quantities import QuantityError
from permitnet.protocol.signed import SignedDocument, peek_kid

__all__ = [
    "DEFAULT_CATALOGUE",
    "Cancellation",
    "Catalogue",
    "CatalogueError",
    "CertificateReference",
    "DecodeError",
    "DeliveryReceipt",
    "Document",
    "DocumentError",
    "EncodeError",
    "Endorsement",
    "ExportAuthorization",
    "ExportDeclaration",
    "ImportCertificate",
    "InvalidSignatureError",
    "Item",
    "Message",
    "Party",
    "ProtocolError",
    "QuantityError",
    "ReceivedItem",
    "RegistryError",
    "RuleViolation",
    "Sign1Message",
    "SignatureError",
    "SignedDocument",
    "SizeLimitError",
    "Substance",
    "decode_cbor",
    "document_from_payload",
    "encode_cbor",
    "key_id",
    "peek_kid",
    "public_key_from_seed",
    "sign1",
    "verify1",
]
