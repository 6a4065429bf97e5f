"""The ops endpoints and the discovery challenge as mounted by the node's create_app."""

from __future__ import annotations

import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from permitnet.node.app import create_app
from permitnet.node.config import DEFAULT_REGISTRY_GRACE_SECONDS, NodeConfig
from permitnet.node.discovery import Advertisement, make_challenge, verify_answer
from permitnet.node.keystore import SigningKey, generate_seed
from permitnet.node.peer_auth import PeerKey
from permitnet.protocol.registry_view import RegistryState, RegistryView


def _config(tmp_path: Path) -> NodeConfig:
    return NodeConfig(
        data_dir=tmp_path,
        country="FR",
        authority_name="ANSM",
        registry_urls=("http://127.0.0.1:9",),
        registry_root=Path("root.cbor"),
        public_url="http://127.0.0.1:9",
        insecure_plaintext_key=True,
    )


def _view(now: int, *, expires_in: int) -> RegistryView:
    return RegistryView(
        version=3,
        issued_at=now - 100,
        expires_at=now + expires_in,
        root_version=1,
        log_size=0,
        log_root=b"\0" * 32,
        log_compact=(),
        state=RegistryState(),
    )


async def test_node_app_serves_ops_and_challenge(tmp_path: Path) -> None:
    now = int(time.time())
    key = SigningKey.from_seed(generate_seed())
    app = create_app(_config(tmp_path), signing_key=key, registry_view=_view(now, expires_in=3600))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        response = await client.get("/healthz")
        assert response.status == 200
        response = await client.get("/readyz")
        body = await response.json()
        assert response.status == 200, body
        assert body["checks"]["registry"]["version"] == 3
        response = await client.get("/metrics")
        assert response.status == 200
        names = {f.name for f in text_string_to_metric_families(await response.text())}
        assert {"permitnet_outbox_depth", "permitnet_registry_snapshot_age_seconds"} <= names

        challenge = make_challenge(challenger="DE", audience="FR")
        response = await client.post("/peer/v1/challenge", data=challenge.to_payload())
        assert response.status == 200
        proof = verify_answer(
            await response.read(),
            challenge=challenge,
            advertisement=Advertisement(country="FR", kid=key.kid),
            resolve_key=lambda _kid, _at: PeerKey(country="FR", public_key=key.public_key),
            now=now,
        )
        assert proof.country == "FR"


async def test_node_app_not_ready_when_registry_data_is_past_grace(tmp_path: Path) -> None:
    now = int(time.time())
    key = SigningKey.from_seed(generate_seed())
    stale = _view(now, expires_in=-(DEFAULT_REGISTRY_GRACE_SECONDS + 60))
    app = create_app(_config(tmp_path), signing_key=key, registry_view=stale)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        assert (await client.get("/healthz")).status == 200
        response = await client.get("/readyz")
        body = await response.json()
        assert response.status == 503
        assert "beyond the" in body["checks"]["registry"]["reason"]
        assert body["checks"]["database"]["ok"] is True
        assert body["checks"]["signing_key"]["ok"] is True
