"""Batch framing and per-document results of the node-to-node exchange."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from permitnet.node.peer_wire import (
    MAX_BATCH,
    MAX_DOCUMENT_SIZE,
    DocumentResult,
    PeerWireError,
    decode_byte_strings,
    decode_results,
    encode_byte_strings,
    encode_results,
)
from permitnet.protocol.cbor import encode_cbor
from permitnet.protocol.signed import document_id

LIMIT = 1024 * 1024


@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=40))
def test_batch_round_trip_keeps_exact_bytes(items: list[bytes]) -> None:
    assert decode_byte_strings(encode_byte_strings(items), max_size=LIMIT) == items


BAD_BATCHES: list[tuple[str, bytes, int, str]] = [
    ("not cbor", b"\xff\x00", 400, "strict CBOR"),
    ("a map", encode_cbor({"a": 1}), 400, "array of byte strings"),
    ("array of text", encode_cbor(["x"]), 400, "array of byte strings"),
    ("empty", encode_cbor([]), 400, "1 to"),
    ("too many", encode_cbor([b"x"] * (MAX_BATCH + 1)), 400, "1 to"),
    ("nested", encode_cbor([[b"x"]]), 400, "strict CBOR|array of byte strings"),
    ("oversized item", encode_cbor([b"x" * (MAX_DOCUMENT_SIZE + 1)]), 413, "over"),
    ("oversized body", encode_cbor([b"x" * 2000]), 413, "too large"),
]


@pytest.mark.parametrize(
    ("body", "status", "match"), [pytest.param(*c[1:], id=c[0]) for c in BAD_BATCHES]
)
def test_bad_batches_are_refused(body: bytes, status: int, match: str) -> None:
    # The oversized-body case runs against a small limit; the others against the usual one.
    limit = 1024 if match == "too large" else LIMIT
    with pytest.raises(PeerWireError, match=match) as info:
        decode_byte_strings(body, max_size=limit)
    assert info.value.status_hint == status


def _result(raw: bytes, outcome: str = "accepted") -> DocumentResult:
    return DocumentResult(
        document_id=document_id(raw),
        outcome=outcome,  # type: ignore[arg-type]  # tests pass outcomes from tables
        reason="" if outcome in {"accepted", "duplicate"} else "why",
        receipt=b"receipt-" + raw,
    )


def test_results_round_trip_and_delivered_flag() -> None:
    raws = [b"a", b"b", b"c", b"d"]
    results = [
        _result(r, o)
        for r, o in zip(raws, ["accepted", "duplicate", "pending", "rejected"], strict=True)
    ]
    decoded = decode_results(
        encode_results(results), expected=[document_id(r) for r in raws], max_size=LIMIT
    )
    assert decoded == results
    assert [r.delivered for r in decoded] == [True, True, False, False]


BAD_RESULTS: list[tuple[str, bytes, str]] = [
    ("not a map", encode_cbor([1]), "map with v and results"),
    ("other version", encode_cbor({"v": 2, "results": []}), "version"),
    (
        "wrong order",
        encode_results([_result(b"b"), _result(b"a")]),
        "in order",
    ),
    ("missing one", encode_results([_result(b"a")]), "in order"),
    (
        "unknown outcome",
        encode_cbor(
            {
                "v": 1,
                "results": [
                    {"id": document_id(b"a"), "outcome": "lost", "reason": "", "receipt": b""}
                ],
            }
        ),
        "unknown outcome",
    ),
    (
        "id of wrong type",
        encode_cbor(
            {"v": 1, "results": [{"id": "x", "outcome": "", "reason": "", "receipt": b""}]}
        ),
        "byte strings",
    ),
    ("garbage", b"\x00\x01", "strict CBOR"),
]


@pytest.mark.parametrize(("body", "match"), [pytest.param(*c[1:], id=c[0]) for c in BAD_RESULTS])
def test_bad_answers_are_refused(body: bytes, match: str) -> None:
    with pytest.raises(PeerWireError, match=match):
        decode_results(body, expected=[document_id(b"a"), document_id(b"b")], max_size=LIMIT)


def test_result_refuses_bad_id_and_outcome() -> None:
    with pytest.raises(PeerWireError, match="32 bytes"):
        DocumentResult(document_id=b"x", outcome="accepted", reason="", receipt=b"")
    with pytest.raises(PeerWireError, match="unknown outcome"):
        DocumentResult(document_id=bytes(32), outcome="lost", reason="", receipt=b"")  # type: ignore[arg-type]  # the point of the test
