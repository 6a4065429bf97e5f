"""The registry fetcher's cache on disk: the last good roots, snapshot, deltas and head.

:class:`permitnet.node.registry_fetch.RegistryFetcher` inherits :class:`RegistryCacheMixin`,
which rebuilds the trusted state from ``cache_dir`` on start, re-verifying every byte (a damaged
cache is refused and the node starts without data), and writes each verified update through
(fsync, then an atomic rename). :func:`check_head_matches` ties a registry-signed log head to
the view it heads, for the cached head and for one freshly fetched.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Final

from permitnet.protocol.cose import Sign1Message
from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.registry_client import TrustedRegistry, verify_head
from permitnet.protocol.registry_errors import LogInconsistencyError
from permitnet.protocol.registry_snapshot import (
    SignedHead,
    SnapshotPayload,
    decode_delta_bundle,
    encode_delta_bundle,
)

if TYPE_CHECKING:
    from pathlib import Path

    from permitnet.protocol.registry_view import RegistryView

__all__ = ["RegistryCacheMixin", "check_head_matches", "head_of"]

# The fetcher's logger, not this module's: the cache's warnings keep the name they always
# had, so that log filters and alerts on it keep working (as node/exchange_general.py does).
_log = logging.getLogger("permitnet.node.registry_fetch")

_SNAPSHOT_FILE: Final = "snapshot.cbor"
_DELTAS_FILE: Final = "deltas.cbor"
_ROOTS_DIR: Final = "roots"
_HEAD_FILE: Final = "head.cbor"


def _root_version_of(snapshot: bytes) -> int:
    """Return the root version an (as yet unverified) snapshot says it was signed under."""
    payload = SnapshotPayload.from_payload(Sign1Message.from_bytes(snapshot).payload)
    return payload.root_version


class RegistryCacheMixin:
    """The fetcher's last good state on disk; the base of ``RegistryFetcher``."""

    _cache_dir: Path
    _pinned_root: bytes
    _trusted: TrustedRegistry
    _cached_roots: list[bytes]
    _cached_snapshot: bytes | None
    _cached_deltas: list[bytes]
    _head: bytes | None
    _head_of_version: int | None
    last_error: str | None

    def _load_cache(self) -> None:
        """Rebuild the trusted state from the cache, re-verifying every byte."""
        try:
            roots_dir = self._cache_dir / _ROOTS_DIR
            roots = sorted(roots_dir.glob("*.cbor"), key=lambda p: int(p.stem))
            raw_roots = [p.read_bytes() for p in roots]
            snapshot_path = self._cache_dir / _SNAPSHOT_FILE
            if not snapshot_path.exists() and not raw_roots:
                return
            trusted = TrustedRegistry(self._pinned_root)
            pending_roots = list(raw_roots)
            snapshot = snapshot_path.read_bytes() if snapshot_path.exists() else None
            deltas: list[bytes] = []
            if snapshot is not None:
                # The node may have stopped after accepting a new root but before fetching
                # data signed under it: load the data under the root that signed it, then
                # the later roots (the next refresh then fetches a full snapshot).
                signed_under = _root_version_of(snapshot)
                while pending_roots and trusted.root.version < signed_under:
                    trusted.update_root(pending_roots.pop(0))
                trusted.update_snapshot(snapshot, now=None)
                deltas_path = self._cache_dir / _DELTAS_FILE
                if deltas_path.exists():
                    deltas = decode_delta_bundle(deltas_path.read_bytes())
                    trusted.update_deltas(deltas, now=None)
            for raw in pending_roots:
                trusted.update_root(raw)
        except (OSError, ValueError, ProtocolError) as e:
            # A damaged cache must never be trusted; the node starts without data and
            # holds incoming documents as pending until a refresh succeeds.
            _log.warning("registry cache in %s refused, starting empty: %s", self._cache_dir, e)
            self.last_error = f"cache refused: {e}"
            return
        self._trusted = trusted
        self._cached_roots, self._cached_snapshot, self._cached_deltas = (
            raw_roots,
            snapshot,
            deltas,
        )
        self._load_head()

    def _load_head(self) -> None:
        path = self._cache_dir / _HEAD_FILE
        view = self._trusted.view
        if view is None or not path.exists():
            return
        try:
            raw = path.read_bytes()
            check_head_matches(raw, self._trusted, view)
        except (OSError, ProtocolError) as e:
            # Not fatal: the next refresh fetches the head of the view held.
            _log.warning("cached registry head refused: %s", e)
            return
        self._head, self._head_of_version = raw, view.version

    def _write(self, name: str, data: bytes) -> None:
        path = self._cache_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

    async def _save_root(self, raw: bytes) -> None:
        version = self._trusted.root.version
        await asyncio.to_thread(self._write, f"{_ROOTS_DIR}/{version}.cbor", raw)

    async def _save_snapshot(self, raw: bytes) -> None:
        # Empty the deltas first: a crash in between leaves the older, consistent state.
        await asyncio.to_thread(self._write, _DELTAS_FILE, encode_delta_bundle([]))
        await asyncio.to_thread(self._write, _SNAPSHOT_FILE, raw)

    async def _save_deltas(self) -> None:
        bundle = encode_delta_bundle(self._cached_deltas)
        await asyncio.to_thread(self._write, _DELTAS_FILE, bundle)

    async def _save_head(self, raw: bytes) -> None:
        await asyncio.to_thread(self._write, _HEAD_FILE, raw)


def head_of(view: RegistryView) -> SignedHead:
    """Return the log head that ``view`` describes, to compare with a registry-signed one."""
    return SignedHead(
        version=view.version,
        issued_at=view.issued_at,
        root_version=view.root_version,
        log_size=view.log_size,
        log_root=view.log_root,
    )


def check_head_matches(raw: bytes, trusted: TrustedRegistry, view: RegistryView) -> None:
    """Verify ``raw`` is the registry-signed head of exactly ``view``.

    Raises:
        RegistryError: not signed by a snapshot key of the trusted root, or another head.
    """
    head = verify_head(raw, trusted.root)
    if head != head_of(view):
        raise LogInconsistencyError(
            f"the registry head v{head.version} (size {head.log_size}) is not the head of the "
            f"accepted snapshot v{view.version} (size {view.log_size})"
        )
