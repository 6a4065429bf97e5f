"""Registry root metadata: k-of-n offline root keys delegating to online snapshot keys.

A signed root is the deterministic CBOR array of one COSE_Sign1 message per root key, each
carrying the same payload bytes. Root version 1 is pinned by every node when it is set up;
root ``v + 1`` is accepted only if it is signed by a threshold of the keys of root ``v`` AND
by a threshold of its own keys (the python-tuf rule), so neither a stolen old key set nor a
self-declared new one can move the trust alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from permitnet.protocol.cbor import decode_cbor, encode_cbor
from permitnet.protocol.cose import Sign1Message, key_id, public_key_from_seed, sign1
from permitnet.protocol.errors import DecodeError, SignatureError
from permitnet.protocol.registry_errors import RollbackError, RootError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["ROOT_TYPE", "RootMetadata", "sign_root"]

ROOT_TYPE: Final = "permitnet-registry-root"
FORMAT: Final = 1
MAX_ROOT_SIZE: Final = 64 * 1024
_MAX_KEYS: Final = 32


def _keys(name: str, value: object) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= _MAX_KEYS:
        raise RootError(f"{name} must be an array of 1 to {_MAX_KEYS} public keys")
    if any(not isinstance(k, bytes) or len(k) != 32 for k in value):
        raise RootError(f"each of {name} is a 32-byte Ed25519 public key")
    if len(set(value)) != len(value):
        raise RootError(f"{name} lists a key twice")
    return tuple(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class RootMetadata:
    """The trust root of the registry: who may sign roots and who may sign snapshots."""

    version: int
    issued_at: int
    threshold: int
    root_keys: tuple[bytes, ...]
    snapshot_keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        for name in ("version", "issued_at", "threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RootError(f"root {name} must be a positive integer, got {value!r}")
        if self.threshold > len(self.root_keys):
            raise RootError(
                f"threshold {self.threshold} exceeds the {len(self.root_keys)} root keys"
            )

    @property
    def root_kids(self) -> dict[bytes, bytes]:
        """The root public keys by key identifier."""
        return {key_id(k): k for k in self.root_keys}

    @property
    def snapshot_kids(self) -> dict[bytes, bytes]:
        """The snapshot-signing public keys by key identifier."""
        return {key_id(k): k for k in self.snapshot_keys}

    def to_payload(self) -> bytes:
        """Return the deterministic CBOR payload that root keys sign."""
        return encode_cbor(
            {
                "type": ROOT_TYPE,
                "format": FORMAT,
                "version": self.version,
                "issued_at": self.issued_at,
                "threshold": self.threshold,
                "root_keys": list(self.root_keys),
                "snapshot_keys": list(self.snapshot_keys),
            }
        )

    @classmethod
    def from_payload(cls, payload: bytes) -> RootMetadata:
        """Decode a root payload (not yet trusted: see :meth:`verify_signed`).

        Raises:
            RootError: the payload is not a valid root.
        """
        try:
            item = decode_cbor(payload, max_size=MAX_ROOT_SIZE, max_depth=3)
        except DecodeError as e:
            raise RootError(f"root payload is not strict CBOR: {e}") from e
        if not isinstance(item, dict) or item.get("type") != ROOT_TYPE:
            raise RootError("not a permitnet registry root")
        if item.get("format") != FORMAT:
            raise RootError(f"unsupported root format {item.get('format')!r}")
        fields = {k: item.get(k) for k in ("version", "issued_at", "threshold")}
        for name, value in fields.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise RootError(f"root {name} must be an integer")
        return cls(
            version=int(fields["version"]),  # type: ignore[arg-type]  # checked just above
            issued_at=int(fields["issued_at"]),  # type: ignore[arg-type]
            threshold=int(fields["threshold"]),  # type: ignore[arg-type]
            root_keys=_keys("root_keys", item.get("root_keys")),
            snapshot_keys=_keys("snapshot_keys", item.get("snapshot_keys")),
        )

    @classmethod
    def verify_signed(cls, raw: bytes, *, trusted: RootMetadata | None = None) -> RootMetadata:
        """Verify a signed root and return it.

        Args:
            raw: the signed root as served.
            trusted: the root currently trusted; None only for the root a node pins.

        Raises:
            RootError: malformed, or under-signed by its own keys or by the trusted keys.
            RollbackError: ``trusted`` is given and the version is not newer.
        """
        messages = _messages(raw)
        root = cls.from_payload(messages[0].payload)
        _require_threshold("its own", root, messages)
        if trusted is not None:
            if root.version <= trusted.version:
                raise RollbackError(
                    f"root version {root.version} is not newer than trusted version "
                    f"{trusted.version}"
                )
            if root.version != trusted.version + 1:
                raise RootError(
                    f"root version {root.version} skips versions: expected {trusted.version + 1}"
                )
            _require_threshold(f"the trusted root v{trusted.version}'s", trusted, messages)
        return root


def _messages(raw: bytes) -> list[Sign1Message]:
    """Parse a signed root into its COSE_Sign1 messages, all over the same payload."""
    try:
        item = decode_cbor(raw, max_size=MAX_ROOT_SIZE, max_depth=2)
    except DecodeError as e:
        raise RootError(f"signed root is not strict CBOR: {e}") from e
    if not isinstance(item, list) or not 1 <= len(item) <= _MAX_KEYS * 2:
        raise RootError("a signed root is an array of COSE_Sign1 messages")
    messages: list[Sign1Message] = []
    for entry in item:
        if not isinstance(entry, bytes):
            raise RootError("each root signature is a COSE_Sign1 byte string")
        try:
            messages.append(Sign1Message.from_bytes(entry))
        except (DecodeError, SignatureError) as e:
            raise RootError(f"a root signature is malformed: {e}") from e
    payload = messages[0].payload
    if any(m.payload != payload for m in messages):
        raise RootError("the root signatures cover different payloads")
    return messages


def _require_threshold(whose: str, root: RootMetadata, messages: Sequence[Sign1Message]) -> None:
    """Count distinct keys of ``root`` whose signature verifies; require its threshold."""
    keys = root.root_kids
    good: set[bytes] = set()
    for message in messages:
        kid = message.kid
        if kid is None or not message.kid_is_protected or kid not in keys or kid in good:
            continue
        try:
            message.verify(keys[kid])
        except SignatureError:
            continue
        good.add(kid)
    if len(good) < root.threshold:
        raise RootError(
            f"root signed by {len(good)} of {whose} keys, threshold is {root.threshold}"
        )


def sign_root(root: RootMetadata, seeds: Sequence[bytes]) -> bytes:
    """Sign ``root`` with each root key seed and return the signed root.

    Raises:
        SignatureError: a seed is not 32 bytes.
    """
    payload = root.to_payload()
    return encode_cbor([sign1(payload, seed, key_id(public_key_from_seed(seed))) for seed in seeds])
