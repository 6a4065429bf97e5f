"""``permitnet node sync DIR`` against a real registry on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from permitnet.node.config import NodeConfig
from permitnet.tools.cli import main

if TYPE_CHECKING:
    import pytest

    from tests.e2e.conftest import Network


async def test_sync_fetches_verifies_and_caches(
    network: Network, capsys: pytest.CaptureFixture[str]
) -> None:
    (de,) = await network.start("DE")
    dead_mirror = "http://127.0.0.1:9"
    NodeConfig(
        data_dir=de.data_dir,
        country="DE",
        authority_name="Authority DE",
        registry_urls=(dead_mirror, network.registry.url),
        registry_root=Path("registry-root.cbor"),
        public_url=de.url,
        insecure_plaintext_key=True,
    ).save()
    version = await network.registry.publish()
    code = await asyncio.to_thread(main, ["node", "sync", str(de.data_dir), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    # The dead first mirror is skipped; the real registry's newest snapshot is verified.
    assert f"registry snapshot v{version} from {network.registry.url}" in out
    assert "fresh" in out


async def test_sync_with_no_working_mirror_is_one_line(
    network: Network, capsys: pytest.CaptureFixture[str]
) -> None:
    (de,) = await network.start("DE")
    NodeConfig(
        data_dir=de.data_dir,
        country="DE",
        authority_name="Authority DE",
        registry_urls=("http://127.0.0.1:9",),
        registry_root=Path("registry-root.cbor"),
        public_url=de.url,
        insecure_plaintext_key=True,
    ).save()
    code = await asyncio.to_thread(main, ["node", "sync", str(de.data_dir), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no mirror gave verified registry data: http://127.0.0.1:9" in err
