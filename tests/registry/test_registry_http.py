"""The registry server on loopback: public signed files, ETags, deltas, proofs, the admin API."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from permitnet.protocol.cbor import decode_cbor
from permitnet.protocol.cose import key_id, public_key_from_seed
from permitnet.protocol.merkle import LogHead, leaf_hash, verify_consistency, verify_inclusion
from permitnet.protocol.registry_client import TrustedRegistry, verify_head
from permitnet.protocol.registry_requests import build_enrollment_request
from permitnet.registry.app import RegistryConfig, create_app
from permitnet.registry.service import Registry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

T0 = 1_780_000_000
Client = TestClient[web.Request, web.Application]
OPS = "cli:test"


def seed(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    reg = Registry.init(
        tmp_path / "reg",
        root_keys_dir=tmp_path / "offline",
        root_keys=3,
        threshold=2,
        now=T0,
        actor=OPS,
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
    reg.set_country("FR", authority="ANSM", endpoints=[], contact="", actor=OPS, now=T0)
    reg.publish(actor=OPS, now=T0 + 1)
    reg.close()
    return tmp_path / "reg"


@pytest.fixture
async def client(data_dir: Path) -> AsyncIterator[Client]:
    app = create_app(RegistryConfig(directory=data_dir, clock=lambda: T0 + 2))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as c:
        yield c


@pytest.fixture
def token(data_dir: Path) -> str:
    reg = Registry.open(data_dir)
    try:
        return reg.add_token("tester", actor=OPS, now=T0)
    finally:
        reg.close()


async def test_snapshot_with_etag_and_conditional_get(client: Client) -> None:
    response = await client.get("/v1/snapshot")
    assert response.status == 200
    assert response.content_type == "application/cbor"
    body = await response.read()
    etag = response.headers["ETag"]
    assert etag == '"' + hashlib.sha256(body).hexdigest() + '"'
    again = await client.get("/v1/snapshot", headers={"If-None-Match": etag})
    assert again.status == 304
    assert await (await client.get("/v1/snapshot/latest")).read() == body
    assert await (await client.get("/v1/snapshot/2")).read() == body
    root = await (await client.get("/v1/root/1")).read()
    view = TrustedRegistry(root).update_snapshot(body, now=T0)
    assert (view.version, view.log_size) == (2, 3)


async def test_delta_since_a_version(client: Client) -> None:
    root = await (await client.get("/v1/root/latest")).read()
    trusted = TrustedRegistry(root)
    trusted.update_snapshot(await (await client.get("/v1/snapshot/1")).read(), now=T0)
    bundle = await (await client.get("/v1/delta?since=1")).read()
    assert await (await client.get("/v1/delta/1")).read() == bundle
    assert trusted.update_delta_bundle(bundle, now=T0).version == 2
    empty = await (await client.get("/v1/delta/2")).read()
    assert decode_cbor(empty) == []


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/snapshot/99", 404),
        ("/v1/snapshot/x", 400),
        ("/v1/root/7", 404),
        ("/v1/delta?since=0", 404),
        ("/v1/delta?since=3", 404),
        ("/v1/delta?since=abc", 400),
        ("/v1/delta", 400),
        ("/v1/proof/inclusion?index=5&size=3", 400),
        ("/v1/proof/inclusion?index=0&size=4", 404),
        ("/v1/proof/consistency?first=3&second=1", 400),
        ("/v1/proof/consistency/1/9", 404),
    ],
)
async def test_bad_public_requests_get_clear_errors(client: Client, path: str, status: int) -> None:
    response = await client.get(path)
    assert response.status == status
    body = await response.json()
    assert body["message"]


async def test_proofs_verify_against_signed_heads(client: Client) -> None:
    root = TrustedRegistry(await (await client.get("/v1/root/1")).read()).root
    head1 = verify_head(await (await client.get("/v1/head/1")).read(), root)
    head2 = verify_head(await (await client.get("/v1/head/latest")).read(), root)
    proof = decode_cbor(await (await client.get("/v1/proof/consistency/2/3")).read())
    assert isinstance(proof, dict)
    verify_consistency(
        LogHead(size=head1.log_size, root=head1.log_root),
        LogHead(size=head2.log_size, root=head2.log_root),
        proof["path"],
    )
    inclusion = decode_cbor(await (await client.get("/v1/proof/inclusion/2/3")).read())
    assert isinstance(inclusion, dict)
    verify_inclusion(leaf_hash(inclusion["leaf"]), 2, 3, inclusion["path"], head2.log_root)


async def test_admin_api_requires_a_valid_bearer_token(client: Client, token: str) -> None:
    body = {"code": "IN", "authority": "NCB", "endpoints": [], "contact": ""}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"}):
        response = await client.post("/v1/admin/countries", json=body, headers=headers)
        assert response.status == 401
    ok = await client.post(
        "/v1/admin/countries", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert ok.status == 201
    assert (await ok.json())["name"] == "India"
    audit = await (
        await client.get("/v1/admin/audit?limit=2", headers={"Authorization": f"Bearer {token}"})
    ).json()
    assert audit[0]["actor"] == "token:tester"
    assert audit[0]["action"] == "set-country"


async def test_admin_flow_enroll_estimate_publish(client: Client, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    raw = build_enrollment_request(seed("de-1"), country="DE", valid_from=T0, requested_at=T0)
    submitted = await client.post("/v1/key-requests", data=raw)
    assert submitted.status == 201
    request_id = (await submitted.json())["id"]
    pending = await (await client.get("/v1/admin/key-requests?status=pending", headers=auth)).json()
    assert [p["id"] for p in pending] == [request_id]
    fingerprint = key_id(public_key_from_seed(seed("de-1"))).hex()
    approved = await client.post(
        f"/v1/admin/key-requests/{request_id}/approve",
        json={"fingerprint": fingerprint},
        headers=auth,
    )
    assert approved.status == 200, await approved.text()
    estimate = {
        "country": "DE",
        "substance": "codeine",
        "year": 2026,
        "quantity_mg": 7,
        "kind": "supplementary",
        "effective": "2026-02-01",
    }
    assert (await client.post("/v1/admin/estimates", json=estimate, headers=auth)).status == 201
    published = await client.post("/v1/admin/publish", json={}, headers=auth)
    assert (await published.json())["version"] == 3
    revoked = await client.post(
        f"/v1/admin/keys/{fingerprint}/revoke",
        json={"compromised_at": T0, "reason": "test"},
        headers=auth,
    )
    assert (await revoked.json())["status"] == "revoked"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/admin/countries", {"code": "XX", "authority": "a"}, 400),
        ("/v1/admin/countries", {"authority": "a"}, 400),
        ("/v1/admin/estimates", {"country": "DE", "kind": "guess"}, 400),
        (
            "/v1/admin/estimates",
            {
                "country": "DE",
                "substance": "x",
                "year": 2026,
                "quantity_mg": 1.5,
                "kind": "estimate",
                "effective": "2026-01-01",
            },
            400,
        ),
        ("/v1/admin/key-requests/99/approve", {}, 404),
        ("/v1/admin/keys/zz/revoke", {"compromised_at": 1, "reason": "x"}, 400),
        ("/v1/admin/keys/" + "00" * 16 + "/revoke", {"compromised_at": 1, "reason": "x"}, 404),
        ("/v1/admin/publish", {"expiry_seconds": -1}, 400),
        ("/v1/admin/catalogue", {"edition": "e", "digest": "abc"}, 400),
    ],
)
async def test_bad_admin_requests_get_clear_errors(
    client: Client, token: str, path: str, body: object, status: int
) -> None:
    response = await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status == status, await response.text()
    assert (await response.json())["message"]


async def test_oversized_and_malformed_bodies(client: Client, token: str) -> None:
    big = await client.post("/v1/key-requests", data=b"\x00" * (65 * 1024))
    assert big.status == 413
    junk = await client.post("/v1/key-requests", data=b"\xff")
    assert junk.status == 400
    not_json = await client.post(
        "/v1/admin/countries",
        data=b"{",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert not_json.status == 400


async def test_pending_key_requests_are_capped(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("permitnet.registry.app.MAX_PENDING_REQUESTS", 1)
    first = build_enrollment_request(seed("a"), country="DE", valid_from=T0, requested_at=T0)
    second = build_enrollment_request(seed("b"), country="DE", valid_from=T0, requested_at=T0)
    assert (await client.post("/v1/key-requests", data=first)).status == 201
    refused = await client.post("/v1/key-requests", data=second)
    assert refused.status == 429
    assert "waiting" in (await refused.json())["message"]


async def test_old_full_snapshots_are_pruned_and_old_deltas_windowed(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = Registry.open(data_dir)
    try:
        for step in range(3):
            reg.publish(actor=OPS, now=T0 + 10 + step)  # versions 3, 4, 5
    finally:
        reg.close()
    monkeypatch.setattr("permitnet.registry.app.DELTA_WINDOW", 2)
    app = create_app(RegistryConfig(directory=data_dir, clock=lambda: T0 + 20))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        pruned = await client.get("/v1/snapshot/2")
        assert pruned.status == 404
        assert "no longer kept" in (await pruned.json())["message"]
        for version in (3, 4, 5):
            assert (await client.get(f"/v1/snapshot/{version}")).status == 200
        assert (await client.get("/v1/head/1")).status == 200
        too_old = await client.get("/v1/delta/2")
        assert too_old.status == 404
        assert "fetch /v1/snapshot" in (await too_old.json())["message"]
        assert (await client.get("/v1/delta/3")).status == 200
