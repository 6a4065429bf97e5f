"""Documents about other documents: cancellation, message, delivery receipt.

Each refers to another document by its identifier (SHA-256 of its signed bytes), which is
what links the documents of one transaction into a hash-linked chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from permitnet.protocol.doc_base import DocumentBase
from permitnet.protocol.doc_fields import MAX_INSTANT
from permitnet.protocol.errors import DocumentError

if TYPE_CHECKING:
    from permitnet.protocol.catalogue import Catalogue

__all__ = ["RECEIPT_STATUSES", "Cancellation", "DeliveryReceipt", "Message"]

#: The statuses of a delivery receipt.
RECEIPT_STATUSES: Final = ("accepted", "rejected")


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancellation(DocumentBase):
    """The cancellation of a document by the country that issued it.

    Attributes:
        document: the identifier of the cancelled document.
        reason: why it is cancelled.
    """

    DOCUMENT_TYPE: ClassVar[str] = "cancellation"
    FIELDS: ClassVar[frozenset[str]] = frozenset({"document", "reason"})

    document: bytes
    reason: str

    def to_payload(self) -> dict[str, Any]:
        """Return the cancellation as a CBOR-ready map."""
        return self.header_payload() | {"document": self.document, "reason": self.reason}

    @classmethod
    def from_payload(cls, payload: object, *, catalogue: Catalogue | None = None) -> Cancellation:
        """Build a cancellation from a decoded payload, checking every field.

        Raises:
            DocumentError: a missing, unknown or invalid field.
        """
        del catalogue
        read, header = cls.open_payload(payload)
        return cls(
            **header,
            document=read.required_id("document"),
            reason=read.text("reason", max_length=2000, multiline=True),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Message(DocumentBase):
    """A message from one competent authority to another about a document.

    Attributes:
        about: the identifier of the document the message is about.
        in_reply_to: the identifier of the message this one answers, or ``None``.
        text: the message.
    """

    DOCUMENT_TYPE: ClassVar[str] = "message"
    FIELDS: ClassVar[frozenset[str]] = frozenset({"about", "in_reply_to", "text"})

    about: bytes
    in_reply_to: bytes | None
    text: str

    def to_payload(self) -> dict[str, Any]:
        """Return the message as a CBOR-ready map."""
        return self.header_payload() | {
            "about": self.about,
            "in_reply_to": self.in_reply_to,
            "text": self.text,
        }

    @classmethod
    def from_payload(cls, payload: object, *, catalogue: Catalogue | None = None) -> Message:
        """Build a message from a decoded payload, checking every field.

        Raises:
            DocumentError: a missing, unknown or invalid field.
        """
        del catalogue
        read, header = cls.open_payload(payload)
        return cls(
            **header,
            about=read.required_id("about"),
            in_reply_to=read.document_id("in_reply_to", optional=True),
            text=read.text("text", max_length=10_000, multiline=True),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryReceipt(DocumentBase):
    """A node's signed acknowledgement that it received a document, and its verdict.

    Attributes:
        document: the identifier of the document received.
        status: ``"accepted"`` or ``"rejected"``.
        reason: why it was rejected (required then); empty when accepted.
        received_at: when it was received, in Unix seconds UTC.
    """

    DOCUMENT_TYPE: ClassVar[str] = "delivery_receipt"
    FIELDS: ClassVar[frozenset[str]] = frozenset({"document", "status", "reason", "received_at"})

    document: bytes
    status: str
    reason: str
    received_at: int

    def to_payload(self) -> dict[str, Any]:
        """Return the receipt as a CBOR-ready map."""
        return self.header_payload() | {
            "document": self.document,
            "status": self.status,
            "reason": self.reason,
            "received_at": self.received_at,
        }

    @classmethod
    def from_payload(
        cls, payload: object, *, catalogue: Catalogue | None = None
    ) -> DeliveryReceipt:
        """Build a delivery receipt from a decoded payload, checking every field.

        Raises:
            DocumentError: a missing, unknown or invalid field; a rejection without a
                reason; an acceptance with one.
        """
        del catalogue
        read, header = cls.open_payload(payload)
        document = cls(
            **header,
            document=read.required_id("document"),
            status=read.choice("status", RECEIPT_STATUSES),
            reason=read.text("reason", max_length=2000, multiline=True, empty=True),
            received_at=read.integer("received_at", minimum=0, maximum=MAX_INSTANT),
        )
        if document.status == "rejected" and not document.reason.strip():
            raise DocumentError("reason: a rejection must say why")
        if document.status == "accepted" and document.reason:
            raise DocumentError("reason: an acceptance carries no reason (empty text)")
        return document
