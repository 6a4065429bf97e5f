"""What every document carries: schema version, type, issuer, recipient, time, authority."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final

from permitnet.protocol.cbor import encode_cbor
from permitnet.protocol.doc_fields import MAX_INSTANT, PayloadReader
from permitnet.protocol.errors import DocumentError

__all__ = ["HEADER_KEYS", "SCHEMA_VERSIONS", "DocumentBase"]

#: The schema versions this implementation reads ("v" in every payload).
SCHEMA_VERSIONS: Final = frozenset({1})
#: The keys every document payload has, besides its own.
HEADER_KEYS: Final = frozenset({"v", "type", "issuer", "recipient", "issued_at", "authority"})


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentBase:
    """The fields common to every document.

    Attributes:
        issuer: the issuing country (ISO 3166-1 alpha-2); its key signs the document.
        recipient: the country the document is addressed to (never the issuer).
        issued_at: when it was issued, in Unix seconds UTC.
        authority: the name of the issuing competent national authority.
    """

    #: The value of ``"type"`` in the payload.
    DOCUMENT_TYPE: ClassVar[str] = ""
    #: The document's own payload keys, besides :data:`HEADER_KEYS`.
    FIELDS: ClassVar[frozenset[str]] = frozenset()
    #: The schema version written by :meth:`to_payload`.
    VERSION: ClassVar[int] = 1

    issuer: str
    recipient: str
    issued_at: int
    authority: str

    def header_payload(self) -> dict[str, Any]:
        """Return the common fields as a CBOR-ready map."""
        return {
            "v": self.VERSION,
            "type": self.DOCUMENT_TYPE,
            "issuer": self.issuer,
            "recipient": self.recipient,
            "issued_at": self.issued_at,
            "authority": self.authority,
        }

    def to_payload(self) -> dict[str, Any]:
        """Return the document as a CBOR-ready map."""
        raise NotImplementedError  # pragma: no cover - every document type overrides it

    def to_cbor(self) -> bytes:
        """Return the document's deterministic CBOR payload (what gets signed)."""
        return encode_cbor(self.to_payload())

    @classmethod
    def open_payload(cls, payload: object) -> tuple[PayloadReader, dict[str, Any]]:
        """Check the common fields of ``payload`` for this document type.

        Returns:
            A reader for the document's own fields, and the common fields as keyword
            arguments for the constructor.

        Raises:
            DocumentError: not a map; missing or unknown keys; an unsupported schema version;
                another document type; or an invalid issuer, recipient, time or authority.
        """
        if not isinstance(payload, dict):
            raise DocumentError(f"a document payload is a map, got {type(payload).__name__}")
        version = payload.get("v")
        if (
            isinstance(version, bool)
            or not isinstance(version, int)
            or version not in SCHEMA_VERSIONS
        ):
            raise DocumentError(
                f"v: schema version {version!r} is not supported (supported: "
                f"{', '.join(map(str, sorted(SCHEMA_VERSIONS)))})"
            )
        if payload.get("type") != cls.DOCUMENT_TYPE:
            raise DocumentError(
                f"type: {payload.get('type')!r} where {cls.DOCUMENT_TYPE!r} was expected"
            )
        read = PayloadReader(payload, "", HEADER_KEYS | cls.FIELDS)
        header = {
            "issuer": read.country("issuer"),
            "recipient": read.country("recipient"),
            "issued_at": read.integer("issued_at", minimum=0, maximum=MAX_INSTANT),
            "authority": read.text("authority"),
        }
        if header["issuer"] == header["recipient"]:
            raise DocumentError(
                f"recipient: a document goes to another country, not back to {header['issuer']}"
            )
        return read, header
