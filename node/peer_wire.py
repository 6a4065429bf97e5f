"""The bodies nodes exchange: batches of signed documents, per-document results, receipts.

Every body is deterministic CBOR (``application/cbor``). A batch is an array of byte strings,
each the exact signed COSE_Sign1 bytes of one document, so that framing never re-encodes a
document: the receiver hashes and verifies exactly what the issuer signed. The answer to a
batch is a map holding one result per document, in the order sent. See ``docs/exchange.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, get_args

from permitnet.node.errors import ValidationError
from permitnet.protocol import signed
from permitnet.protocol.cbor import decode_cbor, encode_cbor
from permitnet.protocol.errors import ProtocolError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "CBOR_MEDIA_TYPE",
    "MAX_BATCH",
    "MAX_DOCUMENT_SIZE",
    "PATH_DOCUMENTS",
    "PATH_OUTBOX",
    "PATH_RECEIPTS",
    "WIRE_VERSION",
    "DocumentResult",
    "Outcome",
    "PeerWireError",
    "decode_byte_strings",
    "decode_results",
    "encode_byte_strings",
    "encode_results",
]

CBOR_MEDIA_TYPE: Final = "application/cbor"
#: Push: POST a batch of documents addressed to the receiving node's country.
PATH_DOCUMENTS: Final = "/peer/v1/documents"
#: Pull: GET the documents a node holds for the caller's country (``?for=XX``).
PATH_OUTBOX: Final = "/peer/v1/outbox"
#: Pull: POST the receipts for pulled documents, so that the holder stops offering them.
PATH_RECEIPTS: Final = "/peer/v1/receipts"
#: Version marker of result and outbox maps.
WIRE_VERSION: Final = 1
#: Most documents in one batch.
MAX_BATCH: Final = 500
#: Largest single signed document accepted: the protocol's own limit (a document is ~1.5 KB).
MAX_DOCUMENT_SIZE: Final = signed.MAX_DOCUMENT_SIZE

#: What the receiver did with a document: ``accepted`` (verified and stored now), ``duplicate``
#: (already held: nothing changed), ``pending`` (stored durably, waiting for a document it refers
#: to or for fresh registry data), ``rejected`` (failed a check; kept in quarantine, not accepted).
Outcome = Literal["accepted", "duplicate", "pending", "rejected"]
_OUTCOMES: Final = frozenset(get_args(Outcome))


class PeerWireError(ValidationError):
    """A node-to-node body that is not the CBOR structure the exchange protocol defines."""

    code = "bad_peer_body"


def encode_byte_strings(items: Sequence[bytes]) -> bytes:
    """Frame signed documents (or receipts) as a CBOR array of byte strings.

    Raises:
        PeerWireError: the batch is empty or holds more than :data:`MAX_BATCH` items.
    """
    if not items or len(items) > MAX_BATCH:
        raise PeerWireError(f"a batch holds 1 to {MAX_BATCH} items, not {len(items)}")
    return encode_cbor(list(items))


def decode_byte_strings(body: bytes, *, max_size: int) -> list[bytes]:
    """Unframe a CBOR array of byte strings without decoding the strings themselves.

    Args:
        body: the request or response body.
        max_size: the largest body accepted.

    Raises:
        PeerWireError: the body is not such an array, is empty, or holds too many items or an
            item over :data:`MAX_DOCUMENT_SIZE`; ``status_hint`` is 413 when too large.
    """
    if len(body) > max_size:
        error = PeerWireError(f"body too large: {len(body)} bytes, over {max_size}")
        error.status_hint = 413
        raise error
    try:
        items = decode_cbor(body, max_size=max_size, max_depth=1)
    except ProtocolError as e:
        raise PeerWireError(f"body is not strict CBOR: {e}") from e
    if not isinstance(items, list) or not all(isinstance(i, bytes) for i in items):
        raise PeerWireError("body must be a CBOR array of byte strings")
    if not items or len(items) > MAX_BATCH:
        raise PeerWireError(f"a batch holds 1 to {MAX_BATCH} items, not {len(items)}")
    for index, item in enumerate(items):
        if len(item) > MAX_DOCUMENT_SIZE:
            error = PeerWireError(f"item {index} is {len(item)} bytes, over {MAX_DOCUMENT_SIZE}")
            error.status_hint = 413
            raise error
    return items


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentResult:
    """The receiver's answer for one document of a batch.

    Attributes:
        document_id: SHA-256 of the document's signed bytes (32 bytes).
        outcome: what the receiver did with it.
        reason: why, for ``pending`` and ``rejected``; empty otherwise.
        receipt: the receiver's signed delivery receipt (COSE_Sign1 bytes): status ``accepted``
            for ``accepted`` and ``duplicate``, ``rejected`` for ``rejected``; empty for
            ``pending``, which the sender offers again later until it gets a verdict.
    """

    document_id: bytes
    outcome: Outcome
    reason: str
    receipt: bytes

    def __post_init__(self) -> None:
        if len(self.document_id) != 32:
            raise PeerWireError("a document id is 32 bytes of SHA-256")
        if self.outcome not in _OUTCOMES:
            raise PeerWireError(f"unknown outcome {self.outcome!r}")

    @property
    def delivered(self) -> bool:
        """Whether the receiver has accepted the document, so the sender may stop sending it."""
        return self.outcome in {"accepted", "duplicate"}

    def to_payload(self) -> dict[str, object]:
        """Return the result as a CBOR-ready map."""
        return {
            "id": self.document_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "receipt": self.receipt,
        }

    @classmethod
    def from_payload(cls, item: object) -> DocumentResult:
        """Read one result map.

        Raises:
            PeerWireError: the map's keys or types are wrong.
        """
        if not isinstance(item, dict) or set(item) != {"id", "outcome", "reason", "receipt"}:
            raise PeerWireError("a result is a map with id, outcome, reason and receipt")
        doc_id, outcome, reason, receipt = (
            item["id"],
            item["outcome"],
            item["reason"],
            item["receipt"],
        )
        if not isinstance(doc_id, bytes) or not isinstance(receipt, bytes):
            raise PeerWireError("id and receipt must be byte strings")
        if not isinstance(outcome, str) or not isinstance(reason, str):
            raise PeerWireError("outcome and reason must be text")
        if outcome not in _OUTCOMES:
            raise PeerWireError(f"unknown outcome {outcome!r}")
        return cls(document_id=doc_id, outcome=outcome, reason=reason, receipt=receipt)  # type: ignore[arg-type]  # outcome checked against _OUTCOMES just above


def encode_results(results: Sequence[DocumentResult]) -> bytes:
    """Encode the answer to a batch."""
    return encode_cbor({"v": WIRE_VERSION, "results": [r.to_payload() for r in results]})


def decode_results(
    body: bytes, *, expected: Sequence[bytes], max_size: int
) -> list[DocumentResult]:
    """Decode the answer to a batch and check it answers exactly the documents sent, in order.

    Args:
        body: the response body.
        expected: the ids of the documents sent, in order.
        max_size: the largest body accepted.

    Raises:
        PeerWireError: the body is malformed or does not answer the batch that was sent.
    """
    try:
        item = decode_cbor(body, max_size=max_size, max_depth=3)
    except ProtocolError as e:
        raise PeerWireError(f"answer is not strict CBOR: {e}") from e
    if not isinstance(item, dict) or set(item) != {"v", "results"}:
        raise PeerWireError("the answer is a map with v and results")
    if item["v"] != WIRE_VERSION or isinstance(item["v"], bool):
        raise PeerWireError(f"answer version {item['v']!r} is not supported")
    if not isinstance(item["results"], list):
        raise PeerWireError("results must be an array")
    results = [DocumentResult.from_payload(r) for r in item["results"]]
    if [r.document_id for r in results] != list(expected):
        raise PeerWireError("the answer does not list the documents sent, in order")
    return results
