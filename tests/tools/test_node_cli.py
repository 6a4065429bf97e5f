"""``permitnet node init|token|audit``, run as the operator would, on real files."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import pytest

from permitnet.node import tokens
from permitnet.node.config import NodeConfig
from permitnet.node.keystore import load_key
from permitnet.node.store import Store
from permitnet.protocol.cose import public_key_from_seed
from permitnet.protocol.registry_requests import verify_key_request
from permitnet.protocol.registry_root import RootMetadata, sign_root
from permitnet.tools.cli import main

if TYPE_CHECKING:
    from pathlib import Path

ROOT_SEED = bytes(range(32))


@pytest.fixture
def root_file(tmp_path: Path) -> Path:
    public = public_key_from_seed(ROOT_SEED)
    root = RootMetadata(
        version=1, issued_at=1, threshold=1, root_keys=(public,), snapshot_keys=(public,)
    )
    path = tmp_path / "root.cbor"
    path.write_bytes(sign_root(root, [ROOT_SEED]))
    return path


def _init(node: Path, root: Path, *extra: str) -> int:
    return main(
        [
            "node",
            "init",
            str(node),
            "--country",
            "DE",
            "--authority",
            "BfArM",
            "--registry",
            "http://127.0.0.1:9",
            "--registry-root",
            str(root),
            "--kdf-cost",
            "interactive",
            *extra,
        ]
    )


def test_init_encrypted(
    tmp_path: Path,
    root_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PERMITNET_KEY_PASSPHRASE", "s3cret pass")
    node = tmp_path / "de"
    assert _init(node, root_file) == 0
    out = capsys.readouterr().out
    config = NodeConfig.load(node)
    assert config.country == "DE"
    assert config.registry_root_path.read_bytes() == root_file.read_bytes()
    assert not config.insecure_plaintext_key
    key = load_key(config.key_path, passphrase="s3cret pass")
    assert key.kid.hex() in out
    request = verify_key_request((node / "enrollment-request.cose").read_bytes(), {})
    assert request.public_key == key.public_key
    assert request.country == "DE"
    assert config.database_path.is_file()
    # Refuses to overwrite the node it just made.
    assert _init(node, root_file) == 1
    assert "refusing to overwrite" in capsys.readouterr().err


def test_init_with_the_issue_s_minimal_arguments(tmp_path: Path, root_file: Path) -> None:
    node = tmp_path / "fr"
    argv = [
        "node",
        "init",
        str(node),
        "--country",
        "FR",
        "--registry",
        "http://127.0.0.1:9",
        "--registry-root",
        str(root_file),
        "--insecure-plaintext-key",
    ]
    assert main(argv) == 0
    assert NodeConfig.load(node).authority_name == "Competent national authority of France"


def test_init_plaintext_warns(
    tmp_path: Path, root_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _init(tmp_path / "demo", root_file, "--insecure-plaintext-key") == 0
    assert "UNENCRYPTED" in capsys.readouterr().err
    record = json.loads((tmp_path / "demo" / "signing-key.json").read_text())
    assert record["protection"] == "insecure-plaintext"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--country", "XX"], "not an ISO 3166-1", id="unknown-country"),
        pytest.param(["--country", "de"], "upper-case", id="lower-case-country"),
        pytest.param(["--registry", "ftp://x"], "http(s) URL", id="bad-registry-url"),
    ],
)
def test_init_bad_arguments(
    tmp_path: Path,
    root_file: Path,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = {"--country": "DE", "--registry": "http://127.0.0.1:9"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = [
        "node",
        "init",
        str(tmp_path / "n"),
        "--authority",
        "A",
        "--registry-root",
        str(root_file),
        "--insecure-plaintext-key",
    ]
    for k, v in base.items():
        argv += [k, v]
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "n" / "node.toml").exists()


def test_init_refuses_bad_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "root.cbor"
    bad.write_bytes(b"\xa0")
    assert _init(tmp_path / "n", bad, "--insecure-plaintext-key") == 1
    assert "permitnet: error:" in capsys.readouterr().err


def test_init_without_passphrase_fails_clearly(
    tmp_path: Path,
    root_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("PERMITNET_KEY_PASSPHRASE", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert _init(tmp_path / "n", root_file) == 1
    assert "PERMITNET_KEY_PASSPHRASE" in capsys.readouterr().err


def test_tokens_and_audit(
    tmp_path: Path, root_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = tmp_path / "de"
    assert _init(node, root_file, "--insecure-plaintext-key") == 0
    capsys.readouterr()
    assert (
        main(
            [
                "node",
                "token",
                "create",
                str(node),
                "--name",
                "ERP",
                "--actor",
                "erp",
                "--scopes",
                "read,draft",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    secret = out[-1]
    assert secret.startswith("pnt_")
    token_id = out[0].split()[1]
    assert main(["node", "token", "list", str(node)]) == 0
    listing = capsys.readouterr().out
    assert "actor=erp" in listing
    assert secret not in listing
    assert main(["node", "token", "revoke", str(node), token_id]) == 0
    assert main(["node", "token", "revoke", str(node), token_id]) == 1
    assert (
        main(
            [
                "node",
                "token",
                "create",
                str(node),
                "--name",
                "x",
                "--actor",
                "y",
                "--scopes",
                "admin",
            ]
        )
        == 1
    )
    assert "unknown scopes" in capsys.readouterr().err
    assert main(["node", "audit", "verify", str(node)]) == 0
    verified = capsys.readouterr().out
    assert "3 rows, hash chain intact" in verified
    assert "cannot be told without a head recorded earlier" in verified
    assert main(["node", "audit", "head", str(node)]) == 0
    head = capsys.readouterr().out.strip()
    assert head.startswith("3:")
    assert len(head) == 2 + 64
    assert main(["node", "audit", "verify", str(node), "--witnessed", head]) == 0
    assert f"witnessed head {head}: present, same hash" in capsys.readouterr().out
    later = "4:" + head[2:]
    assert main(["node", "audit", "verify", str(node), "--witnessed", later]) == 1
    assert "audit log row 4: witnessed, but the log ends at row 3" in capsys.readouterr().err
    assert main(["node", "audit", "verify", str(node), "--witnessed", "3:nothex"]) == 1
    assert "ROW:HASH" in capsys.readouterr().err

    async def rows() -> int:
        store = await Store.open(node / "node.sqlite3")
        try:
            async with store.read() as tx:
                row = await tx.fetchone("SELECT count(*) FROM audit_log")
                assert row is not None
                return int(row[0])
        finally:
            await store.close()

    assert asyncio.run(rows()) == 3


def test_serve_needs_a_node_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["node", "serve", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "node.toml not found" in err
    assert "a node directory?" in err


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_runs_the_composed_node(tmp_path: Path, root_file: Path) -> None:
    import os
    import signal
    import sys

    import aiohttp

    node = tmp_path / "de"
    # The command runs its own event loop, so it runs in a thread here.
    assert await asyncio.to_thread(_init, node, root_file, "--insecure-plaintext-key") == 0
    store = await Store.open(node / "node.sqlite3")
    try:
        _, token = await tokens.create_token(
            store, name="t", actor="a", scopes="read", created_by="test"
        )
    finally:
        await store.close()
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "permitnet.tools.cli",
        "node",
        "serve",
        str(node),
        "--port",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/api/v1/status"
            async with asyncio.timeout(30):
                while True:
                    try:
                        async with session.get(
                            url, headers={"Authorization": f"Bearer {token}"}
                        ) as r:
                            status, body = r.status, await r.json()
                            break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.1)  # polling a bounded condition: the port opening
            assert status == 200
            assert body["country"] == "DE"
            assert body["registry"]["version"] is None
            async with session.get(f"http://127.0.0.1:{port}/api/v1/openapi.json") as r:
                assert r.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            await proc.wait()
