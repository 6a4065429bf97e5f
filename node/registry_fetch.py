"""The thin aiohttp fetcher a node uses to keep its registry view fresh.

All trust decisions are made by :class:`permitnet.protocol.registry_client.TrustedRegistry`;
this module only does the network and the disk: it tries the mirrors in order, caps every
download, and caches the last good state (root updates, the last full snapshot and the deltas
applied since) so that a node keeps working when the registry is unreachable.

Mirrors are untrusted: they serve the registry's signed files, and anything they alter is
refused by the client. The fetcher uses only path-style URLs (``/v1/delta/N``), so a static
export behind any web server works as a mirror.

Conditional GET: the fetcher remembers the ETag of the last snapshot and delta it accepted and
sends ``If-None-Match``; a ``304 Not Modified`` counts as "checked, unchanged", like an empty
delta. Split view: after each refresh the fetcher keeps the registry-signed log head of the
version it accepted (:attr:`RegistryFetcher.head`, the exact bytes the registry signed), which the
node gives its peers, and :meth:`RegistryFetcher.check_peer_head` compares a peer's head with it.

Freshness is explicit: :meth:`RegistryFetcher.status` says whether the data is fresh, past its
expiry but within the grace period (keep exchanging, with warnings), or expired beyond the
grace period (store incoming documents as pending until fresh data arrives).

The cache on disk is :class:`permitnet.node.registry_cache.RegistryCacheMixin`, which
:class:`RegistryFetcher` inherits; the freshness rule is :mod:`permitnet.node.registry_freshness`,
whose names this module re-exports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Final

import aiohttp

from permitnet.node.errors import NodeError
from permitnet.node.registry_cache import RegistryCacheMixin, check_head_matches, head_of
from permitnet.node.registry_freshness import Freshness, FreshnessStatus, classify
from permitnet.protocol.cbor import decode_cbor
from permitnet.protocol.errors import ProtocolError, SizeLimitError
from permitnet.protocol.registry_client import TrustedRegistry, compare_heads, verify_head
from permitnet.protocol.registry_errors import SplitViewError
from permitnet.protocol.registry_snapshot import (
    MAX_DELTA_SIZE,
    MAX_HEAD_SIZE,
    MAX_SNAPSHOT_SIZE,
    decode_delta_bundle,
)

if TYPE_CHECKING:
    from pathlib import Path

    from permitnet.protocol.registry_snapshot import SignedHead
    from permitnet.protocol.registry_view import RegistryView

__all__ = ["Freshness", "FreshnessStatus", "RegistryFetchError", "RegistryFetcher", "classify"]

_log = logging.getLogger(__name__)

MAX_ROOT_SIZE: Final = 64 * 1024
MAX_PROOF_SIZE: Final = 64 * 1024
#: How many root versions one refresh may walk (a registry rotates its root rarely).
MAX_ROOT_STEPS: Final = 64
#: Past this many deltas on top of the cached full snapshot, fetch a full snapshot again.
MAX_CACHED_DELTAS: Final = 100


class RegistryFetchError(NodeError):
    """No mirror gave verified, fresh registry data; the message lists why for each mirror."""

    status_hint = 503
    code = "registry_fetch_failed"


class _MirrorError(Exception):
    """One mirror's failure, reported with the others if all fail."""


class RegistryFetcher(RegistryCacheMixin):
    """Keeps a verified registry view up to date from a list of untrusted mirrors."""

    def __init__(
        self,
        mirrors: list[str],
        cache_dir: Path,
        pinned_root: bytes,
        session: aiohttp.ClientSession,
        grace_seconds: int,
        *,
        timeout_seconds: float = 30.0,
    ) -> None:
        """Set up the fetcher and load the last good state from ``cache_dir``.

        Args:
            mirrors: base URLs of the registry and its mirrors, tried in order.
            cache_dir: where the last good state is kept (created if missing).
            pinned_root: the signed root metadata this node was set up with.
            session: the node's one ``ClientSession``.
            grace_seconds: how long past expiry stale data is still used.
            timeout_seconds: the total time allowed for one download.

        Raises:
            RegistryError: the pinned root is not valid.
            ValueError: no mirrors, or a negative grace period.
        """
        if not mirrors:
            raise ValueError("at least one registry mirror URL is needed")
        if grace_seconds < 0:
            raise ValueError("the grace period cannot be negative")
        self._mirrors = [m.rstrip("/") for m in mirrors]
        self._cache_dir = cache_dir
        self._pinned_root = pinned_root
        self._session = session
        self._grace = grace_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._trusted = TrustedRegistry(pinned_root)
        self._cached_roots: list[bytes] = []
        self._cached_snapshot: bytes | None = None
        self._cached_deltas: list[bytes] = []
        self._lock = asyncio.Lock()
        #: URL -> ETag of the last snapshot and the last delta accepted (one of each kind).
        self._etags: dict[str, str] = {}
        self._head: bytes | None = None
        self._head_of_version: int | None = None
        self.last_error: str | None = None
        self._load_cache()

    @property
    def current(self) -> RegistryView | None:
        """The last good registry view, or None."""
        return self._trusted.view

    @property
    def head(self) -> bytes | None:
        """The registry-signed log head of the view held, exactly as signed, or None."""
        return self._head

    @property
    def trusted(self) -> TrustedRegistry:
        """The client state machine (its root and view)."""
        return self._trusted

    def status(self, now: int) -> FreshnessStatus:
        """Return how fresh the registry data is at ``now`` (Unix seconds)."""
        view = self._trusted.view
        if view is None:
            return FreshnessStatus(
                state=Freshness.EXPIRED,
                version=None,
                age_seconds=None,
                expires_at=None,
                grace_until=None,
            )
        grace_until = view.expires_at + self._grace
        return FreshnessStatus(
            state=classify(view.expires_at, self._grace, now),
            version=view.version,
            age_seconds=max(0, now - view.issued_at),
            expires_at=view.expires_at,
            grace_until=grace_until,
        )

    def age(self, now: int) -> int | None:
        """Return how many seconds ago the registry signed the data held, or None."""
        view = self._trusted.view
        return None if view is None else max(0, now - view.issued_at)

    # ------------------------------------------------------------------ the network

    async def _get(
        self, url: str, limit: int, *, etag: str | None = None
    ) -> tuple[int, bytes, str | None]:
        """GET ``url``, refusing bodies over ``limit`` bytes; return (status, body, ETag).

        With ``etag``, ``If-None-Match`` is sent and a 304 may come back.
        """
        headers = {"If-None-Match": etag} if etag else {}
        async with self._session.get(url, headers=headers, timeout=self._timeout) as response:
            tag = response.headers.get("ETag")
            if response.status == 304 and not etag:
                raise _MirrorError(f"{url}: HTTP 304 to a request that was not conditional")
            if response.status in (304, 404):
                return response.status, b"", tag
            if response.status != 200:
                raise _MirrorError(f"{url}: HTTP {response.status}")
            if response.content_length is not None and response.content_length > limit:
                raise SizeLimitError(
                    f"{url}: {response.content_length} bytes exceeds the cap of {limit}"
                )
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > limit:
                    raise SizeLimitError(f"{url}: response exceeds the cap of {limit} bytes")
            return 200, bytes(body), tag

    def _remember_etag(self, url: str, etag: str | None) -> None:
        """Keep ``etag`` as the one of the last accepted answer of ``url``'s kind."""
        kind = _etag_kind(url)
        self._etags = {u: t for u, t in self._etags.items() if _etag_kind(u) != kind}
        if etag:
            self._etags[url] = etag

    async def _get_required(self, url: str, limit: int) -> bytes:
        """GET ``url`` and return its body; a 404 is a failure here."""
        status, body, _ = await self._get(url, limit)
        if status != 200:
            raise _MirrorError(f"{url}: HTTP {status}")
        return body

    async def refresh(self, now: int | None = None) -> RegistryView:
        """Fetch and verify the newest registry data from the first mirror that has it.

        Args:
            now: the current time (Unix seconds); the system clock by default.

        Returns:
            The trusted view, fresh at ``now``.

        Raises:
            RegistryFetchError: no mirror gave verified data that is fresh at ``now``; the
                previous good state is kept (and any verified progress made).
        """
        async with self._lock:
            clock = int(time.time()) if now is None else now
            failures: list[str] = []
            for mirror in self._mirrors:
                try:
                    view = await self._refresh_from(mirror, clock)
                except (_MirrorError, ProtocolError, aiohttp.ClientError, TimeoutError) as e:
                    reason = f"{mirror}: {type(e).__name__}: {e}"
                    _log.warning("registry mirror refused: %s", reason)
                    failures.append(reason)
                    continue
                if view.expires_at > clock:
                    self.last_error = None
                    await self._update_head(mirror, view)
                    return view
                failures.append(
                    f"{mirror}: newest data v{view.version} expired at {view.expires_at}"
                )
            self.last_error = "; ".join(failures)
            raise RegistryFetchError(f"no registry mirror gave fresh data: {self.last_error}")

    async def _refresh_from(self, mirror: str, now: int) -> RegistryView:
        await self._update_roots(mirror)
        view = self._trusted.view
        if view is None or view.root_version != self._trusted.root.version:
            return await self._full(mirror, now)
        url = f"{mirror}/v1/delta/{view.version}"
        try:
            status, body, etag = await self._get(url, MAX_DELTA_SIZE, etag=self._etags.get(url))
        except SizeLimitError as e:
            # Months of changes can outgrow the delta cap: the snapshot is then the cheaper way.
            _log.info("registry delta from %s refused (%s): fetching the full snapshot", mirror, e)
            return await self._full(mirror, now)
        if status == 404 or len(self._cached_deltas) >= MAX_CACHED_DELTAS:
            return await self._full(mirror, now)
        if status == 304:
            # Not modified since the (empty) delta accepted from this URL: checked, unchanged.
            return view
        deltas = decode_delta_bundle(body)
        if not deltas:
            self._remember_etag(url, etag)
            return view
        new_view = self._trusted.update_deltas(deltas, now=now)
        self._cached_deltas.extend(deltas)
        await self._save_deltas()
        self._remember_etag(url, etag)
        return new_view

    async def _full(self, mirror: str, now: int) -> RegistryView:
        url = f"{mirror}/v1/snapshot/latest"
        held = self._trusted.view
        # Conditional only when the view held is exactly the cached snapshot under the trusted
        # root: a 304 then means "the registry still publishes what this node holds".
        conditional = (
            held is not None
            and held.root_version == self._trusted.root.version
            and self._cached_snapshot is not None
            and not self._cached_deltas
        )
        status, body, etag = await self._get(
            url, MAX_SNAPSHOT_SIZE, etag=self._etags.get(url) if conditional else None
        )
        if status == 304 and held is not None:
            return held
        if status != 200:
            raise _MirrorError(f"{url}: HTTP {status}")
        # Verifying a world-scale snapshot takes a second or more: off the event loop, so
        # that the node keeps serving meanwhile (the fetcher's lock keeps it single-flight).
        view = await asyncio.to_thread(self._trusted.update_snapshot, body, now=now)
        self._cached_snapshot, self._cached_deltas = body, []
        await self._save_snapshot(body)
        self._remember_etag(url, etag)
        return view

    async def _update_head(self, mirror: str, view: RegistryView) -> None:
        """Fetch and keep the signed head of ``view``; a failure keeps the previous head."""
        if self._head is not None and self._head_of_version == view.version:
            return
        url = f"{mirror}/v1/head/{view.version}"
        try:
            raw = await self._get_required(url, MAX_HEAD_SIZE)
            check_head_matches(raw, self._trusted, view)
            await self._save_head(raw)
        except (_MirrorError, ProtocolError, OSError, aiohttp.ClientError, TimeoutError) as e:
            # The view itself is verified; only the comparison with peers waits for the head.
            _log.warning("registry head v%d not kept from %s: %s", view.version, mirror, e)
            return
        self._head, self._head_of_version = raw, view.version

    async def _update_roots(self, mirror: str) -> None:
        for _ in range(MAX_ROOT_STEPS):
            version = self._trusted.root.version + 1
            status, body, _ = await self._get(f"{mirror}/v1/root/{version}", MAX_ROOT_SIZE)
            if status == 404:
                return
            self._trusted.update_root(body)
            self._cached_roots.append(body)
            await self._save_root(body)
        raise _MirrorError(f"{mirror}: more than {MAX_ROOT_STEPS} root versions at once")

    # ------------------------------------------------------------------ split view

    async def fetch_head(self) -> bytes:
        """Return the registry's latest signed log head, verified, as bytes to give peers.

        Raises:
            RegistryFetchError: no mirror served a valid head.
        """
        failures: list[str] = []
        for mirror in self._mirrors:
            try:
                body = await self._get_required(f"{mirror}/v1/head/latest", MAX_HEAD_SIZE)
                verify_head(body, self._trusted.root)
            except (_MirrorError, ProtocolError, aiohttp.ClientError, TimeoutError) as e:
                failures.append(f"{mirror}: {e}")
                continue
            return body
        raise RegistryFetchError(f"no registry mirror gave a valid head: {'; '.join(failures)}")

    async def check_peer_head(self, peer_head: bytes) -> SignedHead:
        """Compare a peer's registry-signed head with this node's view (split-view detection).

        Returns:
            The peer's verified head, when it is consistent with this node's log.

        Raises:
            RegistryError: the peer's head is not registry-signed (a subclass), or
                ``SplitViewError``: the registry showed the two nodes different logs.
            RegistryFetchError: no view yet, or no mirror served the consistency proof.
        """
        view = self._trusted.view
        if view is None:
            raise RegistryFetchError("no registry view to compare with")
        theirs = verify_head(peer_head, self._trusted.root)
        mine = head_of(view)
        if mine.log_size == theirs.log_size:
            compare_heads(mine, theirs)
            return theirs
        first, second = sorted((mine.log_size, theirs.log_size))
        # A mirror may serve a wrong proof (it is untrusted): the heads are one log if any
        # mirror's proof verifies, and a split view only if proofs were served and none did.
        failures: list[str] = []
        split: SplitViewError | None = None
        for mirror in self._mirrors:
            url = f"{mirror}/v1/proof/consistency/{first}/{second}"
            try:
                body = await self._get_required(url, MAX_PROOF_SIZE)
                item = decode_cbor(body, max_size=MAX_PROOF_SIZE, max_depth=3)
            except (_MirrorError, ProtocolError, aiohttp.ClientError, TimeoutError) as e:
                failures.append(str(e))
                continue
            path = item.get("path") if isinstance(item, dict) else None
            if not isinstance(path, list) or not all(isinstance(p, bytes) for p in path):
                failures.append(f"{url}: malformed proof")
                continue
            try:
                compare_heads(mine, theirs, path)
            except SplitViewError as e:
                split = e
                continue
            return theirs
        if split is not None:
            raise split
        raise RegistryFetchError(f"no consistency proof {first}->{second}: {'; '.join(failures)}")


def _etag_kind(url: str) -> str:
    return "delta" if "/v1/delta/" in url else "snapshot"
