"""One registry publication: the signed snapshot, the delta from the previous one, the head.

Pure: the registry's store hands in the log records and the previous head, this module
computes the Merkle root and signs; the store keeps the exact bytes it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from permitnet.protocol.merkle import leaf_hash, root_hash
from permitnet.protocol.registry_errors import RollbackError
from permitnet.protocol.registry_snapshot import (
    DeltaPayload,
    SignedHead,
    SnapshotPayload,
    sign_payload,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["PreviousHead", "Publication", "publish"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PreviousHead:
    """The version and log head of the previous publication."""

    version: int
    log_size: int
    log_root: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Publication:
    """The signed artefacts of one publication, to be stored and served byte for byte."""

    version: int
    issued_at: int
    expires_at: int
    log_size: int
    log_root: bytes
    snapshot: bytes
    delta: bytes | None
    head: bytes


def publish(
    *,
    records: Sequence[bytes],
    previous: PreviousHead | None,
    issued_at: int,
    expires_at: int,
    root_version: int,
    seed: bytes,
) -> Publication:
    """Sign the next snapshot over all ``records`` (the whole log), with its delta and head.

    Args:
        records: every log leaf, in log order.
        previous: the previous publication's head, or None for the first.
        issued_at: the signing time (Unix seconds).
        expires_at: when the snapshot expires.
        root_version: the version of the root listing the snapshot key.
        seed: the online snapshot key.

    Raises:
        RollbackError: the log is shorter than at the previous publication, or the
            expiry is not after the issue time.
    """
    if expires_at <= issued_at:
        raise RollbackError("a snapshot must expire after it is issued")
    base_size = 0 if previous is None else previous.log_size
    if len(records) < base_size:
        raise RollbackError(f"log shrank from {base_size} to {len(records)} records")
    log_root = root_hash([leaf_hash(record) for record in records])
    version = 1 if previous is None else previous.version + 1
    snapshot = SnapshotPayload(
        version=version,
        issued_at=issued_at,
        expires_at=expires_at,
        root_version=root_version,
        log_size=len(records),
        log_root=log_root,
        records=tuple(records),
    )
    delta = None
    if previous is not None:
        delta = sign_payload(
            DeltaPayload(
                base_version=previous.version,
                base_log_size=previous.log_size,
                base_log_root=previous.log_root,
                version=version,
                issued_at=issued_at,
                expires_at=expires_at,
                root_version=root_version,
                log_size=len(records),
                log_root=log_root,
                records=tuple(records[base_size:]),
            ),
            seed,
        )
    head = SignedHead(
        version=version,
        issued_at=issued_at,
        root_version=root_version,
        log_size=len(records),
        log_root=log_root,
    )
    return Publication(
        version=version,
        issued_at=issued_at,
        expires_at=expires_at,
        log_size=len(records),
        log_root=log_root,
        snapshot=sign_payload(snapshot, seed),
        delta=delta,
        head=sign_payload(head, seed),
    )
