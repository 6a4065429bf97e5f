"""A real permitnet network on loopback: the INCB registry server and country nodes.

Everything is real except the machines: the registry is ``permitnet.registry.app`` serving its
SQLite data directory, operated through its admin HTTP API; keys are enrolled with signed
requests and approved; each node is ``permitnet.node.app.create_app`` on its own socket with its
own database, fetching and verifying signed registry snapshots with the real fetcher, and
exchanging documents with its peers over HTTP.

Use the ``network`` fixture::

    async def test_something(network: Network) -> None:
        de, fr = await network.start("DE", "FR")      # enrolled, estimates published, running
        ic = await de.issue("import_certificate", ic_body(exporting_country="FR"))
        await network.wait_until(lambda: fr.holds(ic.id))

Time is the real clock (documents carry today's dates); waits are on conditions with a bound.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from permitnet.node.app import REGISTRY_KEY, SERVICES_KEY, STORE_KEY, create_app, refresh_once
from permitnet.node.config import NodeConfig
from permitnet.node.delivery import Backoff
from permitnet.node.keystore import SigningKey, generate_seed
from permitnet.node.peer_http import DELIVERY_BACKOFF_KEY, EXCHANGE_KEY, PULL_FROM_KEY
from permitnet.node.registry_fetch import RegistryFetcher
from permitnet.protocol.registry_requests import build_enrollment_request
from permitnet.registry.app import RegistryConfig
from permitnet.registry.app import create_app as create_registry_app
from permitnet.registry.service import Registry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from permitnet.node.lifecycle import NodeServices
    from permitnet.node.peer_http import PeerExchange
    from permitnet.node.store import DocumentRecord, Store

#: The year the test estimates are published for: the current one, as documents use today.
YEAR = dt.datetime.now(dt.UTC).year
#: A generous default estimate (mg of base) so that only tests about estimates hit it.
DEFAULT_ESTIMATE_MG = 10**12


def today(offset_days: int = 0) -> str:
    """Today's date (UTC) plus ``offset_days``, as ISO text."""
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=offset_days)).isoformat()


def bound_socket(port: int = 0) -> socket.socket:
    """A loopback TCP socket bound (not listening yet) to ``port`` (0: a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


async def wait_until(condition: Callable[[], Awaitable[bool]], *, within: float = 20.0) -> None:
    """Wait until ``condition()`` is true, checking every 20 ms; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.02)


def ic_body(*, exporting_country: str, mg: int = 4000, **changes: Any) -> dict[str, Any]:
    """The API body of an import certificate for ``mg`` milligrams of morphine."""
    return {
        "number": "IC-1",
        "date_of_issue": today(),
        "importer": {"name": "Pharma GmbH", "address": "Hauptstr. 1\nBerlin", "licence": "L-1"},
        "exporter": {"name": "Laboratoires SA", "address": "1 rue X, Lyon", "licence": "L-9"},
        "exporting_country": exporting_country,
        "items": [{"substance": "morphine", "quantity_mg": mg, "preparation": "bulk powder"}],
        "valid_from": today(),
        "valid_until": today(180),
        "several_consignments": True,
        "conditions": "",
        "estimate_year": YEAR,
    } | changes


def ea_body(ic_id: str, *, mg: int = 4000, **changes: Any) -> dict[str, Any]:
    """The API body of an export authorization against certificate ``ic_id``."""
    return {
        "import_certificate": ic_id,
        "number": "EA-1",
        "date_of_issue": today(),
        "items": [{"substance": "morphine", "quantity_mg": mg, "preparation": "bulk powder"}],
        "valid_from": today(),
        "valid_until": today(90),
        "route": "by air",
        "transport_mode": "air",
        "transit_countries": [],
    } | changes


@dataclass
class RegistryServer:
    """The running registry and an operator session on its admin API."""

    url: str
    token: str
    runner: web.AppRunner
    session: aiohttp.ClientSession
    pinned_root: bytes = b""

    async def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST to the admin API as the operator; return the JSON answer."""
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.session.post(
            f"{self.url}/v1/admin/{path}", json=body or {}, headers=headers
        ) as response:
            answer = await response.json()
            assert response.status in {200, 201}, answer
            return answer

    async def enroll(self, country: str, endpoint: str, key: SigningKey) -> None:
        """Register ``country`` with its node endpoint and enroll and approve its key."""
        await self.admin(
            "countries",
            {"code": country, "authority": f"Authority {country}", "endpoints": [endpoint]},
        )
        await self.enroll_key(country, key)

    async def enroll_key(self, country: str, key: SigningKey) -> None:
        """Submit a registered country's signed enrollment request and approve it."""
        now = int(time.time())
        request = build_enrollment_request(
            key.seed, country=country, valid_from=now - 86_400, requested_at=now
        )
        async with self.session.post(f"{self.url}/v1/key-requests", data=request) as response:
            answer = await response.json()
            assert response.status == 201, answer
        await self.admin(f"key-requests/{answer['id']}/approve", {"fingerprint": key.kid.hex()})

    async def set_estimate(
        self, country: str, mg: int, *, kind: str = "estimate", substance: str = "morphine"
    ) -> None:
        """Publish an annual (or supplementary) estimate for this year."""
        await self.admin(
            "estimates",
            {
                "country": country,
                "substance": substance,
                "year": YEAR,
                "quantity_mg": mg,
                "kind": kind,
                "effective": f"{YEAR}-01-01",
            },
        )

    async def revoke(self, key: SigningKey, *, compromised_at: int, reason: str) -> None:
        """Revoke a key as the operator."""
        await self.admin(
            f"keys/{key.kid.hex()}/revoke", {"compromised_at": compromised_at, "reason": reason}
        )

    async def publish(self, *, expiry_seconds: int | None = None) -> int:
        """Sign and publish the next snapshot; return its version."""
        body = {} if expiry_seconds is None else {"expiry_seconds": expiry_seconds}
        return int((await self.admin("publish", body))["version"])


@dataclass
class RunningNode:
    """One country's node, running on its own loopback socket."""

    country: str
    url: str
    key: SigningKey
    data_dir: Path
    app: web.Application
    runner: web.AppRunner
    fetcher: RegistryFetcher

    @property
    def store(self) -> Store:
        """The node's open store."""
        return self.app[STORE_KEY]

    @property
    def services(self) -> NodeServices:
        """The node's lifecycle services."""
        return self.app[SERVICES_KEY]

    @property
    def exchange(self) -> PeerExchange:
        """The node's exchange (pipeline, delivery and pull workers)."""
        return self.app[EXCHANGE_KEY]

    async def refresh_registry(self) -> bool:
        """Fetch and verify the newest snapshot now (as the refresh loop does)."""
        return await refresh_once(self.app, self.fetcher.refresh)

    async def issue(self, doc_type: str, body: dict[str, Any]) -> DocumentRecord:
        """Draft and approve (four eyes) a document; fail if it is held."""
        draft = await self.services.create_draft(doc_type, body, actor="clerk")
        result = await self.services.approve_draft(draft.id, actor="officer")
        assert result.document is not None, result.draft.held_reason
        return result.document

    async def holds(self, document_id: str) -> bool:
        """Whether the node has stored the document."""
        async with self.store.read() as tx:
            return await tx.has_document(document_id)

    async def delivered(self, document_id: str) -> bool:
        """Whether every outbox row of the document has a stored receipt."""
        async with self.store.read() as tx:
            rows = await tx.outbox_for_document(document_id)
        return bool(rows) and all(r.delivered_at is not None and r.receipt for r in rows)

    async def count(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Run a ``SELECT count(*) ...`` on the node's database."""
        async with self.store.read() as tx:
            row = await tx.fetchone(sql, params)
        assert row is not None
        return int(row[0])


@dataclass
class Network:
    """A registry and the nodes started on it; everything is stopped at teardown."""

    tmp_path: Path
    registry: RegistryServer
    session: aiohttp.ClientSession
    nodes: dict[str, RunningNode] = field(default_factory=dict)
    sockets: dict[str, socket.socket] = field(default_factory=dict)
    keys: dict[str, SigningKey] = field(default_factory=dict)
    wait_until = staticmethod(wait_until)

    def endpoint(self, country: str) -> str:
        """The URL the country's node listens on (its socket is reserved on first use)."""
        if country not in self.sockets:
            self.sockets[country] = bound_socket()
        return f"http://127.0.0.1:{self.sockets[country].getsockname()[1]}"

    async def enroll(self, *countries: str, estimate_mg: int = DEFAULT_ESTIMATE_MG) -> None:
        """Register countries, enroll fresh keys, publish their estimates, and a snapshot."""
        for country in countries:
            self.keys[country] = SigningKey.from_seed(generate_seed())
            await self.registry.enroll(country, self.endpoint(country), self.keys[country])
            await self.registry.set_estimate(country, estimate_mg)
        await self.registry.publish()

    async def enroll_key_only(
        self, country: str, *, estimate_mg: int = DEFAULT_ESTIMATE_MG
    ) -> None:
        """Enroll a key for a country the test registered itself (e.g. with no endpoint)."""
        self.keys[country] = SigningKey.from_seed(generate_seed())
        await self.registry.enroll_key(country, self.keys[country])
        await self.registry.set_estimate(country, estimate_mg)
        await self.registry.publish()

    async def start(self, *countries: str, pull_from: tuple[str, ...] = ()) -> list[RunningNode]:
        """Enroll (if needed) and start nodes; each has fetched the registry once."""
        new = [c for c in countries if c not in self.keys]
        if new:
            await self.enroll(*new)
        started = []
        for country in countries:
            node = await self.start_node(country, pull_from=pull_from)
            started.append(node)
        return started

    async def start_node(
        self,
        country: str,
        *,
        pull_from: tuple[str, ...] = (),
        registry_grace_seconds: int = 3600,
    ) -> RunningNode:
        """Start (or restart, on the same port and data) the node of an enrolled country."""
        sock = self.sockets.pop(country, None) or bound_socket()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        data_dir = self.tmp_path / f"node-{country}"
        data_dir.mkdir(exist_ok=True)
        root_file = data_dir / "registry-root.cbor"
        root_file.write_bytes(self.registry.pinned_root)
        config = NodeConfig(
            data_dir=data_dir,
            country=country,
            authority_name=f"Authority {country}",
            registry_urls=(self.registry.url,),
            registry_root=root_file,
            public_url=url,
            registry_refresh_seconds=3600,
            registry_grace_seconds=registry_grace_seconds,
        )
        fetcher = RegistryFetcher(
            [self.registry.url],
            data_dir / "registry-cache",
            self.registry.pinned_root,
            self.session,
            grace_seconds=registry_grace_seconds,
        )
        app = create_app(config, signing_key=self.keys[country], registry_refresh=fetcher.refresh)
        app[PULL_FROM_KEY] = pull_from
        # Short retries so that tests about outages finish in seconds, not minutes.
        app[DELIVERY_BACKOFF_KEY] = Backoff(base=0.5, cap=2.0)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        node = RunningNode(
            country=country,
            url=url,
            key=self.keys[country],
            data_dir=data_dir,
            app=app,
            runner=runner,
            fetcher=fetcher,
        )
        await wait_until(lambda: _has_view(app))
        self.nodes[country] = node
        return node

    async def stop_node(self, country: str) -> None:
        """Stop a node gracefully and keep its port reserved for a restart."""
        node = self.nodes.pop(country)
        port = int(node.url.rsplit(":", 1)[1])
        await node.runner.cleanup()
        self.sockets[country] = bound_socket(port)

    async def refresh_all(self) -> None:
        """Make every running node fetch the newest snapshot now."""
        for node in self.nodes.values():
            await node.refresh_registry()


async def _has_view(app: web.Application) -> bool:
    return app[REGISTRY_KEY].view is not None


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    """A running registry (nothing enrolled yet) and a way to start nodes on it."""
    directory = tmp_path / "registry"
    now = int(time.time())
    registry = Registry.init(
        directory,
        root_keys_dir=tmp_path / "offline-root-keys",
        root_keys=1,
        threshold=1,
        now=now,
        actor="setup",
    )
    token = registry.add_token("operator", actor="setup", now=now)
    pinned_root = registry.store.root(1)
    registry.close()
    sock = bound_socket()
    runner = web.AppRunner(create_registry_app(RegistryConfig(directory=directory)))
    await runner.setup()
    await web.SockSite(runner, sock).start()
    async with aiohttp.ClientSession() as session:
        server = RegistryServer(
            url=f"http://127.0.0.1:{sock.getsockname()[1]}",
            token=token,
            runner=runner,
            session=session,
            pinned_root=pinned_root,
        )
        network = Network(tmp_path=tmp_path, registry=server, session=session)
        try:
            yield network
        finally:
            for node in list(network.nodes.values()):
                await node.runner.cleanup()
            for reserved in network.sockets.values():
                reserved.close()
            await runner.cleanup()
