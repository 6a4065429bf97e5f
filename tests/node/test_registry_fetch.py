"""RegistryFetcher against a real registry server on loopback and an "evil mirror" in front of it.

Each attack is refused with a reason naming it, and the node's cached good state is untouched.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from permitnet.node.registry_fetch import (
    Freshness,
    RegistryFetcher,
    RegistryFetchError,
    classify,
)
from permitnet.protocol.cose import Sign1Message
from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.registry_errors import SplitViewError
from permitnet.protocol.registry_root import RootMetadata, sign_root
from permitnet.protocol.registry_snapshot import SignedHead, sign_payload
from permitnet.registry.app import RegistryConfig, create_app
from permitnet.registry.keys import read_seed
from permitnet.registry.service import Registry

if TYPE_CHECKING:
    from pathlib import Path

    from aiohttp.abc import AbstractStreamWriter

T0 = 1_780_000_000
DAY = 86_400
OPS = "cli:test"

# What the evil mirror does with one upstream answer: (path, status, body) -> response.
Transform = Callable[[str, int, bytes], Awaitable[web.StreamResponse] | web.StreamResponse]


@dataclass
class Network:
    data_dir: Path
    real: str
    evil: str
    session: aiohttp.ClientSession
    transform: list[Transform] = field(default_factory=list)

    def registry(self) -> Registry:
        return Registry.open(self.data_dir)

    def pinned(self) -> bytes:
        reg = self.registry()
        try:
            return reg.store.root(1)
        finally:
            reg.close()

    def change(self, now: int, substance: str = "codeine") -> None:
        reg = self.registry()
        try:
            reg.set_estimate(
                country="DE",
                substance=substance,
                year=2026,
                quantity_mg=5,
                kind="supplementary",
                effective="2026-02-01",
                actor=OPS,
                now=now,
            )
            reg.publish(actor=OPS, now=now)
        finally:
            reg.close()

    def fetcher(
        self, cache: Path, mirrors: list[str] | None = None, grace: int = DAY
    ) -> RegistryFetcher:
        return RegistryFetcher(mirrors or [self.real], cache, self.pinned(), self.session, grace)


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Network]:
    data = tmp_path / "reg"
    reg = Registry.init(
        data, root_keys_dir=tmp_path / "offline", root_keys=3, threshold=2, now=T0, actor=OPS
    )
    reg.set_country("DE", authority="BfArM", endpoints=[], contact="", actor=OPS, now=T0)
    reg.set_estimate(
        country="DE",
        substance="morphine",
        year=2026,
        quantity_mg=100,
        kind="estimate",
        effective="2026-01-01",
        actor=OPS,
        now=T0,
    )
    reg.publish(actor=OPS, now=T0)
    reg.close()
    real = TestServer(create_app(RegistryConfig(directory=data)), host="127.0.0.1", port=0)
    await real.start_server()
    async with aiohttp.ClientSession() as session:
        network = Network(
            data_dir=data, real=str(real.make_url("")).rstrip("/"), evil="", session=session
        )

        async def proxy(request: web.Request) -> web.StreamResponse:
            async with session.get(network.real + request.path_qs) as upstream:
                body = await upstream.read()
                status = upstream.status
            if network.transform:
                result = network.transform[0](request.path, status, body)
                return await result if isinstance(result, Awaitable) else result
            return web.Response(status=status, body=body)

        evil_app = web.Application()
        evil_app.router.add_get("/{tail:.*}", proxy)
        evil = TestServer(evil_app, host="127.0.0.1", port=0)
        await evil.start_server()
        network.evil = str(evil.make_url("")).rstrip("/")
        yield network
        await evil.close()
    await real.close()


async def test_first_fetch_then_delta_then_cache_reload(net: Network, tmp_path: Path) -> None:
    fetcher = net.fetcher(tmp_path / "cache")
    assert fetcher.current is None
    assert fetcher.status(T0).state is Freshness.EXPIRED
    view = await fetcher.refresh(now=T0 + 1)
    assert (view.version, view.balance_inputs("DE", "morphine", 2026)) == (1, (100, 0))
    snapshot_file = tmp_path / "cache" / "snapshot.cbor"
    written = snapshot_file.stat()
    net.change(T0 + 10)
    view = await fetcher.refresh(now=T0 + 11)
    assert (view.version, view.balance_inputs("DE", "codeine", 2026)) == (2, (None, 5))
    # A delta only rewrites the small deltas file, never the (multi-megabyte) snapshot.
    assert (snapshot_file.stat().st_ino, snapshot_file.stat().st_mtime_ns) == (
        written.st_ino,
        written.st_mtime_ns,
    )
    # A restarted node gets the same state from its cache, with no network at all.
    restarted = RegistryFetcher(
        ["http://127.0.0.1:9"], tmp_path / "cache", net.pinned(), net.session, DAY
    )
    assert restarted.current is not None
    assert restarted.current.version == 2
    assert restarted.current.state == view.state


async def test_freshness_fresh_stale_in_grace_expired(net: Network, tmp_path: Path) -> None:
    fetcher = net.fetcher(tmp_path / "cache", grace=DAY)
    view = await fetcher.refresh(now=T0 + 1)
    assert fetcher.status(T0 + 1).state is Freshness.FRESH
    stale = fetcher.status(view.expires_at + 10)
    assert stale.state is Freshness.STALE_IN_GRACE
    assert stale.accepting
    assert "grace until" in stale.describe()
    expired = fetcher.status(view.expires_at + DAY)
    assert expired.state is Freshness.EXPIRED
    assert not expired.accepting
    assert "pending" in expired.describe()
    assert fetcher.age(T0 + 61) == 61


async def test_unreachable_registry_keeps_the_cached_state(net: Network, tmp_path: Path) -> None:
    fetcher = net.fetcher(tmp_path / "cache")
    before = await fetcher.refresh(now=T0 + 1)
    broken = RegistryFetcher(
        ["http://127.0.0.1:9"],
        tmp_path / "cache",
        net.pinned(),
        net.session,
        DAY,
        timeout_seconds=5,
    )
    with pytest.raises(RegistryFetchError, match=r"127\.0\.0\.1:9"):
        await broken.refresh(now=before.expires_at + 1)
    assert broken.current is not None
    assert broken.current.version == before.version
    assert broken.status(before.expires_at + 1).state is Freshness.STALE_IN_GRACE


async def test_evil_first_mirror_falls_back_to_the_next(net: Network, tmp_path: Path) -> None:
    net.transform.append(lambda path, status, body: web.Response(body=body[:-1] + b"\x00"))
    fetcher = net.fetcher(tmp_path / "cache", [net.evil, net.real])
    view = await fetcher.refresh(now=T0 + 1)
    assert view.version == 1


def flip_last(path: str, status: int, body: bytes) -> web.Response:
    if path.startswith(("/v1/snapshot", "/v1/delta")) and body:
        return web.Response(body=body[:-1] + bytes([body[-1] ^ 1]))
    return web.Response(status=status, body=body)


async def oversized(path: str, status: int, body: bytes) -> web.StreamResponse:
    if path.startswith(("/v1/delta", "/v1/snapshot")):
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        return _Huge(response)
    return web.Response(status=status, body=body)


class _Huge(web.StreamResponse):
    """A chunked answer of 17 MB of zeros, with no Content-Length to refuse up front."""

    def __init__(self, _: web.StreamResponse) -> None:
        super().__init__()
        self.enable_chunked_encoding()

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        writer = await super().prepare(request)
        chunk = b"\x00" * (1024 * 1024)
        for _ in range(49):
            await self.write(chunk)
        return writer


def malformed(path: str, status: int, body: bytes) -> web.Response:
    if path.startswith("/v1/delta"):
        return web.Response(body=b"\x9f\x01\xff")  # an indefinite-length array
    return web.Response(status=status, body=body)


def server_error(path: str, status: int, body: bytes) -> web.Response:
    return web.Response(status=500, text="boom")


ATTACKS: dict[str, tuple[Transform, str]] = {
    "tampered snapshot or delta": (flip_last, "SignerError"),
    "oversized chunked response": (oversized, "SizeLimitError"),
    "oversized declared length": (
        lambda path, status, body: web.Response(body=b"\x00" * (49 * 1024 * 1024)),
        "exceeds the cap",
    ),
    "malformed response": (malformed, "RecordError"),
    "mirror error status": (server_error, "HTTP 500"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_evil_mirror_is_refused_and_state_untouched(
    net: Network, tmp_path: Path, attack: str
) -> None:
    transform, reason = ATTACKS[attack]
    good = net.fetcher(tmp_path / "cache")
    before = await good.refresh(now=T0 + 1)
    net.change(T0 + 10)
    fetcher = RegistryFetcher([net.evil], tmp_path / "cache", net.pinned(), net.session, DAY)
    net.transform.append(transform)
    with pytest.raises(RegistryFetchError, match=reason):
        await fetcher.refresh(now=T0 + 11)
    assert fetcher.current is not None
    assert fetcher.current.version == before.version
    assert fetcher.current.state == before.state
    # The cache on disk is still the good state.
    reloaded = RegistryFetcher([net.real], tmp_path / "cache", net.pinned(), net.session, DAY)
    assert reloaded.current is not None
    assert reloaded.current.version == before.version


async def test_stale_mirror_rollback_is_refused(net: Network, tmp_path: Path) -> None:
    async with net.session.get(net.real + "/v1/snapshot/1") as r:
        old_snapshot = await r.read()
    net.change(T0 + 10)
    fetcher = net.fetcher(tmp_path / "cache")
    assert (await fetcher.refresh(now=T0 + 11)).version == 2

    def stale(path: str, status: int, body: bytes) -> web.Response:
        if path.startswith("/v1/delta"):
            return web.Response(status=404)  # the mirror does not know version 2
        if path.startswith("/v1/snapshot"):
            return web.Response(body=old_snapshot)
        return web.Response(status=status, body=body)

    net.transform.append(stale)
    evil = RegistryFetcher([net.evil], tmp_path / "cache", net.pinned(), net.session, DAY)
    with pytest.raises(RegistryFetchError, match="RollbackError"):
        await evil.refresh(now=T0 + 12)
    assert evil.current is not None
    assert evil.current.version == 2


async def test_mix_and_match_delta_is_refused(net: Network, tmp_path: Path) -> None:
    fetcher = net.fetcher(tmp_path / "cache")
    await fetcher.refresh(now=T0 + 1)
    net.change(T0 + 10)
    net.change(T0 + 20, substance="fentanyl")
    async with net.session.get(net.real + "/v1/delta/2") as r:
        wrong_base = await r.read()  # the delta 2->3, while the node holds 1

    def swap(path: str, status: int, body: bytes) -> web.Response:
        if path.startswith("/v1/delta"):
            return web.Response(body=wrong_base)
        return web.Response(status=status, body=body)

    net.transform.append(swap)
    evil = RegistryFetcher([net.evil], tmp_path / "cache", net.pinned(), net.session, DAY)
    with pytest.raises(RegistryFetchError, match="MixAndMatchError"):
        await evil.refresh(now=T0 + 21)
    assert evil.current is not None
    assert evil.current.version == 1


async def test_frozen_registry_is_detected(net: Network, tmp_path: Path) -> None:
    fetcher = net.fetcher(tmp_path / "cache")
    view = await fetcher.refresh(now=T0 + 1)
    # Nothing newer is published: at a time past the expiry, the registry looks frozen.
    with pytest.raises(RegistryFetchError, match="expired"):
        await fetcher.refresh(now=view.expires_at + 1)
    fresh = RegistryFetcher([net.real], tmp_path / "other", net.pinned(), net.session, DAY)
    with pytest.raises(RegistryFetchError, match="ExpiredSnapshotError"):
        await fresh.refresh(now=view.expires_at + 1)
    assert fresh.current is None


async def test_root_rotation_is_followed_and_forged_root_refused(
    net: Network, tmp_path: Path
) -> None:
    fetcher = net.fetcher(tmp_path / "cache")
    await fetcher.refresh(now=T0 + 1)
    forged = sign_root(
        RootMetadata(
            version=2, issued_at=T0, threshold=1, root_keys=(bytes(32),), snapshot_keys=(bytes(32),)
        ),
        [hashlib.sha256(b"attacker").digest()],
    )

    def forge(path: str, status: int, body: bytes) -> web.Response:
        if path == "/v1/root/2":
            return web.Response(body=forged)
        return web.Response(status=status, body=body)

    net.transform.append(forge)
    evil = RegistryFetcher([net.evil], tmp_path / "cache", net.pinned(), net.session, DAY)
    with pytest.raises(RegistryFetchError, match="RootError"):
        await evil.refresh(now=T0 + 2)
    assert evil.trusted.root.version == 1
    reg = net.registry()
    try:
        old = [read_seed(net.data_dir.parent / "offline" / f"root-{i}.key") for i in (1, 2)]
        new = [hashlib.sha256(f"new-{i}".encode()).digest() for i in range(3)]
        reg.rotate_root(
            old_seeds=old,
            new_seeds=new,
            threshold=2,
            rotate_snapshot_key=True,
            actor=OPS,
            now=T0 + 5,
        )
    finally:
        reg.close()
    view = await fetcher.refresh(now=T0 + 6)
    assert (fetcher.trusted.root.version, view.root_version, view.version) == (2, 2, 2)
    restarted = RegistryFetcher([net.real], tmp_path / "cache", net.pinned(), net.session, DAY)
    assert restarted.trusted.root.version == 2


async def test_tampered_cache_is_not_trusted(net: Network, tmp_path: Path) -> None:
    fetcher = net.fetcher(tmp_path / "cache")
    await fetcher.refresh(now=T0 + 1)
    snapshot = tmp_path / "cache" / "snapshot.cbor"
    data = bytearray(snapshot.read_bytes())
    data[-1] ^= 1
    snapshot.write_bytes(bytes(data))
    reloaded = net.fetcher(tmp_path / "cache")
    assert reloaded.current is None
    assert reloaded.last_error is not None
    assert "cache refused" in reloaded.last_error


async def test_peer_heads_are_compared_for_split_view(net: Network, tmp_path: Path) -> None:
    fetcher = net.fetcher(tmp_path / "cache")
    await fetcher.refresh(now=T0 + 1)
    older_head = await fetcher.fetch_head()
    net.change(T0 + 10)
    await fetcher.refresh(now=T0 + 11)
    peer = await fetcher.check_peer_head(older_head)  # a peer one version behind: consistent
    assert peer.version == 1
    # The registry (its snapshot key) signs a different log of the same size for a peer.
    seed = read_seed(net.data_dir / "snapshot.key")
    view = fetcher.current
    assert view is not None
    forked = sign_payload(
        SignedHead(
            version=view.version,
            issued_at=T0,
            root_version=1,
            log_size=view.log_size,
            log_root=b"\x13" * 32,
        ),
        seed,
    )
    with pytest.raises(SplitViewError):
        await fetcher.check_peer_head(forked)
    forked_smaller = sign_payload(
        SignedHead(version=1, issued_at=T0, root_version=1, log_size=2, log_root=b"\x13" * 32), seed
    )
    with pytest.raises(SplitViewError):
        await fetcher.check_peer_head(forked_smaller)
    with pytest.raises(ProtocolError):
        await fetcher.check_peer_head(b"not a head")


async def test_cache_survives_a_root_change_before_new_data(net: Network, tmp_path: Path) -> None:
    fetcher = net.fetcher(tmp_path / "cache")
    await fetcher.refresh(now=T0 + 1)
    reg = net.registry()
    try:
        old = [read_seed(net.data_dir.parent / "offline" / f"root-{i}.key") for i in (1, 3)]
        new = [hashlib.sha256(f"new-{i}".encode()).digest() for i in range(3)]
        reg.rotate_root(
            old_seeds=old,
            new_seeds=new,
            threshold=2,
            rotate_snapshot_key=False,
            actor=OPS,
            now=T0 + 5,
        )
    finally:
        reg.close()

    def no_snapshots(path: str, status: int, body: bytes) -> web.Response:
        if path.startswith("/v1/snapshot"):
            return web.Response(status=503)
        return web.Response(status=status, body=body)

    net.transform.append(no_snapshots)
    cut_off = RegistryFetcher([net.evil], tmp_path / "cache", net.pinned(), net.session, DAY)
    with pytest.raises(RegistryFetchError, match="HTTP 503"):
        await cut_off.refresh(now=T0 + 6)
    assert cut_off.trusted.root.version == 2  # the verified root is kept and cached
    restarted = RegistryFetcher([net.real], tmp_path / "cache", net.pinned(), net.session, DAY)
    assert restarted.last_error is None
    assert restarted.trusted.root.version == 2
    assert restarted.current is not None
    assert restarted.current.version == 1
    view = await restarted.refresh(now=T0 + 7)
    assert (view.version, view.root_version) == (2, 2)


async def test_oversized_delta_falls_back_to_the_full_snapshot(
    net: Network, tmp_path: Path
) -> None:
    fetcher = net.fetcher(tmp_path / "cache")
    await fetcher.refresh(now=T0 + 1)
    net.change(T0 + 10)

    def huge_delta(path: str, status: int, body: bytes) -> web.Response:
        if path.startswith("/v1/delta"):
            return web.Response(body=b"\x00" * (17 * 1024 * 1024))
        return web.Response(status=status, body=body)

    net.transform.append(huge_delta)
    via_evil = RegistryFetcher([net.evil], tmp_path / "cache", net.pinned(), net.session, DAY)
    view = await via_evil.refresh(now=T0 + 11)
    assert view.version == 2


async def _header_proxy(
    net: Network, seen: list[tuple[str, str | None, int]], *, no_deltas: bool = False
) -> TestServer:
    """A mirror forwarding If-None-Match and ETag; with ``no_deltas`` it has no delta files."""

    async def proxy(request: web.Request) -> web.StreamResponse:
        if no_deltas and request.path.startswith("/v1/delta/"):
            seen.append((request.path, request.headers.get("If-None-Match"), 404))
            return web.Response(status=404)
        headers = {}
        if "If-None-Match" in request.headers:
            headers["If-None-Match"] = request.headers["If-None-Match"]
        async with net.session.get(net.real + request.path_qs, headers=headers) as upstream:
            body = await upstream.read()
            status = upstream.status
            etag = upstream.headers.get("ETag")
        seen.append((request.path, request.headers.get("If-None-Match"), status))
        return web.Response(status=status, body=body, headers={"ETag": etag} if etag else {})

    app = web.Application()
    app.router.add_get("/{tail:.*}", proxy)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server


async def test_snapshot_conditional_get_304_is_checked_unchanged(
    net: Network, tmp_path: Path
) -> None:
    seen: list[tuple[str, str | None, int]] = []
    mirror = await _header_proxy(net, seen, no_deltas=True)
    try:
        fetcher = net.fetcher(tmp_path / "cache", [str(mirror.make_url("")).rstrip("/")])
        first = await fetcher.refresh(now=T0 + 1)
        snapshot_gets = [s for s in seen if s[0] == "/v1/snapshot/latest"]
        assert [(s[1], s[2]) for s in snapshot_gets] == [(None, 200)]
        seen.clear()
        again = await fetcher.refresh(now=T0 + 2)
        assert again == first
        snapshot_gets = [s for s in seen if s[0] == "/v1/snapshot/latest"]
        assert len(snapshot_gets) == 1
        assert snapshot_gets[0][1] is not None
        assert snapshot_gets[0][1].startswith('"')
        assert snapshot_gets[0][2] == 304
        assert fetcher.last_error is None
        # After a publication the same conditional request gets the new snapshot.
        net.change(T0 + 10)
        seen.clear()
        view = await fetcher.refresh(now=T0 + 11)
        assert view.version == 2
        assert [s[2] for s in seen if s[0] == "/v1/snapshot/latest"] == [200]
    finally:
        await mirror.close()


async def test_unconditional_304_is_refused(net: Network, tmp_path: Path) -> None:
    fetcher = net.fetcher(tmp_path / "cache", [net.evil])
    net.transform.append(lambda path, status, body: web.Response(status=304))
    with pytest.raises(RegistryFetchError, match="not conditional"):
        await fetcher.refresh(now=T0 + 1)
    assert fetcher.current is None


async def test_signed_head_is_kept_with_each_version_and_cached(
    net: Network, tmp_path: Path
) -> None:
    fetcher = net.fetcher(tmp_path / "cache")
    await fetcher.refresh(now=T0 + 1)
    head_v1 = fetcher.head
    assert head_v1 is not None
    assert SignedHead.from_payload(Sign1Message.from_bytes(head_v1).payload).version == 1
    net.change(T0 + 10)
    await fetcher.refresh(now=T0 + 11)
    head_v2 = fetcher.head
    assert head_v2 is not None
    assert head_v2 != head_v1
    # Exactly the bytes the registry signed, not a re-encoding.
    async with net.session.get(f"{net.real}/v1/head/2") as response:
        assert await response.read() == head_v2
    reloaded = net.fetcher(tmp_path / "cache")
    assert reloaded.head == head_v2
    # A cached head that is not the head of the cached view is dropped, not served.
    (tmp_path / "cache" / "head.cbor").write_bytes(head_v1)
    assert net.fetcher(tmp_path / "cache").head is None


async def test_a_head_not_matching_the_view_is_not_kept(net: Network, tmp_path: Path) -> None:
    fetcher = net.fetcher(tmp_path / "cache", [net.evil])
    seed = read_seed(net.data_dir / "snapshot.key")

    def forged_head(path: str, status: int, body: bytes) -> web.Response:
        if path.startswith("/v1/head/"):
            head = SignedHead(
                version=1, issued_at=T0, root_version=1, log_size=1, log_root=b"\x13" * 32
            )
            return web.Response(body=sign_payload(head, seed))
        return web.Response(status=status, body=body)

    net.transform.append(forged_head)
    view = await fetcher.refresh(now=T0 + 1)
    assert view.version == 1  # the data itself is verified and kept
    assert fetcher.head is None


@pytest.mark.parametrize(
    ("now", "expected"),
    [(999, "fresh"), (1000, "stale-in-grace"), (1099, "stale-in-grace"), (1100, "expired")],
    ids=["before expiry", "at expiry", "last second of grace", "end of grace"],
)
def test_one_freshness_rule_at_its_boundaries(now: int, expected: str) -> None:
    # The exchange, /readyz and the status all classify with this function.
    assert classify(1000, 100, now) == expected
