"""Health, readiness and Prometheus metrics endpoints (node/ops.py), on a real store."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from permitnet.node.logs import JsonLogFormatter, configure_logging
from permitnet.node.ops import OpsProbes, RegistryFreshness, setup_ops
from permitnet.node.store import DocumentItem, DocumentRecord, Store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

NOW = 1_790_000_000


@dataclass
class _State:
    """What the probes report; tests change it between requests."""

    store: Store
    freshness: RegistryFreshness | None = None
    key_loaded: bool = True
    now: int = NOW
    extra: dict[str, object] = field(default_factory=dict)


def _record(n: int, *, state: str, direction: str = "outbound") -> DocumentRecord:
    raw = f"signed document {n}".encode()
    return DocumentRecord(
        id=hashlib.sha256(raw).hexdigest(),
        raw=raw,
        doc_type="import_certificate",
        issuer="DE",
        recipient="FR",
        issued_at=NOW - 100 + n,
        direction=direction,  # type: ignore[arg-type]
        state=state,
        items=(
            DocumentItem(
                substance="morphine", base_substance="morphine", quantity_mg=1000, base_mg=1000
            ),
        ),
        estimate_year=2026,
    )


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[_State]:
    store = await Store.open(tmp_path / "node.sqlite3", clock=lambda: NOW, synchronous="NORMAL")
    try:
        yield _State(
            store=store,
            freshness=RegistryFreshness(
                version=7, issued_at=NOW - 600, expires_at=NOW + 3600, grace_seconds=86400
            ),
        )
    finally:
        await store.close()


@pytest.fixture
async def client(state: _State) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    setup_ops(
        app,
        OpsProbes(
            store=lambda: state.store,
            registry=lambda: state.freshness,
            signing_key_loaded=lambda: state.key_loaded,
            clock=lambda: state.now,
        ),
    )
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as c:
        yield c


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_healthz(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_ready_then_each_failure_named(
    client: TestClient[web.Request, web.Application], state: _State
) -> None:
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "ready"
    assert body["checks"]["registry"]["version"] == 7

    cases: list[tuple[str, dict[str, object], str, str]] = [
        ("key not loaded", {"key_loaded": False}, "signing_key", "not loaded"),
        ("no snapshot", {"freshness": None}, "registry", "no registry snapshot"),
        ("past grace", {"now": NOW + 3600 + 86400 + 1}, "registry", "beyond the 86400 s grace"),
    ]
    for name, change, check, reason in cases:
        saved = {k: getattr(state, k) for k in change}
        for k, v in change.items():
            setattr(state, k, v)
        response = await client.get("/readyz")
        body = await response.json()
        assert response.status == 503, name
        assert body["status"] == "not ready"
        assert body["checks"][check]["ok"] is False, name
        assert reason in body["checks"][check]["reason"], name
        for k, v in saved.items():
            setattr(state, k, v)


async def test_readyz_within_grace_is_ready_with_a_warning(
    client: TestClient[web.Request, web.Application], state: _State
) -> None:
    state.now = NOW + 3600 + 10
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 200
    assert "within the grace period" in body["checks"]["registry"]["warning"]


async def test_readyz_database_closed(
    client: TestClient[web.Request, web.Application], state: _State
) -> None:
    await state.store.close()
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 503
    assert body["checks"]["database"]["ok"] is False
    assert "database unreachable" in body["checks"]["database"]["reason"]


async def test_metrics_reflect_the_database(
    client: TestClient[web.Request, web.Application], state: _State
) -> None:
    async with state.store.transaction() as tx:
        await tx.insert_document(_record(1, state="delivered"), actor="test", outbox_peers=["FR"])
        await tx.insert_document(_record(2, state="signed"), actor="test", outbox_peers=["FR"])
        await tx.insert_document(_record(3, state="signed"), actor="test", outbox_peers=["IN"])
        await tx.insert_document(
            _record(4, state="accepted", direction="inbound"), actor="test", outbox_peers=[]
        )
        ids = [_record(i, state="x").id for i in (1, 2, 3)]
        await tx.execute(
            "UPDATE outbox SET delivered_at = created_at + 3, attempts = 1 WHERE document_id = ?",
            (ids[0],),
        )
        await tx.execute(
            "UPDATE outbox SET attempts = 2, last_error = 'connection refused' "
            "WHERE document_id = ?",
            (ids[2],),
        )
    state.now = NOW + 50
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = _samples(await response.text())
    doc = "permitnet_documents"
    outbound = (("direction", "outbound"), ("doc_type", "import_certificate"))
    assert samples[(doc, (*outbound, ("state", "signed")))] == 2
    assert samples[(doc, (*outbound, ("state", "delivered")))] == 1
    inbound = (("direction", "inbound"), ("doc_type", "import_certificate"), ("state", "accepted"))
    assert samples[(doc, inbound)] == 1
    assert samples[("permitnet_outbox_depth", (("peer", "FR"),))] == 1
    assert samples[("permitnet_outbox_depth", (("peer", "IN"),))] == 1
    assert samples[("permitnet_outbox_failing", (("peer", "IN"),))] == 1
    assert samples[("permitnet_outbox_failing", (("peer", "FR"),))] == 0
    # IN's row failed twice; FR's delivered row was one successful attempt.
    assert samples[("permitnet_delivery_failed_attempts", (("peer", "IN"),))] == 2
    assert samples[("permitnet_delivery_failed_attempts", (("peer", "FR"),))] == 0
    assert samples[("permitnet_outbox_oldest_age_seconds", (("peer", "FR"),))] == 50
    latency = "permitnet_delivery_latency_seconds"
    assert samples[(latency + "_count", ())] == 1
    assert samples[(latency + "_sum", ())] == 3
    assert samples[(latency + "_bucket", (("le", "2.5"),))] == 0
    assert samples[(latency + "_bucket", (("le", "5.0"),))] == 1
    assert samples[("permitnet_registry_snapshot_version", ())] == 7
    assert samples[("permitnet_registry_snapshot_age_seconds", ())] == 650
    assert samples[("permitnet_registry_snapshot_expires_in_seconds", ())] == 3550
    assert samples[("permitnet_ready", ())] == 1

    # Once FR's outbox drains, its series disappear instead of keeping a stale value.
    async with state.store.transaction() as tx:
        await tx.execute("UPDATE outbox SET delivered_at = created_at + 1 WHERE peer = 'FR'")
    samples = _samples(await (await client.get("/metrics")).text())
    assert ("permitnet_outbox_depth", (("peer", "FR"),)) not in samples
    assert samples[(latency + "_count", ())] == 2


def test_json_logs_are_one_object_per_line() -> None:
    formatter = JsonLogFormatter()
    try:
        raise ValueError("boom")  # noqa: TRY301 - an exception with a traceback to format
    except ValueError:
        import sys

        record = logging.LogRecord(
            "permitnet.node", logging.ERROR, __file__, 1, "x=%s", ("1",), None
        )
        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "\n" not in line.replace("\\n", "")
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["message"] == "x=1"
    assert entry["logger"] == "permitnet.node"
    assert entry["time"].endswith("Z")
    assert "ValueError: boom" in entry["exception"]


def test_configure_logging_json(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(json_logs=True)
        logging.getLogger("permitnet.test").warning("registry %s stale", "v7")
        assert json.loads(stream.getvalue().strip())["message"] == "registry v7 stale"
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
