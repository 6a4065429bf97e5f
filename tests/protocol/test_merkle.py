"""RFC 9162 Merkle hashing: a naive reference, known vectors, proofs and tampering."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from permitnet.protocol.merkle import (
    EMPTY_ROOT,
    CompactRange,
    LogHead,
    MerkleProofError,
    SubtreeMemo,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

if TYPE_CHECKING:
    from collections.abc import Callable


def reference_root(data: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1, written straight from the definition."""
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + reference_root(data[:k]) + reference_root(data[k:])).digest()


def leaves(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_hash([]) == EMPTY_ROOT


def test_known_vector_from_certificate_transparency() -> None:
    # The 8-leaf test tree of the Certificate Transparency reference implementation
    # (google/certificate-transparency, merkle_tree_test.cc, kSHA256Roots[7]).
    data = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ]
    root = root_hash([leaf_hash(d) for d in data])
    assert root.hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


@given(st.lists(st.binary(max_size=8), max_size=70))
def test_root_matches_reference(data: list[bytes]) -> None:
    assert root_hash([leaf_hash(d) for d in data]) == reference_root(data)


@given(st.integers(min_value=0, max_value=70), st.integers(min_value=0, max_value=70))
def test_compact_range_extends_a_stored_head(first: int, extra: int) -> None:
    data = leaves(first + extra)
    compact = CompactRange()
    for d in data[:first]:
        compact.append(d)
    restored = CompactRange(compact.size, compact.hashes)
    assert restored.root() == reference_root(data[:first])
    for d in data[first:]:
        restored.append(d)
    assert restored.head() == LogHead(size=first + extra, root=reference_root(data))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33])
def test_every_inclusion_proof_verifies(size: int) -> None:
    hashes = [leaf_hash(d) for d in leaves(size)]
    root = root_hash(hashes)
    for index in range(size):
        proof = inclusion_proof(index, hashes)
        verify_inclusion(hashes[index], index, size, proof, root)


@pytest.mark.parametrize("size", [2, 3, 4, 5, 7, 8, 9, 16, 17, 33])
def test_every_consistency_proof_verifies(size: int) -> None:
    hashes = [leaf_hash(d) for d in leaves(size)]
    new = LogHead(size=size, root=root_hash(hashes))
    for old_size in range(size + 1):
        old = LogHead(size=old_size, root=root_hash(hashes[:old_size]))
        verify_consistency(old, new, consistency_proof(old_size, hashes))


def _flip(b: bytes) -> bytes:
    return bytes([b[0] ^ 1]) + b[1:]


Args = tuple[bytes, int, int, list[bytes], bytes]
INCLUSION_ATTACKS: dict[str, Callable[..., Args]] = {
    "wrong leaf": lambda leaf, idx, size, proof, root: (_flip(leaf), idx, size, proof, root),
    "wrong index": lambda leaf, idx, size, proof, root: (leaf, idx + 1, size, proof, root),
    "index past the end": lambda leaf, idx, size, proof, root: (leaf, size, size, proof, root),
    "tampered path": lambda leaf, idx, size, proof, root: (
        leaf,
        idx,
        size,
        [_flip(proof[0]), *proof[1:]],
        root,
    ),
    "path too short": lambda leaf, idx, size, proof, root: (leaf, idx, size, proof[:-1], root),
    "path too long": lambda leaf, idx, size, proof, root: (leaf, idx, size, [*proof, root], root),
    "short hash": lambda leaf, idx, size, proof, root: (leaf, idx, size, [proof[0][:5]], root),
    "wrong root": lambda leaf, idx, size, proof, root: (leaf, idx, size, proof, _flip(root)),
}


@pytest.mark.parametrize("attack", sorted(INCLUSION_ATTACKS))
def test_bad_inclusion_proofs_are_refused(attack: str) -> None:
    hashes = [leaf_hash(d) for d in leaves(11)]
    args = (hashes[4], 4, 11, inclusion_proof(4, hashes), root_hash(hashes))
    with pytest.raises(MerkleProofError):
        verify_inclusion(*INCLUSION_ATTACKS[attack](*args))


def test_rewritten_log_fails_consistency() -> None:
    hashes = [leaf_hash(d) for d in leaves(13)]
    old = LogHead(size=6, root=root_hash(hashes[:6]))
    forked = list(hashes)
    forked[2] = leaf_hash(b"rewritten history")
    new = LogHead(size=13, root=root_hash(forked))
    with pytest.raises(MerkleProofError, match="does not extend"):
        verify_consistency(old, new, consistency_proof(6, forked))


CONSISTENCY_ATTACKS = {
    "shrinking log": (LogHead(size=8, root=b"\x00" * 32), LogHead(size=4, root=b"\x00" * 32), []),
    "equal size different root": (
        LogHead(size=4, root=b"\x00" * 32),
        LogHead(size=4, root=b"\x01" * 32),
        [],
    ),
    "empty proof": (LogHead(size=3, root=b"\x00" * 32), LogHead(size=5, root=b"\x01" * 32), []),
    "junk proof": (
        LogHead(size=3, root=b"\x00" * 32),
        LogHead(size=5, root=b"\x01" * 32),
        [b"\x02" * 32] * 3,
    ),
    "short hash in proof": (
        LogHead(size=3, root=b"\x00" * 32),
        LogHead(size=5, root=b"\x01" * 32),
        [b"\x02"],
    ),
}


@pytest.mark.parametrize("attack", sorted(CONSISTENCY_ATTACKS))
def test_bad_consistency_proofs_are_refused(attack: str) -> None:
    old, new, proof = CONSISTENCY_ATTACKS[attack]
    with pytest.raises(MerkleProofError):
        verify_consistency(old, new, proof)


def test_bad_heads_and_ranges_are_refused() -> None:
    with pytest.raises(MerkleProofError):
        LogHead(size=-1, root=EMPTY_ROOT)
    with pytest.raises(MerkleProofError):
        LogHead(size=1, root=b"short")
    with pytest.raises(MerkleProofError):
        CompactRange(3, [EMPTY_ROOT])
    with pytest.raises(MerkleProofError):
        inclusion_proof(3, [EMPTY_ROOT])
    with pytest.raises(MerkleProofError):
        consistency_proof(2, [EMPTY_ROOT])


def test_memoized_proofs_equal_plain_proofs_as_the_log_grows() -> None:
    # One memo serves one append-only log across every size it grows through.
    memo: SubtreeMemo = {}
    leaves: list[bytes] = []
    for size in range(1, 140):
        leaves.append(leaf_hash(size.to_bytes(2, "big")))
        for index in {0, size // 3, size - 1}:
            assert inclusion_proof(index, leaves, memo=memo) == inclusion_proof(index, leaves)
        for old in {0, 1, size // 2, size - 1, size}:
            assert consistency_proof(old, leaves, memo=memo) == consistency_proof(old, leaves)
    assert memo  # complete subtrees of 16 leaves and more were remembered
