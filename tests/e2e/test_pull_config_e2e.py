"""A node behind NAT set up only with the command line: ``node init --pull-from`` and ``serve``.

India's node is created by ``permitnet node init ... --pull-from DE`` and run by
``permitnet node serve`` in its own process; nothing is set in code. The registry lists no
endpoint for India, so Germany's node cannot push to it: the certificate arrives only because
India's node pulls it, as its ``node.toml`` says, and acknowledges it with a signed receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from permitnet.node.config import NodeConfig
from permitnet.node.keystore import load_key
from permitnet.protocol.cose import public_key_from_seed
from permitnet.protocol.registry_root import RootMetadata, sign_root
from permitnet.tools.cli import main
from tests.e2e.conftest import ic_body

if TYPE_CHECKING:
    import pytest

    from tests.e2e.conftest import Network

_REPO = Path(__file__).resolve().parents[2]
_ROOT_SEED = bytes(range(32))


def _init(node_dir: Path, network: Network, *extra: str) -> int:
    root_file = node_dir.parent / "registry-root-for-init.cbor"
    root_file.write_bytes(network.registry.pinned_root)
    return main(
        [
            "node",
            "init",
            str(node_dir),
            "--country",
            "IN",
            "--registry",
            network.registry.url,
            "--registry-root",
            str(root_file),
            "--insecure-plaintext-key",
            *extra,
        ]
    )


async def test_node_configured_only_by_node_toml_receives_by_pulling(
    network: Network, tmp_path: Path
) -> None:
    node_dir = tmp_path / "node-IN"
    code = await asyncio.to_thread(
        _init, node_dir, network, "--pull-from", "DE", "--pull-interval", "1", "--port", "0"
    )
    assert code == 0
    table = tomllib.loads((node_dir / "node.toml").read_text(encoding="utf-8"))["exchange"]
    assert table == {"pull_from": ["DE"], "pull_interval_seconds": 1.0, "signature_worker": True}

    # India's key, made by init, is enrolled; its registry entry lists no endpoint at all.
    config = NodeConfig.load(node_dir)
    key = load_key(config.key_path, passphrase=None)
    await network.enroll("DE")
    await network.registry.admin(
        "countries", {"code": "IN", "authority": "Authority IN", "endpoints": []}
    )
    await network.registry.enroll_key("IN", key)
    await network.registry.set_estimate("IN", 10**12)
    await network.registry.publish()
    (de,) = await network.start("DE")

    log_path = tmp_path / "node-IN.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "permitnet.tools.cli",
            "node",
            "serve",
            str(node_dir),
            cwd=_REPO,
            env=os.environ.copy(),
            stdout=log,
            stderr=log,
        )
    try:
        ic = await de.issue("import_certificate", ic_body(exporting_country="IN"))

        async def delivered_or_dead() -> bool:
            return await de.delivered(ic.id) or process.returncode is not None

        await network.wait_until(delivered_or_dead, within=60)
        assert process.returncode is None, log_path.read_text(encoding="utf-8")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    assert "pulling documents from DE every 1 s" in log_path.read_text(encoding="utf-8")
    # Germany holds India's signed receipt; it never reached India by pushing.
    async with de.store.read() as tx:
        (row,) = await tx.outbox_for_document(ic.id)
    assert row.peer == "IN"
    assert row.receipt
    assert row.delivered_at is not None
    with sqlite3.connect(config.database_path) as db:
        stored = db.execute("SELECT count(*) FROM documents WHERE id = ?", (ic.id,)).fetchone()
        quarantined = db.execute("SELECT count(*) FROM quarantine").fetchone()
    assert stored == (1,)
    assert quarantined == (0,)


def test_init_refuses_a_bad_pull_from_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public = public_key_from_seed(_ROOT_SEED)
    root = tmp_path / "root.cbor"
    root.write_bytes(
        sign_root(
            RootMetadata(
                version=1, issued_at=1, threshold=1, root_keys=(public,), snapshot_keys=(public,)
            ),
            [_ROOT_SEED],
        )
    )
    for value, message in (
        ("FR,XX", "pull_from: 'XX' is not an ISO 3166-1 alpha-2 country code"),
        ("fr", "pull_from: country must be an upper-case ISO 3166-1 alpha-2 code, got 'fr'"),
        ("IN", "pull_from: IN is this node's own country"),
        ("FR,FR", "pull_from: FR is listed twice"),
    ):
        node_dir = tmp_path / f"node-{len(value)}-{value.replace(',', '_')}"
        code = main(
            [
                "node",
                "init",
                str(node_dir),
                "--country",
                "IN",
                "--registry",
                "http://127.0.0.1:9",
                "--registry-root",
                str(root),
                "--insecure-plaintext-key",
                "--pull-from",
                value,
            ]
        )
        assert code == 1
        err = capsys.readouterr().err
        assert err == f"permitnet: error: {message}\n"
        assert not node_dir.exists()
