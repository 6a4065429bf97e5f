"""Inclusion and consistency proofs over the published log, served as CBOR."""

from __future__ import annotations

from typing import TYPE_CHECKING

from permitnet.protocol.cbor import encode_cbor
from permitnet.protocol.merkle import (
    SubtreeMemo,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
)
from permitnet.registry.errors import NotFoundError, OperationError

if TYPE_CHECKING:
    from permitnet.registry.service import Registry

__all__ = ["ProofCache"]


class ProofCache:
    """The leaf hashes of the log, extended as it grows; only published sizes are proven."""

    def __init__(self) -> None:
        self._leaves: list[bytes] = []
        # Roots of complete subtrees, which never change in the append-only log: each proof
        # then hashes about log n nodes instead of the whole log.
        self._memo: SubtreeMemo = {}

    def _published(self, registry: Registry) -> int:
        latest = registry.store.latest_version()
        if latest is None:
            raise NotFoundError("nothing published yet")
        size, _ = registry.store.publication_head(latest)
        if len(self._leaves) < size:
            records = registry.store.records_from(len(self._leaves), size)
            self._leaves.extend(leaf_hash(r) for r in records)
        return size

    def _first(self, size: int) -> list[bytes]:
        # Most proofs are against the latest published size, the whole list: copying it
        # (O(n), under the registry lock) would undo what the memo saves.
        return self._leaves if size == len(self._leaves) else self._leaves[:size]

    def inclusion(self, registry: Registry, index: int, size: int) -> bytes:
        """Return ``{index, size, leaf, path}``: leaf ``index`` in the log of ``size``.

        Raises:
            NotFoundError: ``size`` exceeds the published log.
            OperationError: ``index`` is not below ``size``.
        """
        published = self._published(registry)
        if size > published:
            raise NotFoundError(f"log size {size} is beyond the published {published}")
        if not 0 <= index < size:
            raise OperationError(f"leaf index {index} is not in a log of size {size}")
        leaf = registry.store.record(index)
        path = inclusion_proof(index, self._first(size), memo=self._memo)
        return encode_cbor({"index": index, "size": size, "leaf": leaf, "path": path})

    def consistency(self, registry: Registry, first: int, second: int) -> bytes:
        """Return ``{first, second, path}``: the RFC 9162 proof between two log sizes.

        Raises:
            NotFoundError: ``second`` exceeds the published log.
            OperationError: ``first`` is greater than ``second``.
        """
        published = self._published(registry)
        if second > published:
            raise NotFoundError(f"log size {second} is beyond the published {published}")
        if first > second:
            raise OperationError(f"first size {first} is greater than second size {second}")
        path = consistency_proof(first, self._first(second), memo=self._memo)
        return encode_cbor({"first": first, "second": second, "path": path})
