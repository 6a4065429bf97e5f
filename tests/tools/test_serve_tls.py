"""``permitnet node serve --tls-cert --tls-key --log-format json`` as a real subprocess."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from permitnet.registry.service import Registry
from tests.node.test_tls import _self_signed

pytestmark = pytest.mark.slow
PERMITNET = str(Path(sys.executable).parent / "permitnet")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _node(tmp_path: Path, port: int) -> Path:
    now = int(time.time())
    registry = Registry.init(
        tmp_path / "registry",
        root_keys_dir=tmp_path / "root-keys",
        root_keys=1,
        threshold=1,
        now=now,
        actor="test",
    )
    (tmp_path / "root.cbor").write_bytes(registry.store.root(1))
    registry.close()
    node = tmp_path / "node"
    subprocess.run(
        [
            PERMITNET,
            "node",
            "init",
            str(node),
            "--country",
            "DE",
            "--authority",
            "Bundesopiumstelle",
            "--registry",
            "http://127.0.0.1:9",
            "--registry-root",
            str(tmp_path / "root.cbor"),
            "--port",
            str(port),
            "--insecure-plaintext-key",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return node


def test_serve_https_with_json_logs(tmp_path: Path) -> None:
    port = _free_port()
    node = _node(tmp_path, port)
    cert, key = _self_signed(tmp_path, "node")
    process = subprocess.Popen(
        [
            PERMITNET,
            "node",
            "serve",
            str(node),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            "--log-format",
            "json",
            "--discovery",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        context = ssl.create_default_context(cafile=str(cert))
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{port}/healthz", context=context, timeout=5
                ) as response:
                    assert json.loads(response.read()) == {"status": "ok"}
                    break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        # Announced on loopback (--discovery), with the https scheme.
        found = subprocess.run(
            [PERMITNET, "discover", "--interface", "127.0.0.1", "--seconds", "4", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        urls = [u for row in json.loads(found.stdout) for u in row["urls"]]
        assert f"https://127.0.0.1:{port}" in urls
        # Plain HTTP on the same port is not served: TLS really is on.
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    log_lines = [line for line in err.splitlines() if line.startswith("{")]
    assert log_lines, err
    for line in log_lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(entry)


def test_serve_tls_refusals_are_one_line(tmp_path: Path) -> None:
    node = _node(tmp_path, _free_port())
    cert, _key = _self_signed(tmp_path, "a")
    _cert_b, other_key = _self_signed(tmp_path, "b")
    cases = [
        (["--tls-cert", str(cert)], "go together"),
        (["--tls-cert", str(cert), "--tls-key", str(tmp_path / "none.pem")], "not found"),
        (["--tls-cert", str(cert), "--tls-key", str(other_key)], str(other_key)),
    ]
    for extra, message in cases:
        result = subprocess.run(
            [PERMITNET, "node", "serve", str(node), *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("permitnet:")]
        assert len(errors) == 1, result.stderr
        assert message in errors[0]
        assert "Traceback" not in result.stderr
