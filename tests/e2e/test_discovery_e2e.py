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

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from permitnet.node.config import NodeConfig
from permitnet.node.discovery import Advertisement, Advertiser
from permitnet.node.discovery_challenge import ChallengeResponder, setup_challenge
from permitnet.node.keystore import SigningKey, generate_seed
from permitnet.tools.cli import main

if TYPE_CHECKING:
    from tests.e2e.conftest import Network

pytestmark = pytest.mark.slow


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
    rogue = SigningKey.from_seed(generate_seed())
    impostor_app = web.Application()
    setup_challenge(
        impostor_app,
        ChallengeResponder(
            country="DE",
            signing_key=lambda: rogue.seed,
            kid=lambda: de.key.kid,
            clock=lambda: int(time.time()),
        ),
    )
    impostor = TestServer(impostor_app, host="127.0.0.1", port=0)
    await impostor.start_server()
    assert impostor.port is not None
    impostor_url = f"http://127.0.0.1:{impostor.port}"
    loopback = ["127.0.0.1"]
    try:
        async with (
            Advertiser(
                Advertisement(country="DE", kid=de.key.kid),
                port=int(de.url.rsplit(":", 1)[1]),
                addresses=loopback,
                interfaces=loopback,
            ),
            Advertiser(
                Advertisement(country="FR", kid=fr.key.kid),
                port=int(fr.url.rsplit(":", 1)[1]),
                addresses=loopback,
                interfaces=loopback,
            ),
            Advertiser(
                Advertisement(country="DE", kid=de.key.kid),
                port=impostor.port,
                addresses=loopback,
                interfaces=loopback,
            ),
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
