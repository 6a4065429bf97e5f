"""The receipt signer's direct path gives the same bytes as the fully checked one."""

from __future__ import annotations

import hashlib

import pytest

from permitnet.node.exchange_checks import ReceiptSigner
from permitnet.node.keystore import SigningKey
from permitnet.protocol.doc_examples import example_seed
from permitnet.protocol.documents import DeliveryReceipt
from permitnet.protocol.errors import DocumentError
from permitnet.protocol.signed import SignedDocument

KEY = SigningKey.from_seed(example_seed("FR"))
NOW = 1_800_000_000


def _full(doc_id: bytes, *, status: str, reason: str, counterpart: str, now: int) -> bytes:
    receipt = DeliveryReceipt(
        issuer="FR",
        recipient=counterpart,
        issued_at=now,
        authority="Authority FR",
        document=doc_id,
        status=status,
        reason=reason,
        received_at=now,
    )
    return SignedDocument.sign(receipt, signing_key=KEY.seed, kid=KEY.kid).raw


@pytest.mark.parametrize(
    ("status", "reason", "counterpart", "now"),
    [
        ("accepted", "", "DE", NOW),
        ("accepted", "", "DE", NOW + 1),
        ("accepted", "", "IN", NOW + 1),
        ("rejected", "RuleViolation: expired", "DE", NOW + 1),
    ],
)
def test_every_receipt_equals_the_checked_one(
    status: str, reason: str, counterpart: str, now: int
) -> None:
    signer = ReceiptSigner(country="FR", authority="Authority FR", key=KEY)
    for i in range(4):  # the first takes the full path, the others the direct one
        doc_id = hashlib.sha256(str(i).encode()).digest()
        got = signer.sign(doc_id, status=status, reason=reason, counterpart=counterpart, now=now)
        assert got == _full(doc_id, status=status, reason=reason, counterpart=counterpart, now=now)


@pytest.mark.parametrize(
    ("doc_id", "status", "reason", "counterpart"),
    [
        pytest.param(b"\x01" * 31, "accepted", "", "DE", id="short-id"),
        pytest.param(b"\x01" * 32, "rejected", "", "DE", id="rejection-without-reason"),
        pytest.param(b"\x01" * 32, "accepted", "", "XX", id="unknown-counterpart"),
        pytest.param(b"\x01" * 32, "accepted", "", "de", id="lower-case-counterpart"),
    ],
)
def test_invalid_receipts_are_refused_even_after_a_valid_one(
    doc_id: bytes, status: str, reason: str, counterpart: str
) -> None:
    signer = ReceiptSigner(country="FR", authority="Authority FR", key=KEY)
    signer.sign(b"\x00" * 32, status="accepted", reason="", counterpart="DE", now=NOW)
    with pytest.raises(DocumentError):
        signer.sign(doc_id, status=status, reason=reason, counterpart=counterpart, now=NOW)


def test_one_signer_across_counterparts_and_seconds() -> None:
    signer = ReceiptSigner(country="FR", authority="Authority FR", key=KEY)
    calls = [("DE", NOW), ("IN", NOW), ("DE", NOW), ("DE", NOW + 1), ("IN", NOW), ("IN", NOW + 1)]
    for i, (counterpart, now) in enumerate(calls * 2):
        doc_id = hashlib.sha256(str(i).encode()).digest()
        got = signer.sign(doc_id, status="accepted", reason="", counterpart=counterpart, now=now)
        assert got == _full(doc_id, status="accepted", reason="", counterpart=counterpart, now=now)
