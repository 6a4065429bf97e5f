"""The registry client's state machine, sans-I/O, in the spirit of python-tuf's TrustedMetadataSet.

A node holds one :class:`TrustedRegistry`. It starts from the pinned root and accepts, in
order, newer roots, a full snapshot, and deltas; every ``update_*`` method either moves the
whole trusted state forward or raises and leaves it exactly as it was. The fetcher does the
network and disk; this module decides what to believe.

Checks, in order: root chain (threshold of old and new keys, version + 1), signature by a
snapshot key of the trusted root, the root version the data was signed under, version
(rollback and equivocation refused), expiry (freeze refused), chaining of a delta to the
state held (mix-and-match refused), and the log: a snapshot or delta whose recomputed log is
not an append-only extension of the last accepted head is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from permitnet.protocol.cose import Sign1Message
from permitnet.protocol.errors import DecodeError, SignatureError
from permitnet.protocol.merkle import (
    CompactRange,
    LogHead,
    MerkleProofError,
    leaf_hash,
    verify_consistency,
)
from permitnet.protocol.registry_errors import (
    EquivocationError,
    ExpiredSnapshotError,
    LogInconsistencyError,
    MixAndMatchError,
    RollbackError,
    SignerError,
    SplitViewError,
)
from permitnet.protocol.registry_records import decode_record
from permitnet.protocol.registry_root import RootMetadata
from permitnet.protocol.registry_snapshot import (
    DeltaPayload,
    SignedHead,
    SnapshotPayload,
    decode_delta_bundle,
)
from permitnet.protocol.registry_view import RegistryView, fold

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["TrustedRegistry", "compare_heads", "verify_head"]


def _verify_signed(raw: bytes, root: RootMetadata, what: str) -> bytes:
    """Verify ``raw`` was signed by a snapshot key of ``root``; return the payload."""
    try:
        message = Sign1Message.from_bytes(raw)
    except (DecodeError, SignatureError) as e:
        raise SignerError(f"registry {what} is not a valid COSE_Sign1 message: {e}") from e
    kid = message.kid
    keys = root.snapshot_kids
    if kid is None or not message.kid_is_protected or kid not in keys:
        shown = kid.hex() if kid else "none"
        raise SignerError(
            f"registry {what} is signed by key {shown}, not a snapshot key of root v{root.version}"
        )
    try:
        return message.verify(keys[kid])
    except SignatureError as e:
        raise SignerError(f"registry {what} signature does not verify: {e}") from e


def verify_head(raw: bytes, root: RootMetadata) -> SignedHead:
    """Verify a signed log head against ``root``.

    Raises:
        SignerError: not signed by a snapshot key of ``root``.
        RecordError: the payload is not a head.
    """
    head = SignedHead.from_payload(_verify_signed(raw, root, "head"))
    if head.root_version != root.version:
        raise MixAndMatchError(
            f"head signed under root v{head.root_version}, trusted root is v{root.version}"
        )
    return head


def compare_heads(mine: SignedHead, theirs: SignedHead, proof: Sequence[bytes] = ()) -> None:
    """Check that two registry-signed heads describe one log (split-view detection).

    Args:
        mine: this node's verified head.
        theirs: a peer's verified head.
        proof: an RFC 9162 consistency proof from the smaller to the larger head, obtained
            from the registry or any mirror; unused when the sizes are equal.

    Raises:
        SplitViewError: the heads cannot both be true: the registry signed two different
            logs. Both signed heads are the evidence to report to the INCB.
    """
    small, large = (mine, theirs) if mine.log_size <= theirs.log_size else (theirs, mine)
    try:
        verify_consistency(
            LogHead(size=small.log_size, root=small.log_root),
            LogHead(size=large.log_size, root=large.log_root),
            [] if small.log_size == large.log_size else proof,
        )
    except MerkleProofError as e:
        raise SplitViewError(
            f"split view: registry head v{mine.version} (size {mine.log_size}) and peer head "
            f"v{theirs.version} (size {theirs.log_size}) are not one log: {e}"
        ) from e


class TrustedRegistry:
    """What a node currently trusts: the root and the registry view built on it."""

    __slots__ = ("_root", "_snapshot_raw", "_view")

    def __init__(self, pinned_root: bytes) -> None:
        """Trust ``pinned_root``, the root a node was set up with.

        Raises:
            RootError: the pinned root is malformed or not signed by its own threshold.
        """
        self._root = RootMetadata.verify_signed(pinned_root)
        self._view: RegistryView | None = None
        self._snapshot_raw: bytes | None = None

    @property
    def root(self) -> RootMetadata:
        """The trusted root metadata."""
        return self._root

    @property
    def view(self) -> RegistryView | None:
        """The trusted registry view, or None before the first snapshot."""
        return self._view

    def update_root(self, raw: bytes) -> RootMetadata:
        """Accept the next root version.

        Raises:
            RootError: malformed, under-signed by the old or the new keys, or skipping.
            RollbackError: not newer than the trusted root.
        """
        self._root = RootMetadata.verify_signed(raw, trusted=self._root)
        return self._root

    def update_snapshot(self, raw: bytes, *, now: int | None) -> RegistryView:
        """Verify a full snapshot and make it the trusted view.

        Args:
            raw: the signed snapshot as received.
            now: the current time; None only to reload this node's own cached state, whose
                freshness is then reported separately.

        Raises:
            RegistryError: a subclass naming why the snapshot is refused; the trusted state
                is unchanged.
        """
        payload = _verify_signed(raw, self._root, "snapshot")
        snapshot = SnapshotPayload.from_payload(payload)
        self._check_header(snapshot.version, snapshot.root_version, snapshot.expires_at, now)
        current = self._view
        if current is not None and snapshot.version == current.version:
            if raw == self._snapshot_raw:
                return current
            if snapshot.log_root != current.log_root or snapshot.log_size != current.log_size:
                raise EquivocationError(f"a different snapshot with version {current.version}")
        compact = CompactRange()
        prefix_root: bytes | None = None
        for index, record in enumerate(snapshot.records):
            if current is not None and index == current.log_size:
                prefix_root = compact.root()
            compact.append_hash(leaf_hash(record))
        if compact.root() != snapshot.log_root:
            raise LogInconsistencyError(
                f"snapshot v{snapshot.version}: its records do not hash to its log root"
            )
        if current is not None:
            if snapshot.log_size < current.log_size:
                raise LogInconsistencyError(
                    f"snapshot v{snapshot.version} log size {snapshot.log_size} is smaller than "
                    f"the accepted head {current.log_size}: the log was rewritten"
                )
            if snapshot.log_size == current.log_size:
                prefix_root = snapshot.log_root
            if prefix_root != current.log_root:
                raise LogInconsistencyError(
                    f"snapshot v{snapshot.version} does not extend the accepted log head "
                    f"(size {current.log_size}): the log was rewritten or forked"
                )
        state = fold(decode_record(r) for r in snapshot.records)
        view = RegistryView(
            version=snapshot.version,
            issued_at=snapshot.issued_at,
            expires_at=snapshot.expires_at,
            root_version=snapshot.root_version,
            log_size=snapshot.log_size,
            log_root=snapshot.log_root,
            log_compact=compact.hashes,
            state=state,
        )
        self._view, self._snapshot_raw = view, raw
        return view

    def update_delta(self, raw: bytes, *, now: int | None) -> RegistryView:
        """Apply one signed delta on top of the trusted view (see :meth:`update_deltas`).

        Raises:
            RegistryError: a subclass naming why; the trusted state is unchanged.
        """
        return self.update_deltas([raw], now=now)

    def update_delta_bundle(self, raw: bytes, *, now: int | None) -> RegistryView:
        """Apply a bundle of chained deltas as served by ``/v1/delta?since=N``.

        Raises:
            RegistryError: a subclass naming why; the trusted state is unchanged.
        """
        return self.update_deltas(decode_delta_bundle(raw), now=now)

    def update_deltas(self, deltas: Sequence[bytes], *, now: int | None) -> RegistryView:
        """Apply chained deltas in order, all or nothing; only the last must be unexpired.

        Raises:
            MixAndMatchError: there is no trusted view, or a delta does not chain to it.
            RegistryError: another subclass naming why; the trusted state is unchanged.
        """
        view = self._view
        if view is None:
            raise MixAndMatchError("no trusted snapshot yet: fetch a full snapshot first")
        if not deltas:
            return view
        for position, raw in enumerate(deltas):
            last = position == len(deltas) - 1
            view = self._apply_delta(view, raw, now if last else None)
        self._view, self._snapshot_raw = view, None
        return view

    def _apply_delta(self, view: RegistryView, raw: bytes, now: int | None) -> RegistryView:
        delta = DeltaPayload.from_payload(_verify_signed(raw, self._root, "delta"))
        if delta.base_version != view.version:
            raise MixAndMatchError(
                f"delta v{delta.base_version}->v{delta.version} does not apply to the trusted "
                f"snapshot v{view.version}"
            )
        if delta.base_log_size != view.log_size or delta.base_log_root != view.log_root:
            raise MixAndMatchError(
                f"delta base log head (size {delta.base_log_size}) is not the trusted head "
                f"(size {view.log_size}) of v{view.version}"
            )
        if delta.version <= view.version:
            raise RollbackError(f"delta version {delta.version} is not newer than v{view.version}")
        self._check_header(delta.version, delta.root_version, delta.expires_at, now, view)
        compact = CompactRange(view.log_size, view.log_compact)
        for record in delta.records:
            compact.append_hash(leaf_hash(record))
        if compact.root() != delta.log_root:
            raise LogInconsistencyError(
                f"delta to v{delta.version}: the accepted log extended with its records does "
                "not give its log root: the log was rewritten or forked"
            )
        state = fold((decode_record(r) for r in delta.records), view.state)
        return RegistryView(
            version=delta.version,
            issued_at=delta.issued_at,
            expires_at=delta.expires_at,
            root_version=delta.root_version,
            log_size=delta.log_size,
            log_root=delta.log_root,
            log_compact=compact.hashes,
            state=state,
        )

    def _check_header(
        self,
        version: int,
        root_version: int,
        expires_at: int,
        now: int | None,
        base: RegistryView | None = None,
    ) -> None:
        if root_version != self._root.version:
            raise MixAndMatchError(
                f"registry data v{version} was signed under root v{root_version}, but the "
                f"trusted root is v{self._root.version}"
            )
        current = base if base is not None else self._view
        if current is not None and version < current.version:
            raise RollbackError(
                f"registry version {version} is older than the trusted version "
                f"{current.version}: rollback refused"
            )
        if now is not None and expires_at <= now:
            raise ExpiredSnapshotError(
                f"registry data v{version} expired at {expires_at} (now {now}): it may be "
                "frozen; refused"
            )
