"""SplitViewMonitor: a partner node's registry head is verified, then compared with this node's.

A real registry server and the real fetcher on loopback; the partner node is a small server
answering ``/peer/v1/registry-head`` with what each case gives it (or nothing: it is down).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from permitnet.node.app import create_app as create_node_app
from permitnet.node.config import NodeConfig
from permitnet.node.delivery import NodeIdentity
from permitnet.node.keystore import SigningKey, generate_seed
from permitnet.node.peer_auth import sign_request
from permitnet.node.registry_fetch import RegistryFetcher
from permitnet.node.registry_gossip import (
    ALERT_REGISTRY_SPLIT_VIEW,
    PATH_REGISTRY_HEAD,
    SPLIT_VIEW_KEY,
    HeadOutcome,
    SplitViewMonitor,
)
from permitnet.node.store import Store
from permitnet.protocol.cose import Sign1Message
from permitnet.protocol.doc_examples import example_seed
from permitnet.protocol.registry_snapshot import SignedHead, sign_payload
from permitnet.registry.app import RegistryConfig, create_app
from permitnet.registry.keys import read_seed
from permitnet.registry.service import Registry
from tests.node.test_exchange_http import NOW, make_view

if TYPE_CHECKING:
    from pathlib import Path

T0 = 1_780_000_000
DAY = 86_400
OPS = "cli:test"


@dataclass
class World:
    """A registry at v2, a fetcher (the node "DE") and a partner node "FR" answering heads."""

    data_dir: Path
    registry_url: str
    session: aiohttp.ClientSession
    store: Store
    #: What the partner node answers next: (status, body).
    answer: list[tuple[int, bytes]] = field(default_factory=list)
    partner_url: str = ""
    authorizations: list[str] = field(default_factory=list)

    def publish(self, now: int, substance: str) -> None:
        reg = Registry.open(self.data_dir)
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

    def fetcher(self, cache: Path) -> RegistryFetcher:
        reg = Registry.open(self.data_dir)
        try:
            pinned = reg.store.root(1)
        finally:
            reg.close()
        return RegistryFetcher([self.registry_url], cache, pinned, self.session, DAY)

    def sign(self, head: SignedHead, seed: bytes | None = None) -> bytes:
        return sign_payload(head, seed or read_seed(self.data_dir / "snapshot.key"))

    def monitor(self, fetcher: RegistryFetcher, url: str | None = None) -> SplitViewMonitor:
        return SplitViewMonitor(
            source=fetcher,
            store=self.store,
            identity=NodeIdentity(country="DE", key=SigningKey.from_seed(generate_seed())),
            session=self.session,
            partners=lambda: ["DE", "FR"],
            endpoints=lambda _country: [url or self.partner_url],
            clock=lambda: T0 + 100,
            request_timeout=5.0,
        )

    async def alerts(self) -> list[tuple[str, str, str]]:
        async with self.store.read() as tx:
            rows = await tx.fetchall("SELECT kind, document_id, message FROM alerts ORDER BY id")
        return [(str(k), str(d), str(m)) for k, d, m in rows]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    data = tmp_path / "reg"
    reg = Registry.init(
        data, root_keys_dir=tmp_path / "offline", root_keys=1, threshold=1, now=T0, actor=OPS
    )
    reg.set_country("DE", authority="BfArM", endpoints=[], contact="", actor=OPS, now=T0)
    reg.publish(actor=OPS, now=T0)
    reg.close()
    registry = TestServer(create_app(RegistryConfig(directory=data)), host="127.0.0.1", port=0)
    await registry.start_server()
    store = await Store.open(tmp_path / "node.db", clock=lambda: T0 + 100)
    async with aiohttp.ClientSession() as session:
        w = World(
            data_dir=data,
            registry_url=str(registry.make_url("")).rstrip("/"),
            session=session,
            store=store,
        )

        async def head(request: web.Request) -> web.Response:
            w.authorizations.append(request.headers.get("Authorization", ""))
            status, body = w.answer[0]
            return web.Response(status=status, body=body, content_type="application/cbor")

        partner_app = web.Application()
        partner_app.router.add_get(PATH_REGISTRY_HEAD, head)
        partner = TestServer(partner_app, host="127.0.0.1", port=0)
        await partner.start_server()
        w.partner_url = str(partner.make_url("")).rstrip("/")
        try:
            yield w
        finally:
            await partner.close()
            await store.close()
    await registry.close()


# How the partner's answer is made from the world, the head of v1 and the head of v2.
Answer = Callable[[World, bytes, bytes], tuple[int, bytes]]


def _forked(w: World, version: int, size_from: bytes, *, root: int = 1) -> bytes:
    """A head the registry's own snapshot key signed for a log other than the published one."""
    real = SignedHead.from_payload(Sign1Message.from_bytes(size_from).payload)
    return w.sign(
        SignedHead(
            version=version,
            issued_at=T0,
            root_version=root,
            log_size=real.log_size,
            log_root=b"\x13" * 32,
        )
    )


CASES: list[tuple[str, int, Answer, HeadOutcome]] = [
    # (name, the version this node holds, the partner's answer, the outcome)
    ("same head", 2, lambda w, h1, h2: (200, h2), HeadOutcome.CONSISTENT),
    ("peer behind, consistent", 2, lambda w, h1, h2: (200, h1), HeadOutcome.CONSISTENT),
    ("peer ahead, consistent", 1, lambda w, h1, h2: (200, h2), HeadOutcome.CONSISTENT),
    (
        "forked log at equal size",
        2,
        lambda w, h1, h2: (200, _forked(w, 2, h2)),
        HeadOutcome.SPLIT_VIEW,
    ),
    (
        "inconsistent larger head",
        1,
        lambda w, h1, h2: (200, _forked(w, 2, h2)),
        HeadOutcome.SPLIT_VIEW,
    ),
    (
        "inconsistent smaller head",
        2,
        lambda w, h1, h2: (200, _forked(w, 1, h1)),
        HeadOutcome.SPLIT_VIEW,
    ),
    ("garbage", 2, lambda w, h1, h2: (200, b"\xff not cbor"), HeadOutcome.UNVERIFIED),
    ("empty answer", 2, lambda w, h1, h2: (200, b""), HeadOutcome.UNVERIFIED),
    (
        "unsigned head (COSE with a bad signature)",
        2,
        lambda w, h1, h2: (200, h2[:-1] + bytes([h2[-1] ^ 1])),
        HeadOutcome.UNVERIFIED,
    ),
    (
        "head signed by a key the root does not list",
        2,
        lambda w, h1, h2: (
            200,
            sign_payload(
                SignedHead(
                    version=2, issued_at=T0, root_version=1, log_size=1, log_root=b"\x13" * 32
                ),
                generate_seed(),
            ),
        ),
        HeadOutcome.UNVERIFIED,
    ),
    (
        "head signed under another root version",
        2,
        lambda w, h1, h2: (200, _forked(w, 2, h2, root=2)),
        HeadOutcome.NOT_COMPARED,
    ),
    ("peer refuses (HTTP 503)", 2, lambda w, h1, h2: (503, b"{}"), HeadOutcome.UNREACHABLE),
    ("oversized answer", 2, lambda w, h1, h2: (200, b"\x00" * 100_000), HeadOutcome.UNREACHABLE),
]


@pytest.mark.parametrize(
    ("held", "answer", "expected"),
    [pytest.param(held, answer, expected, id=name) for name, held, answer, expected in CASES],
)
async def test_peer_head_cases(
    world: World, tmp_path: Path, held: int, answer: Answer, expected: HeadOutcome
) -> None:
    fetcher = world.fetcher(tmp_path / "cache")
    await fetcher.refresh(now=T0 + 1)
    head_v1 = fetcher.head
    assert head_v1 is not None
    world.publish(T0 + 10, "codeine")
    if held == 2:
        await fetcher.refresh(now=T0 + 11)
        head_v2 = fetcher.head
    else:
        other = world.fetcher(tmp_path / "other-cache")
        await other.refresh(now=T0 + 11)
        head_v2 = other.head
    assert head_v2 is not None
    assert head_v2 != head_v1
    world.answer.append(answer(world, head_v1, head_v2))

    check = await world.monitor(fetcher).check_peer("FR")

    alerts = await world.alerts()
    if expected is HeadOutcome.SPLIT_VIEW:
        assert check.outcome is HeadOutcome.SPLIT_VIEW, check.detail
        assert [a[0] for a in alerts] == [ALERT_REGISTRY_SPLIT_VIEW]
        # The evidence: both registry-signed heads, in full.
        assert world.answer[0][1].hex() in alerts[0][2]
        assert (fetcher.head or b"").hex() in alerts[0][2]
    else:
        assert check.outcome is expected, check.detail
        assert alerts == []
    # Every request to the partner is signed like the other /peer/v1 requests.
    assert all(a.startswith("PermitNet-COSE ") for a in world.authorizations), world.authorizations


async def test_split_view_is_alerted_once_per_peer_head(world: World, tmp_path: Path) -> None:
    fetcher = world.fetcher(tmp_path / "cache")
    await fetcher.refresh(now=T0 + 1)
    head = fetcher.head
    assert head is not None
    world.answer.append((200, _forked(world, 1, head)))
    monitor = world.monitor(fetcher)
    first = await monitor.check_all()
    second = await monitor.check_all()
    # "DE" itself is skipped: only FR is asked.
    assert [c.country for c in first] == ["FR"]
    assert [c.outcome for c in first + second] == [HeadOutcome.SPLIT_VIEW] * 2
    assert monitor.split_views == ["FR"]
    assert len(await world.alerts()) == 1
    # A different conflicting head is new evidence: a second alert.
    world.answer[0] = (
        200,
        world.sign(
            SignedHead(
                version=1, issued_at=T0 + 1, root_version=1, log_size=1, log_root=b"\x14" * 32
            )
        ),
    )
    await monitor.check_all()
    assert len(await world.alerts()) == 2


async def test_peer_down_is_unreachable_not_alerted(world: World, tmp_path: Path) -> None:
    fetcher = world.fetcher(tmp_path / "cache")
    await fetcher.refresh(now=T0 + 1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    check = await world.monitor(fetcher, url=closed).check_peer("FR")
    assert check.outcome is HeadOutcome.UNREACHABLE
    assert "unreachable" in check.detail
    assert await world.alerts() == []


async def test_no_view_yet_is_not_compared(world: World, tmp_path: Path) -> None:
    fetcher = world.fetcher(tmp_path / "cache")
    other = world.fetcher(tmp_path / "other")
    await other.refresh(now=T0 + 1)
    assert other.head is not None
    world.answer.append((200, other.head))
    check = await world.monitor(fetcher).check_peer("FR")
    assert check.outcome is HeadOutcome.NOT_COMPARED
    assert await world.alerts() == []


async def test_head_endpoint_without_a_fetcher(tmp_path: Path) -> None:
    """A node given its view (no fetcher, so no signed head) answers 503 and runs no loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = NodeConfig(
        data_dir=tmp_path,
        country="DE",
        authority_name="BfArM",
        registry_urls=("http://127.0.0.1:9",),
        registry_root=tmp_path / "root.cbor",
        public_url=url,
    )
    app = create_node_app(
        config,
        signing_key=SigningKey.from_seed(example_seed("DE")),
        registry_view=make_view({"DE": (url,), "IN": ()}),
        clock=lambda: NOW,
    )
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        assert SPLIT_VIEW_KEY not in app
        async with aiohttp.ClientSession() as session:
            header = sign_request(
                method="GET",
                target=PATH_REGISTRY_HEAD,
                body=b"",
                sender="IN",
                audience="DE",
                signing_key=example_seed("IN"),
                kid=SigningKey.from_seed(example_seed("IN")).kid,
                now=NOW,
            )
            async with session.get(
                url + PATH_REGISTRY_HEAD, headers={"Authorization": header}
            ) as response:
                assert response.status == 503
                assert (await response.json())["error"]["code"] == "registry_unavailable"
            async with session.get(url + PATH_REGISTRY_HEAD) as response:
                assert response.status == 401
            # A request signed by a key the registry does not list is refused too.
            rogue = sign_request(
                method="GET",
                target=PATH_REGISTRY_HEAD,
                body=b"",
                sender="IN",
                audience="DE",
                signing_key=bytes(range(5, 37)),
                kid=SigningKey.from_seed(bytes(range(5, 37))).kid,
                now=NOW,
            )
            async with session.get(
                url + PATH_REGISTRY_HEAD, headers={"Authorization": rogue}
            ) as response:
                assert response.status == 403
    finally:
        await runner.cleanup()
