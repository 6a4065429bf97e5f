"""The app factory's background work, and the node configuration file."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from permitnet.node import audit, create_app
from permitnet.node.app import REGISTRY_KEY, SERVICES_KEY, STORE_KEY
from permitnet.node.config import CONFIG_FILE, NodeConfig
from permitnet.node.errors import ConfigError
from permitnet.node.keystore import SigningKey, generate_seed
from permitnet.node.testing import TestCountry, estimate, registry_view

if TYPE_CHECKING:
    from permitnet.protocol.registry_view import RegistryView

NOW = int(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).timestamp())


def _config(tmp_path: Path, **over: Any) -> NodeConfig:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "country": "DE",
        "authority_name": "BfArM",
        "registry_urls": ("http://127.0.0.1:9",),
        "registry_root": Path("registry-root.cbor"),
        "public_url": "http://127.0.0.1:8470",
    }
    return NodeConfig(**(values | over))


class Registry:
    """Serves view 1 until told to publish; counts refreshes and signals each one."""

    def __init__(self, views: list[RegistryView]) -> None:
        self.views = views
        self.published = 0
        self.calls = 0
        self.called = asyncio.Event()

    async def refresh(self) -> RegistryView:
        self.calls += 1
        self.called.set()
        return self.views[self.published]

    async def wait_calls(self, n: int) -> None:
        async with asyncio.timeout(10):
            while self.calls < n:
                self.called.clear()
                await self.called.wait()


IC = {
    "number": "DE-IC-9",
    "date_of_issue": "2026-03-01",
    "importer": {"name": "I", "address": "Berlin", "licence": "L1"},
    "exporter": {"name": "E", "address": "Lyon", "licence": "L2"},
    "exporting_country": "FR",
    "items": [{"substance": "codeine", "quantity_mg": 3000, "preparation": "bulk powder"}],
    "valid_from": "2026-03-01",
    "valid_until": "2026-09-30",
    "estimate_year": 2026,
}


async def test_refresh_loop_releases_held_certificate(tmp_path: Path) -> None:
    keys = {c: SigningKey.from_seed(generate_seed()) for c in ("DE", "FR")}
    countries = [TestCountry(code=c, public_key=k.public_key, kid=k.kid) for c, k in keys.items()]
    base = estimate("DE", "codeine", 2026, 1000)
    registry = Registry(
        [
            registry_view(countries, [base], version=1),
            registry_view(
                countries, [base, estimate("DE", "codeine", 2026, 2500, supplementary=1)], version=2
            ),
        ]
    )
    config = _config(tmp_path, registry_refresh_seconds=0.01)
    app = create_app(
        config, signing_key=keys["DE"], registry_refresh=registry.refresh, clock=lambda: NOW
    )
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)):
        await registry.wait_calls(1)
        services = app[SERVICES_KEY]
        draft = await services.create_draft("import_certificate", IC, actor="clerk")
        result = await services.approve_draft(draft.id, actor="officer")
        assert result.draft.state == "held"
        assert "requested 3 g: 2 g over the remaining 1 g" in (result.draft.held_reason or "")
        registry.published = 1
        start = registry.calls
        await registry.wait_calls(start + 2)  # one full round after the new view was served
        released = await services.get_draft(draft.id)
        assert released.state == "signed"
        view = app[REGISTRY_KEY].view
        assert view is not None
        assert view.version == 2


async def test_failed_refresh_is_recorded_and_the_loop_goes_on(tmp_path: Path) -> None:
    calls = 0
    seen = asyncio.Event()

    async def broken() -> RegistryView:
        nonlocal calls
        calls += 1
        if calls >= 3:
            seen.set()
        raise ConfigError("mirror unreachable")

    app = create_app(
        _config(tmp_path, registry_refresh_seconds=0.01),
        signing_key=SigningKey.from_seed(generate_seed()),
        registry_refresh=broken,
    )
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)):
        async with asyncio.timeout(10):
            await seen.wait()
        assert app[REGISTRY_KEY].last_error == "ConfigError: mirror unreachable"


async def test_the_running_node_logs_its_audit_head(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The log leaves the machine where the database does not: the head written there is what
    # `permitnet node audit verify --witnessed` checks the log against (node/audit.py).
    caplog.set_level(logging.INFO, logger="permitnet.node.app")

    async def never() -> RegistryView:
        raise ConfigError("no registry in this test")

    app = create_app(
        _config(tmp_path),
        signing_key=SigningKey.from_seed(generate_seed()),
        registry_refresh=never,
    )
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)):
        async with asyncio.timeout(10):
            while "audit head" not in caplog.text:  # noqa: ASYNC110 - a log line is no event
                await asyncio.sleep(0.01)
        head = await audit.head(app[STORE_KEY])
    assert f"audit head {head}" in caplog.text


def test_config_round_trip(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        authority_name='Bundesinstitut "BfArM"\\Bonn',
        registry_urls=("https://a.example", "https://b.example"),
        port=9000,
        insecure_plaintext_key=True,
    )
    config.save()
    loaded = NodeConfig.load(tmp_path)
    assert loaded == config
    assert loaded.database_path == tmp_path / "node.sqlite3"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(None, "not found", id="missing"),
        pytest.param("country = ", "cannot read", id="not-toml"),
        pytest.param('format = "other"', "format must be", id="wrong-format"),
        pytest.param(
            'format = "permitnet-node-config-1"\ncountry = "DE"', "is required", id="missing-fields"
        ),
        pytest.param(
            'format = "permitnet-node-config-1"\ncolour = "red"',
            "unknown settings",
            id="unknown-setting",
        ),
        pytest.param(
            'format = "permitnet-node-config-1"\nport = "80"', "wrong type", id="port-as-text"
        ),
        pytest.param(
            'format = "permitnet-node-config-1"\ninsecure_plaintext_key = 1',
            "wrong type",
            id="bool-as-int",
        ),
    ],
)
def test_bad_config_files(tmp_path: Path, text: str | None, message: str) -> None:
    if text is not None:
        (tmp_path / CONFIG_FILE).write_text(text)
    with pytest.raises(ConfigError, match=message):
        NodeConfig.load(tmp_path)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        pytest.param({"country": "ZZ"}, "not an ISO", id="unassigned-country"),
        pytest.param({"country": "Germany"}, "alpha-2", id="country-name"),
        pytest.param({"registry_urls": ()}, "at least one", id="no-registry"),
        pytest.param({"registry_urls": ("file:///x",)}, "http", id="registry-not-http"),
        pytest.param({"public_url": "example.org"}, "http", id="public-url-no-scheme"),
        pytest.param({"port": 70000}, "port", id="port-range"),
        pytest.param({"authority_name": " "}, "authority_name", id="blank-authority"),
        pytest.param({"registry_refresh_seconds": 0}, "positive", id="zero-refresh"),
        pytest.param({"registry_grace_seconds": -1}, "negative", id="negative-grace"),
        pytest.param({"max_request_bytes": 10}, "at least", id="tiny-body-limit"),
    ],
)
def test_bad_config_values(tmp_path: Path, over: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, **over)
