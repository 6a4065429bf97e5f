"""Split view on loopback: the registry shows France a different log, and the nodes notice.

A real registry serves Germany and India. A second registry instance is a fork of it: same data
directory up to a point, so the same root and snapshot keys, and then a different record
published at the same version. France's node fetches from the fork. Each node runs with its own
registry fetcher (``create_app`` without an injected view), its ``/peer/v1/registry-head``
endpoint, and the comparison loop; the alert must appear on both sides of the split, and nowhere
between the two nodes shown the same log.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from typing import TYPE_CHECKING

from aiohttp import web

from permitnet.node.app import FETCHER_KEY, create_app
from permitnet.node.config import NodeConfig
from permitnet.node.registry_gossip import (
    ALERT_REGISTRY_SPLIT_VIEW,
    GOSSIP_INTERVAL_KEY,
    PATH_REGISTRY_HEAD,
    SPLIT_VIEW_KEY,
    HeadOutcome,
)
from permitnet.registry.app import RegistryConfig
from permitnet.registry.app import create_app as create_registry_app
from permitnet.registry.service import DB_FILE, Registry
from tests.e2e.conftest import YEAR, RunningNode, bound_socket, wait_until

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.conftest import Network


def _fork_directory(source: Path, target: Path) -> None:
    """Copy a live registry directory: the database through SQLite's backup, the rest as files."""
    target.mkdir()
    for item in source.iterdir():
        if item.name == DB_FILE:
            with sqlite3.connect(item) as src, sqlite3.connect(target / DB_FILE) as dst:
                src.backup(dst)
        elif item.is_file() and not item.name.startswith(DB_FILE):
            shutil.copy2(item, target / item.name)


async def _start_node(network: Network, country: str, registry_url: str) -> RunningNode:
    """Start a node that fetches and verifies the registry itself, from ``registry_url``."""
    sock = network.sockets.pop(country)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    data_dir = network.tmp_path / f"node-{country}"
    data_dir.mkdir()
    root_file = data_dir / "registry-root.cbor"
    root_file.write_bytes(network.registry.pinned_root)
    config = NodeConfig(
        data_dir=data_dir,
        country=country,
        authority_name=f"Authority {country}",
        registry_urls=(registry_url,),
        registry_root=root_file,
        public_url=url,
        registry_refresh_seconds=3600,
        registry_grace_seconds=3600,
    )
    app = create_app(config, signing_key=network.keys[country])
    app[GOSSIP_INTERVAL_KEY] = 0.2
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()

    async def has_head() -> bool:
        fetcher = app.get(FETCHER_KEY)
        return fetcher is not None and fetcher.head is not None

    await wait_until(has_head)
    node = RunningNode(
        country=country,
        url=url,
        key=network.keys[country],
        data_dir=data_dir,
        app=app,
        runner=runner,
        fetcher=app[FETCHER_KEY],
    )
    network.nodes[country] = node
    return node


async def _split_alerts(node: RunningNode) -> list[tuple[str, str]]:
    async with node.store.read() as tx:
        rows = await tx.fetchall(
            "SELECT document_id, message FROM alerts WHERE kind = ?", (ALERT_REGISTRY_SPLIT_VIEW,)
        )
    return [(str(d), str(m)) for d, m in rows]


async def _split_view_with(node: RunningNode, country: str) -> bool:
    return country in node.app[SPLIT_VIEW_KEY].split_views


async def test_a_forked_registry_is_detected_by_comparing_heads(network: Network) -> None:
    await network.enroll("DE", "FR", "IN")
    fork_dir = network.tmp_path / "registry-fork"
    _fork_directory(network.tmp_path / "registry", fork_dir)
    # The real registry publishes one estimate; the fork publishes another at the same version.
    await network.registry.set_estimate("DE", 5_000, kind="supplementary")
    real_version = await network.registry.publish()
    forked = Registry.open(fork_dir)
    try:
        forked.set_estimate(
            country="DE",
            substance="morphine",
            year=YEAR,
            quantity_mg=9_000_000,
            kind="supplementary",
            effective=f"{YEAR}-01-01",
            actor="evil",
            now=int(time.time()),
        )
        assert forked.publish(actor="evil", now=int(time.time())).version == real_version
    finally:
        forked.close()
    fork_sock = bound_socket()
    fork_runner = web.AppRunner(create_registry_app(RegistryConfig(directory=fork_dir)))
    await fork_runner.setup()
    await web.SockSite(fork_runner, fork_sock).start()
    try:
        fork_url = f"http://127.0.0.1:{fork_sock.getsockname()[1]}"
        de = await _start_node(network, "DE", network.registry.url)
        india = await _start_node(network, "IN", network.registry.url)
        fr = await _start_node(network, "FR", fork_url)
        assert de.fetcher.current is not None
        assert fr.fetcher.current is not None
        assert de.fetcher.current.version == fr.fetcher.current.version == real_version
        assert de.fetcher.current.log_root != fr.fetcher.current.log_root

        async def both_alerted() -> bool:
            return bool(await _split_alerts(de)) and bool(await _split_alerts(fr))

        async def de_saw_india_consistent() -> bool:
            check = de.app[SPLIT_VIEW_KEY].last.get("IN")
            return check is not None and check.outcome is HeadOutcome.CONSISTENT

        await wait_until(both_alerted)
        await wait_until(de_saw_india_consistent)
        de_alerts = await _split_alerts(de)
        assert [d for d, _ in de_alerts] == [d for d, _ in de_alerts if "-FR-" in d]
        assert "FR" in de_alerts[0][1]
        assert "split view" in de_alerts[0][1].lower()
        assert de.app[SPLIT_VIEW_KEY].split_views == ["FR"]
        assert sorted(fr.app[SPLIT_VIEW_KEY].split_views) in (["DE"], ["DE", "IN"])
        # India was shown the same log as Germany: no alert there about Germany.
        assert all("-DE-" not in d for d, _ in await _split_alerts(india))

        # /metrics shows it for monitoring.
        async with network.session.get(de.url + "/metrics") as response:
            assert "permitnet_registry_split_view_peers 1.0" in await response.text()
        # India, shown the same log as Germany, sees France's split view too, not Germany's.
        await wait_until(lambda: _split_view_with(india, "FR"))
        assert india.app[SPLIT_VIEW_KEY].split_views == ["FR"]
        async with network.session.get(india.url + "/metrics") as response:
            assert "permitnet_registry_split_view_peers 1.0" in await response.text()
        # The head endpoint answers only authenticated partner nodes.
        async with network.session.get(de.url + PATH_REGISTRY_HEAD) as response:
            assert response.status == 401
    finally:
        for country in ("DE", "IN", "FR"):
            node = network.nodes.pop(country, None)
            if node is not None:
                await node.runner.cleanup()
        await fork_runner.cleanup()
