"""LAN discovery with real nodes: announced on loopback, verified against the registry.

DE and FR run as real nodes and are announced with zeroconf; an impostor announces DE's key
fingerprint at its own address but holds another key. ``permitnet discover --verify FR_DIR``
challenges each one and checks the answers against the registry view FR's node fetches: the
real nodes are verified at their own addresses, the impostor is not.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from permitnet.node.app import REGISTRY_KEY
from permitnet.node.config import NodeConfig
from permitnet.node.discovery import (
    DISCOVERED_PEERS_KEY,
    Advertisement,
    Advertiser,
    discover_peers_once,
)
from permitnet.node.discovery_challenge import ChallengeResponder, setup_challenge
from permitnet.node.keystore import SigningKey, generate_seed
from permitnet.node.peer_auth import resolver_from_registry
from permitnet.tools.cli import main
from tests.e2e.conftest import ic_body

if TYPE_CHECKING:
    from tests.e2e.conftest import Network, RunningNode

pytestmark = pytest.mark.slow

LOOPBACK = ["127.0.0.1"]


async def test_discover_verify_tells_real_nodes_from_an_impostor(
    network: Network, capsys: pytest.CaptureFixture[str]
) -> None:
    de, fr = await network.start("DE", "FR")
    NodeConfig(
        data_dir=fr.data_dir,
        country="FR",
        authority_name="Authority FR",
        registry_urls=(network.registry.url,),
        registry_root=Path("registry-root.cbor"),
        public_url=fr.url,
        insecure_plaintext_key=True,
    ).save()
    impostor = await _impostor("DE", de.key.kid)
    assert impostor.port is not None
    impostor_url = f"http://127.0.0.1:{impostor.port}"
    try:
        async with (
            _advertiser("DE", de.key.kid, int(de.url.rsplit(":", 1)[1])),
            _advertiser("FR", fr.key.kid, int(fr.url.rsplit(":", 1)[1])),
            _advertiser("DE", de.key.kid, impostor.port),
        ):
            argv = ["discover", "--interface", "127.0.0.1", "--seconds", "6", "--json"]
            code = await asyncio.to_thread(main, [*argv, "--verify", str(fr.data_dir)])
    finally:
        await impostor.close()
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    by_url = {row["urls"][0]: row for row in rows}
    assert by_url[de.url]["verified"] is True
    assert by_url[de.url]["verified_url"] == de.url
    assert by_url[fr.url]["verified"] is True
    assert by_url[impostor_url]["verified"] is False
    assert "does not verify" in by_url[impostor_url]["reason"]


async def test_delivery_falls_back_to_a_verified_lan_address(network: Network) -> None:
    """The registry lists a dead endpoint for FR; DE reaches FR at the address it verified."""
    de, fr = await network.start("DE", "FR")
    await network.registry.admin(
        "countries",
        {"code": "FR", "authority": "Authority FR", "endpoints": ["http://127.0.0.1:9"]},
    )
    await network.registry.publish()
    await network.refresh_all()
    view = de.app[REGISTRY_KEY].view
    assert view is not None
    listed = view.country("FR")
    assert listed is not None
    assert tuple(listed.endpoints) == ("http://127.0.0.1:9",)

    ic = await de.issue("import_certificate", ic_body(exporting_country="FR"))
    # Nothing discovered yet: the dead registry endpoint is all DE has, and delivery fails.
    await network.wait_until(lambda: _attempted(de, ic.id))
    assert not await de.delivered(ic.id)

    impostor = await _impostor("FR", fr.key.kid)
    assert impostor.port is not None
    peers = de.app[DISCOVERED_PEERS_KEY]
    try:
        async with (
            _advertiser("FR", fr.key.kid, impostor.port),
            _advertiser("FR", fr.key.kid, int(fr.url.rsplit(":", 1)[1])),
            aiohttp.ClientSession() as session,
        ):
            passed = await discover_peers_once(
                peers,
                own_country="DE",
                resolve_key=resolver_from_registry(lambda: de.app[REGISTRY_KEY].view),
                session=session,
                clock=lambda: int(time.time()),
                seconds=4,
                interfaces=LOOPBACK,
            )
    finally:
        await impostor.close()
    # Only the real FR node passed; the impostor's address is never recorded.
    assert passed == {"FR": fr.url}
    assert peers.snapshot() == {"FR": fr.url}
    await network.wait_until(lambda: de.delivered(ic.id), within=30)
    assert await fr.holds(ic.id)


async def _impostor(country: str, kid: bytes) -> TestServer:
    """A started server answering the discovery challenge for ``country`` under ``kid``, with
    another key: what someone announcing a node's fingerprint at their own address holds."""
    rogue = SigningKey.from_seed(generate_seed())
    app = web.Application()
    setup_challenge(
        app,
        ChallengeResponder(
            country=country,
            signing_key=lambda: rogue.seed,
            kid=lambda: kid,
            clock=lambda: int(time.time()),
        ),
    )
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server


def _advertiser(country: str, kid: bytes, port: int) -> Advertiser:
    """An announcement of ``country``'s node at ``port`` on the loopback interface only."""
    return Advertiser(
        Advertisement(country=country, kid=kid),
        port=port,
        addresses=LOOPBACK,
        interfaces=LOOPBACK,
    )


async def _attempted(node: RunningNode, document_id: str) -> bool:
    async with node.store.read() as tx:
        rows = await tx.outbox_for_document(document_id)
    return bool(rows) and all(r.attempts > 0 for r in rows)
