"""The node API over real loopback HTTP, every response checked against the OpenAPI document."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer

from permitnet.node import create_app, tokens
from permitnet.node.app import STORE_KEY
from permitnet.node.config import NodeConfig
from permitnet.node.keystore import SigningKey, generate_seed
from permitnet.node.openapi import SPEC
from permitnet.node.peer_http import EXCHANGE_KEY
from permitnet.node.testing import TestCountry, estimate, registry_view
from permitnet.protocol.signed import SignedDocument

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from aiohttp import ClientResponse, web

NOW = int(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).timestamp())


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = SPEC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return _resolve(node)


def _template(path: str) -> str:
    for template in SPEC["paths"]:
        parts, want = template.split("/"), path.split("/")
        if len(parts) == len(want) and all(
            p == w or (p.startswith("{") and p.endswith("}"))
            for p, w in zip(parts, want, strict=True)
        ):
            return str(template)
    raise AssertionError(f"{path} is not in the OpenAPI document")


async def checked(resp: ClientResponse) -> Any:
    """Check the response against the OpenAPI document; return its JSON body (or bytes)."""
    path = resp.url.path
    operation = SPEC["paths"][_template(path)][resp.method.lower()]
    assert str(resp.status) in operation["responses"], (resp.status, await resp.text())
    declared = _resolve(operation["responses"][str(resp.status)])
    media = resp.content_type
    assert media in declared["content"], (media, declared)
    if media != "application/json":
        return await resp.read()
    body = await resp.json()
    schema = {**declared["content"][media]["schema"], "components": SPEC["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)
    return body


@dataclass
class Node:
    client: TestClient[web.Request, web.Application]
    key: SigningKey
    app: web.Application
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


class Clock:
    now = NOW

    def __call__(self) -> int:
        return self.now


async def _start(tmp_path: Path, country: str, keys: dict[str, SigningKey]) -> Node:
    view = registry_view(
        [TestCountry(code=c, public_key=k.public_key, kid=k.kid) for c, k in keys.items()],
        [estimate("DE", "morphine", 2026, 10_000), estimate("FR", "morphine", 2026, 10_000)],
    )
    data = tmp_path / country
    data.mkdir()
    config = NodeConfig(
        data_dir=data,
        country=country,
        authority_name=f"Authority {country}",
        registry_urls=("http://127.0.0.1:9",),
        registry_root=Path("root.cbor"),
        public_url="http://127.0.0.1:9",
        max_request_bytes=64 * 1024,
    )
    app = create_app(config, signing_key=keys[country], registry_view=view, clock=Clock())
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    secrets = {}
    for who, scopes in (("clerk", "draft,read"), ("officer", "sign,read"), ("reader", "read")):
        _, secrets[who] = await tokens.create_token(
            app[STORE_KEY], name=who, actor=who, scopes=scopes, created_by="admin"
        )
    return Node(client=client, key=keys[country], app=app, tokens=secrets)


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    keys = {
        "DE": SigningKey.from_seed(generate_seed()),
        "FR": SigningKey.from_seed(generate_seed()),
    }
    de = await _start(tmp_path, "DE", keys)
    fr = await _start(tmp_path, "FR", keys)
    yield de, fr
    await de.client.close()
    await fr.client.close()


IC = {
    "number": "DE-IC-1",
    "date_of_issue": "2026-03-01",
    "importer": {"name": "Pharma GmbH", "address": "Berlin", "licence": "L1"},
    "exporter": {"name": "Labo SA", "address": "Lyon", "licence": "L2"},
    "exporting_country": "FR",
    "items": [{"substance": "morphine", "quantity_mg": 4000, "preparation": "bulk powder"}],
    "valid_from": "2026-03-01",
    "valid_until": "2026-09-30",
    "several_consignments": True,
    "estimate_year": 2026,
}


async def _issue(node: Node, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await node.client.post(f"/api/v1/{path}", json=body, headers=node.auth("clerk"))
    draft = await checked(resp)
    assert resp.status == 201, draft
    resp = await node.client.post(
        f"/api/v1/drafts/{draft['id']}/approve", headers=node.auth("officer")
    )
    result = await checked(resp)
    assert resp.status == 201, result
    return result["document"]  # type: ignore[no-any-return]


async def _receive(node: Node, raw: bytes, *, from_peer: str) -> None:
    """Hand a document to the node's receive pipeline, as a push from ``from_peer`` would."""
    (result,) = await node.app[EXCHANGE_KEY].pipeline.receive([raw], from_peer=from_peer)
    assert result.outcome == "accepted", result.reason


async def test_openapi_document_is_served(nodes: tuple[Node, Node]) -> None:
    de, _ = nodes
    resp = await de.client.get("/api/v1/openapi.json")
    assert resp.status == 200
    spec = await resp.json()
    assert spec["openapi"] == "3.1.0"
    assert spec == json.loads(json.dumps(SPEC))


async def test_lifecycle_over_http(nodes: tuple[Node, Node]) -> None:
    de, fr = nodes
    ic = await _issue(de, "import-certificates", IC)
    assert ic["state"] == "active"
    # The raw signed bytes verify with DE's key; the exchange would carry exactly these.
    resp = await de.client.get(
        f"/api/v1/documents/{ic['id']}", headers={**de.auth("reader"), "Accept": "application/cose"}
    )
    raw = await checked(resp)
    assert resp.content_type == "application/cose"
    signed = SignedDocument.verify(raw, de.key.public_key)
    assert signed.id_hex == ic["id"]
    assert (
        await checked(
            await de.client.get(f"/api/v1/documents/{ic['id']}/raw", headers=de.auth("reader"))
        )
        == raw
    )
    await _receive(fr, signed.raw, from_peer="DE")

    detail = await checked(
        await fr.client.get(f"/api/v1/documents/{ic['id']}", headers=fr.auth("reader"))
    )
    assert detail["direction"] == "inbound"
    assert detail["document"]["number"] == "DE-IC-1"

    ea = await _issue(
        fr,
        "export-authorizations",
        {
            "import_certificate": ic["id"],
            "number": "FR-EA-1",
            "date_of_issue": "2026-03-01",
            "items": [{"substance": "morphine", "quantity_mg": 4000, "preparation": "bulk powder"}],
            "valid_from": "2026-03-01",
            "valid_until": "2026-06-30",
            "transport_mode": "air",
        },
    )
    listed = await checked(
        await fr.client.get("/api/v1/export-authorizations", headers=fr.auth("reader"))
    )
    assert [d["id"] for d in listed["documents"]] == [ea["id"]]
    raw_ea = await (
        await fr.client.get(f"/api/v1/documents/{ea['id']}/raw", headers=fr.auth("reader"))
    ).read()
    await _receive(de, raw_ea, from_peer="FR")

    end = await _issue(
        de,
        "endorsements",
        {
            "export_authorization": ea["id"],
            "date_received": "2026-03-01",
            "received": [{"line": 0, "quantity_mg": 3500}],
        },
    )
    raw_end = await (
        await de.client.get(f"/api/v1/documents/{end['id']}/raw", headers=de.auth("reader"))
    ).read()
    await _receive(fr, raw_end, from_peer="DE")
    alerts = await checked(await fr.client.get("/api/v1/alerts", headers=fr.auth("reader")))
    (alert,) = alerts["alerts"]
    assert alert["kind"] == "quantity_mismatch"
    resp = await fr.client.post(
        f"/api/v1/alerts/{alert['id']}/acknowledge", headers=fr.auth("clerk")
    )
    assert (await checked(resp)) == {"acknowledged": alert["id"]}

    msg = await checked(
        await de.client.post(
            "/api/v1/messages",
            headers=de.auth("officer"),
            json={"about": end["id"], "text": "Short by 500 mg"},
        )
    )
    assert msg["recipient"] == "FR"
    listed = await checked(await de.client.get("/api/v1/messages", headers=de.auth("reader")))
    assert [m["id"] for m in listed["documents"]] == [msg["id"]]

    balances = await checked(
        await de.client.get("/api/v1/balances?year=2026", headers=de.auth("reader"))
    )
    assert balances["balances"][0] == {
        "substance": "morphine",
        "year": 2026,
        "estimate_mg": 10_000,
        "supplementary_mg": 0,
        "total_mg": 10_000,
        "authorized_mg": 4000,
        "remaining_mg": 6000,
    }
    events = await checked(await de.client.get("/api/v1/events?after=0", headers=de.auth("reader")))
    assert {e["kind"] for e in events["events"]} >= {"document", "draft"}
    status = await checked(await de.client.get("/api/v1/status", headers=de.auth("reader")))
    assert status["country"] == "DE"
    assert status["kid"] == de.key.kid.hex()
    drafts = await checked(
        await de.client.get("/api/v1/drafts?state=signed", headers=de.auth("reader"))
    )
    assert len(drafts["drafts"]) == 2


async def test_held_certificate_answers_202(nodes: tuple[Node, Node]) -> None:
    de, _ = nodes
    body = IC | {
        "items": [{"substance": "morphine", "quantity_mg": 10_001, "preparation": "bulk powder"}]
    }
    draft = await checked(
        await de.client.post("/api/v1/import-certificates", json=body, headers=de.auth("clerk"))
    )
    resp = await de.client.post(f"/api/v1/drafts/{draft['id']}/approve", headers=de.auth("officer"))
    result = await checked(resp)
    assert resp.status == 202
    assert result["document"] is None
    assert "already authorized 0 mg, requested 10.001 g" in result["draft"]["held_reason"]


async def test_idempotency_keys(nodes: tuple[Node, Node]) -> None:
    de, _ = nodes
    headers = de.auth("clerk") | {"Idempotency-Key": "order-42"}
    first = await de.client.post("/api/v1/import-certificates", json=IC, headers=headers)
    again = await de.client.post("/api/v1/import-certificates", json=IC, headers=headers)
    assert (first.status, again.status) == (201, 201)
    assert await checked(first) == await checked(again)
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await de.client.post(
        "/api/v1/import-certificates", json=IC | {"number": "X"}, headers=headers
    )
    assert other.status == 409
    assert (await checked(other))["error"]["code"] == "conflict"
    drafts = await checked(await de.client.get("/api/v1/drafts", headers=de.auth("reader")))
    assert len(drafts["drafts"]) == 1
    # Concurrent retries with one key create one draft.
    headers = de.auth("clerk") | {"Idempotency-Key": "order-43"}
    body = IC | {"number": "DE-IC-43"}
    answers = await asyncio.gather(
        *(
            de.client.post("/api/v1/import-certificates", json=body, headers=headers)
            for _ in range(5)
        )
    )
    ids = {(await r.json())["id"] for r in answers}
    assert len(ids) == 1


async def test_event_stream_delivers_new_events(nodes: tuple[Node, Node]) -> None:
    de, _ = nodes
    async with de.client.get("/api/v1/events/stream", headers=de.auth("reader")) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        await de.client.post("/api/v1/import-certificates", json=IC, headers=de.auth("clerk"))
        async with asyncio.timeout(10):
            lines: list[str] = []
            while not any(line.startswith("data:") for line in lines):
                lines.append((await resp.content.readline()).decode().strip())
        assert lines[0].startswith("id: ")
        assert lines[1] == "event: draft"
        assert json.loads(lines[2].removeprefix("data: "))["to_state"] == "draft"


def _big() -> dict[str, Any]:
    return IC | {"conditions": "x" * 70_000}


BAD_REQUESTS = [
    # (name, method, path, who, kwargs, status, code)
    ("no-token", "GET", "/api/v1/documents", None, {}, 401, "unauthorized"),
    ("bad-scheme", "GET", "/api/v1/documents", "basic", {}, 401, "unauthorized"),
    ("unknown-token", "GET", "/api/v1/documents", "bogus", {}, 401, "unauthorized"),
    (
        "read-cannot-draft",
        "POST",
        "/api/v1/import-certificates",
        "reader",
        {"json": IC},
        403,
        "forbidden",
    ),
    ("clerk-cannot-sign", "POST", "/api/v1/messages", "clerk", {"json": {}}, 403, "forbidden"),
    (
        "not-json",
        "POST",
        "/api/v1/import-certificates",
        "clerk",
        {"data": b"{nope", "headers": {"Content-Type": "application/json"}},
        400,
        "invalid_request",
    ),
    (
        "wrong-content-type",
        "POST",
        "/api/v1/import-certificates",
        "clerk",
        {"data": b"x", "headers": {"Content-Type": "text/plain"}},
        400,
        "invalid_request",
    ),
    (
        "body-not-object",
        "POST",
        "/api/v1/import-certificates",
        "clerk",
        {"json": [1]},
        400,
        "invalid_request",
    ),
    ("bad-limit", "GET", "/api/v1/documents?limit=0", "reader", {}, 400, "invalid_request"),
    (
        "bad-direction",
        "GET",
        "/api/v1/documents?direction=up",
        "reader",
        {},
        400,
        "invalid_request",
    ),
    ("year-missing", "GET", "/api/v1/balances", "reader", {}, 400, "invalid_request"),
    ("year-not-int", "GET", "/api/v1/balances?year=soon", "reader", {}, 400, "invalid_request"),
    ("unknown-document", "GET", "/api/v1/documents/" + "0" * 64, "reader", {}, 404, "not_found"),
    ("unknown-draft", "POST", "/api/v1/drafts/nope/approve", "officer", {}, 404, "not_found"),
    ("unknown-alert", "POST", "/api/v1/alerts/7/acknowledge", "clerk", {}, 404, "not_found"),
    (
        "too-large",
        "POST",
        "/api/v1/import-certificates",
        "clerk",
        {"json": _big()},
        413,
        "too_large",
    ),
    (
        "missing-field",
        "POST",
        "/api/v1/import-certificates",
        "clerk",
        {"json": {k: v for k, v in IC.items() if k != "number"}},
        422,
        "invalid_document",
    ),
    (
        "float-quantity",
        "POST",
        "/api/v1/import-certificates",
        "clerk",
        {
            "json": IC
            | {"items": [{"substance": "morphine", "quantity_mg": 1.5, "preparation": "x"}]}
        },
        422,
        "invalid_document",
    ),
    (
        "unknown-substance",
        "POST",
        "/api/v1/import-certificates",
        "clerk",
        {
            "json": IC
            | {"items": [{"substance": "kryptonite", "quantity_mg": 1, "preparation": "x"}]}
        },
        422,
        "invalid_document",
    ),
    (
        "message-unknown-doc",
        "POST",
        "/api/v1/messages",
        "officer",
        {"json": {"about": "1" * 64, "text": "hi"}},
        422,
        "invalid_document",
    ),
    (
        "paper-no-scan",
        "POST",
        "/api/v1/paper-import-certificates",
        "officer",
        {"json": IC},
        400,
        "invalid_request",
    ),
    (
        "bad-idempotency-key",
        "POST",
        "/api/v1/import-certificates",
        "clerk",
        {"json": IC, "headers": {"Idempotency-Key": "x" * 201}},
        400,
        "invalid_request",
    ),
]


@pytest.mark.parametrize("case", [pytest.param(case, id=case[0]) for case in BAD_REQUESTS])
async def test_bad_requests(nodes: tuple[Node, Node], case: tuple[Any, ...]) -> None:
    _, method, path, who, kwargs, status, code = case
    kwargs = dict(kwargs)
    de, _ = nodes
    headers = dict(kwargs.pop("headers", {}))
    if who == "basic":
        headers["Authorization"] = "Basic dXNlcjpwYXNz"
    elif who == "bogus":
        headers["Authorization"] = "Bearer pnt_not-a-real-token"
    elif who is not None:
        headers |= de.auth(who)
    resp = await de.client.request(method, path, headers=headers, **kwargs)
    body = await checked(resp)
    assert resp.status == status, body
    assert body["error"]["code"] == code
    assert body["error"]["message"]


async def test_four_eyes_and_rule_violation_over_http(nodes: tuple[Node, Node]) -> None:
    de, _ = nodes
    draft = await checked(
        await de.client.post("/api/v1/import-certificates", json=IC, headers=de.auth("clerk"))
    )
    both = await tokens.create_token(
        de.app[STORE_KEY], name="solo", actor="clerk", scopes="sign,draft,read", created_by="admin"
    )
    resp = await de.client.post(
        f"/api/v1/drafts/{draft['id']}/approve", headers={"Authorization": f"Bearer {both[1]}"}
    )
    body = await checked(resp)
    assert resp.status == 403
    assert "four eyes" in body["error"]["message"]
    ic = await _issue(de, "import-certificates", IC | {"number": "DE-IC-2"})
    cancel = {"document": ic["id"], "reason": "error"}
    await _issue(de, "cancellations", cancel)
    draft = await checked(
        await de.client.post("/api/v1/cancellations", json=cancel, headers=de.auth("clerk"))
    )
    resp = await de.client.post(f"/api/v1/drafts/{draft['id']}/approve", headers=de.auth("officer"))
    body = await checked(resp)
    assert resp.status == 422
    assert body["error"]["rule"] == "already-cancelled"
    resp = await de.client.post(f"/api/v1/drafts/{draft['id']}/discard", headers=de.auth("clerk"))
    assert (await checked(resp))["state"] == "discarded"
    resp = await de.client.post(f"/api/v1/drafts/{draft['id']}/approve", headers=de.auth("officer"))
    assert resp.status == 409
    await checked(resp)


async def test_revoked_token_refused(nodes: tuple[Node, Node]) -> None:
    de, _ = nodes
    store = de.app[STORE_KEY]
    token, secret = await tokens.create_token(
        store, name="tmp", actor="sys", scopes=["read"], created_by="admin"
    )
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await de.client.get("/api/v1/documents", headers=headers)).status == 200
    await tokens.revoke_token(store, token.id, revoked_by="admin")
    resp = await de.client.get("/api/v1/documents", headers=headers)
    assert resp.status == 401
    assert "revoked" in (await checked(resp))["error"]["message"]
    names = [t.name for t in await tokens.list_tokens(store)]
    assert "tmp" in names


async def test_paper_certificate_over_http(nodes: tuple[Node, Node]) -> None:
    _, fr = nodes
    scan = {"filename": "gh.pdf", "media_type": "application/pdf", "content_base64": "JVBERi0xLjQK"}
    body: dict[str, Any] = {k: v for k, v in IC.items() if k != "exporting_country"} | {
        "issuer": "GH",
        "authority": "Food and Drugs Authority",
        "scan": {
            "filename": "gh.pdf",
            "media_type": "application/pdf",
            "content_base64": "JVBERi0xLjQK",
        },
    }
    resp = await fr.client.post(
        "/api/v1/paper-import-certificates", json=body, headers=fr.auth("officer")
    )
    record = await checked(resp)
    assert resp.status == 201, record
    assert record["direction"] == "paper"
    assert record["electronically_verified"] is False
    detail = await checked(
        await fr.client.get(f"/api/v1/documents/{record['id']}", headers=fr.auth("reader"))
    )
    assert detail["attachments"][0]["media_type"] == "application/pdf"
    resp = await fr.client.get(f"/api/v1/documents/{record['id']}/raw", headers=fr.auth("reader"))
    raw = await checked(resp)
    assert resp.content_type == "application/cbor"
    assert hashlib.sha256(raw).hexdigest() == record["id"]
    bad = body | {"scan": scan | {"content_base64": "%%%"}}
    resp = await fr.client.post(
        "/api/v1/paper-import-certificates", json=bad, headers=fr.auth("officer")
    )
    assert resp.status == 400
    assert "base64" in (await checked(resp))["error"]["message"]
    # The bytes must be what the client declares: the scan is served back under that type.
    for content, message in (
        (base64.b64encode(b"\x89PNG\r\n\x1a\n...").decode(), "not application/pdf"),
        (base64.b64encode(b"<html><script>").decode(), "PDF, PNG or JPEG"),
    ):
        bad = body | {"scan": scan | {"content_base64": content}}
        resp = await fr.client.post(
            "/api/v1/paper-import-certificates", json=bad, headers=fr.auth("officer")
        )
        assert resp.status == 400
        assert message in (await checked(resp))["error"]["message"]


async def test_event_stream_resumes_after_last_event_id(nodes: tuple[Node, Node]) -> None:
    de, _ = nodes
    for n in range(3):
        resp = await de.client.post(
            "/api/v1/import-certificates", json=IC | {"number": f"N{n}"}, headers=de.auth("clerk")
        )
        assert resp.status == 201
    events = (await checked(await de.client.get("/api/v1/events", headers=de.auth("reader"))))[
        "events"
    ]
    assert len(events) == 3
    headers = de.auth("reader") | {"Last-Event-ID": str(events[0]["seq"])}
    async with de.client.get("/api/v1/events/stream", headers=headers) as resp:
        ids: list[int] = []
        async with asyncio.timeout(10):
            while len(ids) < 2:
                line = (await resp.content.readline()).decode().strip()
                if line.startswith("id: "):
                    ids.append(int(line.removeprefix("id: ")))
        assert ids == [events[1]["seq"], events[2]["seq"]]
    resp = await de.client.get(
        "/api/v1/events/stream", headers=de.auth("reader") | {"Last-Event-ID": "x"}
    )
    assert resp.status == 400


async def test_quarantine_and_pending_are_listed(nodes: tuple[Node, Node]) -> None:
    de, fr = nodes
    async with fr.app[STORE_KEY].transaction() as tx:
        await tx.add_quarantine(b"garbage", reason="not CBOR", from_peer="DE")
        await tx.add_pending(
            "ab" * 32, b"raw", reason="dependency", waiting_for="cd" * 32, from_peer="DE"
        )
    q = await checked(await fr.client.get("/api/v1/quarantine", headers=fr.auth("reader")))
    assert [(e["reason"], e["size"]) for e in q["quarantine"]] == [("not CBOR", 7)]
    p = await checked(await fr.client.get("/api/v1/pending", headers=fr.auth("reader")))
    assert p["pending"][0]["waiting_for"] == "cd" * 32
    resp = await de.client.get("/api/v1/quarantine")
    assert resp.status == 401
    await checked(resp)
