"""Registry snapshots, deltas and log heads: the signed formats, built and parsed.

All three are COSE_Sign1 messages signed by an online snapshot key that the root metadata
lists; the payload is a deterministic CBOR map with a ``type`` and ``format`` marker.

* A **snapshot** carries every record of the transparency log, as the exact leaf bytes, with
  the log size and root, the snapshot version, issue time, expiry and the root version.
* A **delta** carries the records appended since a base snapshot, chained to that base by
  its version and log head; a node folds it onto the state it holds.
* A **head** is the small signed (version, log size, log root) that nodes compare with peers
  to detect a registry showing different logs to different countries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from permitnet.protocol.cbor import decode_cbor, encode_cbor
from permitnet.protocol.cose import key_id, public_key_from_seed, sign1
from permitnet.protocol.errors import DecodeError
from permitnet.protocol.registry_errors import MixAndMatchError, RecordError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DeltaPayload",
    "SignedHead",
    "SnapshotPayload",
    "decode_delta_bundle",
    "encode_delta_bundle",
    "sign_payload",
]

SNAPSHOT_TYPE: Final = "permitnet-registry-snapshot"
DELTA_TYPE: Final = "permitnet-registry-delta"
HEAD_TYPE: Final = "permitnet-registry-head"
FORMAT: Final = 1
#: The largest full snapshot a client decodes (the world-scale one is under 10 MB).
MAX_SNAPSHOT_SIZE: Final = 48 * 1024 * 1024
#: The largest delta (or bundle of deltas) a client decodes.
MAX_DELTA_SIZE: Final = 16 * 1024 * 1024
MAX_HEAD_SIZE: Final = 4096
_MAX_RECORDS: Final = 2_000_000


def _int(item: dict[object, object], name: str) -> int:
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MixAndMatchError(f"registry field {name} must be a non-negative integer")
    return value


def _hash(item: dict[object, object], name: str) -> bytes:
    value = item.get(name)
    if not isinstance(value, bytes) or len(value) != 32:
        raise MixAndMatchError(f"registry field {name} must be a 32-byte hash")
    return value


def _decode(payload: bytes, kind: str, max_size: int) -> dict[object, object]:
    try:
        item = decode_cbor(payload, max_size=max_size, max_depth=3)
    except DecodeError as e:
        raise RecordError(f"registry {kind} payload is not strict CBOR: {e}") from e
    if not isinstance(item, dict):
        raise RecordError(f"a registry {kind} payload is a map")
    expected = {"snapshot": SNAPSHOT_TYPE, "delta": DELTA_TYPE, "head": HEAD_TYPE}[kind]
    if item.get("type") != expected:
        raise RecordError(f"expected a registry {kind}, got type {item.get('type')!r}")
    if item.get("format") != FORMAT:
        raise RecordError(f"unsupported registry {kind} format {item.get('format')!r}")
    return item


def _records(item: dict[object, object]) -> tuple[bytes, ...]:
    records = item.get("records")
    if not isinstance(records, list) or len(records) > _MAX_RECORDS:
        raise RecordError("records must be an array of byte strings")
    if any(not isinstance(r, bytes) for r in records):
        raise RecordError("each record is the byte string of its log leaf")
    return tuple(records)


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotPayload:
    """The payload of a full snapshot: every log record and the log head."""

    version: int
    issued_at: int
    expires_at: int
    root_version: int
    log_size: int
    log_root: bytes
    records: tuple[bytes, ...]

    def to_payload(self) -> bytes:
        """Return the deterministic CBOR payload."""
        return encode_cbor(
            {
                "type": SNAPSHOT_TYPE,
                "format": FORMAT,
                "version": self.version,
                "issued_at": self.issued_at,
                "expires_at": self.expires_at,
                "root_version": self.root_version,
                "log_size": self.log_size,
                "log_root": self.log_root,
                "records": list(self.records),
            }
        )

    @classmethod
    def from_payload(cls, payload: bytes) -> SnapshotPayload:
        """Parse a verified snapshot payload.

        Raises:
            RecordError: not a snapshot payload.
            MixAndMatchError: a header field is malformed or the record count is not the log size.
        """
        item = _decode(payload, "snapshot", MAX_SNAPSHOT_SIZE)
        snapshot = cls(
            version=_int(item, "version"),
            issued_at=_int(item, "issued_at"),
            expires_at=_int(item, "expires_at"),
            root_version=_int(item, "root_version"),
            log_size=_int(item, "log_size"),
            log_root=_hash(item, "log_root"),
            records=_records(item),
        )
        if len(snapshot.records) != snapshot.log_size:
            raise MixAndMatchError(
                f"snapshot holds {len(snapshot.records)} records but claims log size "
                f"{snapshot.log_size}"
            )
        return snapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class DeltaPayload:
    """The payload of a delta: the records appended after a base snapshot."""

    base_version: int
    base_log_size: int
    base_log_root: bytes
    version: int
    issued_at: int
    expires_at: int
    root_version: int
    log_size: int
    log_root: bytes
    records: tuple[bytes, ...]

    def to_payload(self) -> bytes:
        """Return the deterministic CBOR payload."""
        return encode_cbor(
            {
                "type": DELTA_TYPE,
                "format": FORMAT,
                "base_version": self.base_version,
                "base_log_size": self.base_log_size,
                "base_log_root": self.base_log_root,
                "version": self.version,
                "issued_at": self.issued_at,
                "expires_at": self.expires_at,
                "root_version": self.root_version,
                "log_size": self.log_size,
                "log_root": self.log_root,
                "records": list(self.records),
            }
        )

    @classmethod
    def from_payload(cls, payload: bytes) -> DeltaPayload:
        """Parse a verified delta payload.

        Raises:
            RecordError: not a delta payload.
            MixAndMatchError: malformed header, or record count not the log growth.
        """
        item = _decode(payload, "delta", MAX_DELTA_SIZE)
        delta = cls(
            base_version=_int(item, "base_version"),
            base_log_size=_int(item, "base_log_size"),
            base_log_root=_hash(item, "base_log_root"),
            version=_int(item, "version"),
            issued_at=_int(item, "issued_at"),
            expires_at=_int(item, "expires_at"),
            root_version=_int(item, "root_version"),
            log_size=_int(item, "log_size"),
            log_root=_hash(item, "log_root"),
            records=_records(item),
        )
        if delta.log_size != delta.base_log_size + len(delta.records):
            raise MixAndMatchError(
                f"delta holds {len(delta.records)} records but the log grows from "
                f"{delta.base_log_size} to {delta.log_size}"
            )
        return delta


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedHead:
    """A registry-signed log head, small enough to exchange with peers."""

    version: int
    issued_at: int
    root_version: int
    log_size: int
    log_root: bytes

    def to_payload(self) -> bytes:
        """Return the deterministic CBOR payload."""
        return encode_cbor(
            {
                "type": HEAD_TYPE,
                "format": FORMAT,
                "version": self.version,
                "issued_at": self.issued_at,
                "root_version": self.root_version,
                "log_size": self.log_size,
                "log_root": self.log_root,
            }
        )

    @classmethod
    def from_payload(cls, payload: bytes) -> SignedHead:
        """Parse a verified head payload.

        Raises:
            RecordError: not a head payload.
            MixAndMatchError: a field is malformed.
        """
        item = _decode(payload, "head", MAX_HEAD_SIZE)
        return cls(
            version=_int(item, "version"),
            issued_at=_int(item, "issued_at"),
            root_version=_int(item, "root_version"),
            log_size=_int(item, "log_size"),
            log_root=_hash(item, "log_root"),
        )


def sign_payload(payload: SnapshotPayload | DeltaPayload | SignedHead, seed: bytes) -> bytes:
    """Sign a snapshot, delta or head with the online snapshot key ``seed``.

    Raises:
        SignatureError: the seed is not 32 bytes.
    """
    return sign1(payload.to_payload(), seed, key_id(public_key_from_seed(seed)))


def encode_delta_bundle(deltas: Sequence[bytes]) -> bytes:
    """Return the bundle served for ``/v1/delta?since=N``: the signed deltas, in order."""
    return encode_cbor(list(deltas))


def decode_delta_bundle(raw: bytes) -> list[bytes]:
    """Split a delta bundle into its signed deltas (each verified later).

    Raises:
        RecordError: the bundle is not an array of byte strings.
        SizeLimitError: the bundle is larger than :data:`MAX_DELTA_SIZE`.
    """
    try:
        item = decode_cbor(raw, max_size=MAX_DELTA_SIZE, max_depth=2)
    except DecodeError as e:
        if e.status_hint == 413:
            raise
        raise RecordError(f"delta bundle is not strict CBOR: {e}") from e
    if not isinstance(item, list) or any(not isinstance(d, bytes) for d in item):
        raise RecordError("a delta bundle is an array of signed deltas")
    return list(item)
