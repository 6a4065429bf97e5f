"""RFC 9162 Merkle tree hashing with inclusion and consistency proofs.

The registry's transparency log is an append-only list of records; its head (size and root)
goes into every signed snapshot. The hashing is exactly RFC 9162 section 2.1:

* the hash of the empty tree is SHA-256 of the empty string;
* a leaf hash is ``SHA-256(0x00 || data)``;
* an interior node hash is ``SHA-256(0x01 || left || right)``, where the left subtree holds
  the largest power of two of leaves smaller than the tree size.

:class:`CompactRange` keeps only the roots of the perfect subtrees along the right edge
(at most log2(n) hashes), so a client can extend its last accepted head with new leaves and
recompute the root without holding the whole log: a log that verifies this way is by
construction a consistent extension of the head it started from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from permitnet.protocol.errors import RegistryError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "CompactRange",
    "LogHead",
    "MerkleProofError",
    "SubtreeMemo",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
#: The root of the empty tree: SHA-256 of the empty string (RFC 9162 section 2.1.1).
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()


class MerkleProofError(RegistryError):
    """An inclusion or consistency proof that does not verify, or a malformed one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogHead:
    """A log head: how many leaves the log holds and the root over them."""

    size: int
    root: bytes

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise MerkleProofError(f"log size must be a non-negative integer, got {self.size!r}")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise MerkleProofError("a log root is 32 bytes")


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Return the largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash over already computed leaf hashes."""
    if not leaf_hashes:
        return EMPTY_ROOT
    compact = CompactRange()
    for leaf in leaf_hashes:
        compact.append_hash(leaf)
    return compact.root()


class CompactRange:
    """The right-edge subtree roots of a log: enough to append leaves and compute roots."""

    __slots__ = ("_size", "_stack")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Start from a log of ``size`` leaves summarised by its right-edge subtree roots.

        Raises:
            MerkleProofError: ``hashes`` does not have one hash per set bit of ``size``.
        """
        if size < 0 or len(hashes) != (size).bit_count():
            raise MerkleProofError(
                f"a compact range of size {size} needs {max(size, 0).bit_count()} hashes, "
                f"got {len(hashes)}"
            )
        if any(not isinstance(h, bytes) or len(h) != HASH_SIZE for h in hashes):
            raise MerkleProofError("compact range hashes are 32 bytes each")
        self._size = size
        # Each stack item is (number of leaves, subtree root), largest subtree first.
        self._stack: list[tuple[int, bytes]] = []
        remaining = size
        for h in hashes:
            width = 1 << (remaining.bit_length() - 1)
            self._stack.append((width, h))
            remaining -= width

    @property
    def size(self) -> int:
        """How many leaves the range covers."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The right-edge subtree roots, largest subtree first (for storage)."""
        return tuple(h for _, h in self._stack)

    def append(self, data: bytes) -> None:
        """Append one leaf's data."""
        self.append_hash(leaf_hash(data))

    def append_hash(self, leaf: bytes) -> None:
        """Append one leaf by its leaf hash."""
        width, current = 1, leaf
        while self._stack and self._stack[-1][0] == width:
            _, left = self._stack.pop()
            current = node_hash(left, current)
            width *= 2
        self._stack.append((width, current))
        self._size += 1

    def root(self) -> bytes:
        """Return the Merkle tree hash of the leaves so far."""
        if not self._stack:
            return EMPTY_ROOT
        current = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            current = node_hash(left, current)
        return current

    def head(self) -> LogHead:
        """Return the log head (size and root)."""
        return LogHead(size=self._size, root=self.root())


#: A memo of subtree roots, keyed by (start, end) leaf index. Valid only for one append-only
#: log: the root of leaves [start, end) never changes once they exist.
SubtreeMemo = dict[tuple[int, int], bytes]
#: Only subtrees of at least this many leaves are memoized (bounds the memo to ~n/8 entries).
_MEMO_MIN_LEAVES: Final = 16


def _subtree_root(
    leaves: Sequence[bytes], start: int, end: int, memo: SubtreeMemo | None = None
) -> bytes:
    n = end - start
    if n == 1:
        return leaves[start]
    # Complete subtrees (a power of two of leaves) are the ones every later proof asks for
    # again; an incomplete right edge changes as the log grows and is recomputed.
    if memo is not None and n >= _MEMO_MIN_LEAVES and n & (n - 1) == 0:
        root = memo.get((start, end))
        if root is None:
            half = start + n // 2
            root = node_hash(
                _subtree_root(leaves, start, half, memo), _subtree_root(leaves, half, end, memo)
            )
            memo[(start, end)] = root
        return root
    k = _split(n)
    return node_hash(
        _subtree_root(leaves, start, start + k, memo), _subtree_root(leaves, start + k, end, memo)
    )


def inclusion_proof(
    index: int, leaf_hashes: Sequence[bytes], *, memo: SubtreeMemo | None = None
) -> list[bytes]:
    """Return the RFC 9162 audit path for leaf ``index`` in the tree over ``leaf_hashes``.

    ``memo``, kept by the caller for one append-only log (whose ``leaf_hashes`` only ever
    grow), makes repeated proofs cost about log n hashes instead of n.

    Raises:
        MerkleProofError: ``index`` is not a leaf of the tree.
    """
    size = len(leaf_hashes)
    if not 0 <= index < size:
        raise MerkleProofError(f"leaf index {index} is outside a log of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(_subtree_root(leaf_hashes, start + k, end, memo))
            end = start + k
        else:
            path.append(_subtree_root(leaf_hashes, start, start + k, memo))
            start += k
    path.reverse()
    return path


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that the leaf hash ``leaf`` is at ``index`` in the log of ``size`` with ``root``.

    This is the algorithm of RFC 9162 section 2.1.3.2.

    Raises:
        MerkleProofError: the proof is malformed or does not lead to ``root``.
    """
    if not 0 <= index < size:
        raise MerkleProofError(f"leaf index {index} is outside a log of size {size}")
    fn, sn = index, size - 1
    current = leaf
    for p in proof:
        if not isinstance(p, bytes) or len(p) != HASH_SIZE:
            raise MerkleProofError("proof hashes are 32 bytes each")
        if sn == 0:
            raise MerkleProofError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            current = node_hash(p, current)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            current = node_hash(current, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleProofError("the inclusion proof is shorter than the tree is deep")
    if current != root:
        raise MerkleProofError(f"leaf {index} is not included in the log of size {size}")


def consistency_proof(
    old_size: int, leaf_hashes: Sequence[bytes], *, memo: SubtreeMemo | None = None
) -> list[bytes]:
    """Return the RFC 9162 consistency proof from ``old_size`` to ``len(leaf_hashes)``.

    ``memo`` is as for :func:`inclusion_proof`.

    Raises:
        MerkleProofError: ``old_size`` is not between 0 and the tree size.
    """
    size = len(leaf_hashes)
    if not 0 <= old_size <= size:
        raise MerkleProofError(f"cannot prove size {old_size} against a log of size {size}")
    if old_size in (0, size):
        return []
    return _subproof(old_size, leaf_hashes, 0, size, complete=True, memo=memo)


def _subproof(
    m: int,
    leaves: Sequence[bytes],
    start: int,
    end: int,
    *,
    complete: bool,
    memo: SubtreeMemo | None,
) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if complete else [_subtree_root(leaves, start, end, memo)]
    k = _split(n)
    if m <= k:
        proof = _subproof(m, leaves, start, start + k, complete=complete, memo=memo)
        proof.append(_subtree_root(leaves, start + k, end, memo))
        return proof
    proof = _subproof(m - k, leaves, start + k, end, complete=False, memo=memo)
    proof.append(_subtree_root(leaves, start, start + k, memo))
    return proof


def verify_consistency(old: LogHead, new: LogHead, proof: Sequence[bytes]) -> None:
    """Check that the log at ``new`` is an append-only extension of the log at ``old``.

    This is the algorithm of RFC 9162 section 2.1.4.2.

    Raises:
        MerkleProofError: the proof is malformed or the logs are not consistent (the log was
            rewritten or forked).
    """
    if old.size > new.size:
        raise MerkleProofError(f"log shrank from size {old.size} to {new.size}")
    if any(not isinstance(p, bytes) or len(p) != HASH_SIZE for p in proof):
        raise MerkleProofError("proof hashes are 32 bytes each")
    if old.size == new.size:
        if proof:
            raise MerkleProofError("a proof between equal sizes must be empty")
        if old.root != new.root:
            raise MerkleProofError(f"two different roots for the same log size {old.size}")
        return
    if old.size == 0:
        if proof:
            raise MerkleProofError("a proof from the empty log must be empty")
        return
    if not proof:
        raise MerkleProofError("the consistency proof is empty")
    fr, sr = _walk_consistency(old, new, list(proof))
    if fr != old.root:
        raise MerkleProofError(
            f"the log of size {new.size} does not extend the accepted head of size {old.size}"
        )
    if sr != new.root:
        raise MerkleProofError(
            f"the consistency proof does not lead to the root of size {new.size}"
        )


def _walk_consistency(old: LogHead, new: LogHead, path: list[bytes]) -> tuple[bytes, bytes]:
    """Run RFC 9162 section 2.1.4.2 and return the recomputed old and new roots."""
    if old.size & (old.size - 1) == 0:  # old size is a power of two: its root starts the path
        path.insert(0, old.root)
    fn, sn = old.size - 1, new.size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise MerkleProofError("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleProofError("the consistency proof is shorter than the tree is deep")
    return fr, sr
