"""The permitnet wire format and rules: deterministic CBOR, COSE_Sign1, documents, Convention rules.

Pure and sans-I/O: bytes and a clock value go in; typed documents or exceptions come out.
"""

from permitnet.protocol.cbor import decode_cbor, encode_cbor
from permitnet.protocol.cose import Sign1Message, key_id, public_key_from_seed, sign1, verify1
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

__all__ = [
    "DecodeError",
    "DocumentError",
    "EncodeError",
    "InvalidSignatureError",
    "ProtocolError",
    "RegistryError",
    "RuleViolation",
    "Sign1Message",
    "SignatureError",
    "SizeLimitError",
    "decode_cbor",
    "encode_cbor",
    "key_id",
    "public_key_from_seed",
    "sign1",
    "verify1",
]
