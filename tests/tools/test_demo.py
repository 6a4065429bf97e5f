"""``permitnet demo`` as an operator runs it: a subprocess on free ports, stopped with Ctrl-C."""

from __future__ import annotations

import http.cookiejar
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

READY = "permitnet demo network is running"
#: The banner's last line: everything before it has been printed.
BANNER_END = "LAN discovery: permitnet discover"


class Demo:
    """A running ``permitnet demo`` subprocess and its output, read without blocking."""

    def __init__(self, data: Path, *extra: str) -> None:
        script = Path(sys.executable).parent / "permitnet"
        self.process = subprocess.Popen(
            [str(script), "demo", "--data", str(data), "--base-port", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_line(self, text: str, *, within: float) -> None:
        deadline = time.monotonic() + within
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                pytest.fail(f"no {text!r} within {within} s; output:\n" + "\n".join(self.lines))
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"the demo exited before {text!r}; output:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if text in line:
                return

    def interrupt(self, *, within: float = 30) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=within)
        while (line := self._queue.get(timeout=within)) is not None:
            self.lines.append(line)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _json(url: str, token: str) -> Any:
    status, body = _get(url, token)
    assert status == 200, (url, status, body[:300])
    return json.loads(body)


def _log_in(base: str, username: str, password: str) -> str:
    """Log in through the web app's form (with its CSRF token) and return the page shown."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    with opener.open(base + "/login", timeout=10) as response:
        form = response.read().decode()
    match = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert match, form[:500]
    body = urllib.parse.urlencode(
        {"csrf_token": match[1], "next": "/", "username": username, "password": password}
    ).encode()
    request = urllib.request.Request(base + "/login", data=body, headers={"Origin": base})
    with opener.open(request, timeout=10) as response:
        assert response.status == 200
        assert response.url.rstrip("/") == base
        return str(response.read().decode())


def _wait_answering(url: str, *, within: float = 30) -> int:
    deadline = time.monotonic() + within
    while True:
        try:
            status, _body = _get(url)
        except OSError:
            status = 0
        if status and status < 500:
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer within {within} s")
        time.sleep(0.1)


def test_demo_starts_seeds_stops_cleanly_and_reuses_its_data(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    demo = Demo(data, "--no-discovery")
    try:
        demo.wait_for_line(BANNER_END, within=180)
        assert any(READY in line for line in demo.lines)
        state = json.loads((data / "demo.json").read_text())
        ports, tokens = state["ports"], state["api_tokens"]
        output = "\n".join(demo.lines)
        for country in ("DE", "FR", "IN"):
            assert f"http://127.0.0.1:{ports[country]}/" in output
            assert f"{country.lower()}-officer" in output
        assert f"http://127.0.0.1:{ports['registry']}/v1/snapshot" in output

        # Every URL printed answers: the registry, each node's web app, health and readiness.
        assert _wait_answering(f"http://127.0.0.1:{ports['registry']}/v1/snapshot") == 200
        for country in ("DE", "FR", "IN"):
            base = f"http://127.0.0.1:{ports[country]}"
            assert _wait_answering(base + "/") < 400
            assert _wait_answering(base + "/readyz") == 200

        # The seeded trades are there, as each node's API reports them.
        de = f"http://127.0.0.1:{ports['DE']}/api/v1"
        fr = f"http://127.0.0.1:{ports['FR']}/api/v1"
        india = f"http://127.0.0.1:{ports['IN']}/api/v1"
        alerts = _json(fr + "/alerts", tokens["FR"])["alerts"]
        assert [a["kind"] for a in alerts] == ["quantity_mismatch"]
        assert "received 4.8 kg" in alerts[0]["message"]
        de_docs = _json(de + "/documents", tokens["DE"])["documents"]
        assert {d["type"] for d in de_docs} == {
            "import_certificate",
            "export_authorization",
            "endorsement",
        }
        fr_docs = _json(fr + "/documents", tokens["FR"])["documents"]
        # FR: its own codeine trade with IN (3) and DE's morphine trade (3).
        assert len(fr_docs) == 6
        drafts = _json(india + "/drafts", tokens["IN"])["drafts"]
        held = [d for d in drafts if d["state"] == "held"]
        assert len(held) == 1
        assert "fentanyl" in json.dumps(held[0])

        # The printed credentials open the web app: France's signing officer logs in.
        password = state["credentials"]["FR"]["fr-officer"]["password"]
        assert f"fr-officer   {password}" in output
        page = _log_in(f"http://127.0.0.1:{ports['FR']}", "fr-officer", password)
        assert "Claire Martin" in page
        # Her dashboard shows the discrepancy alert raised by Germany's endorsement.
        assert "quantity mismatch" in page

        assert demo.interrupt() == 0
        assert "demo network stopped" in demo.lines[-1]
        assert "Traceback" not in "\n".join(demo.lines)
    finally:
        demo.stop()

    # A second start reuses everything: same ports, same documents, no new trades. This time
    # with LAN discovery on (the default), announced on the loopback interface only.
    again = Demo(data)
    try:
        again.wait_for_line(BANNER_END, within=120)
        assert not any("making the demo trades" in line for line in again.lines)
        assert json.loads((data / "demo.json").read_text())["ports"] == ports
        assert len(_json(fr + "/documents", tokens["FR"])["documents"]) == 6
        if not any("LAN discovery not available" in line for line in again.lines):
            found = _discover()
            for country in ("DE", "FR", "IN"):
                url = f"http://127.0.0.1:{ports[country]}"
                assert any(n["country"] == country and url in n["urls"] for n in found), found
        assert again.interrupt() == 0
        assert "Traceback" not in "\n".join(again.lines)
    finally:
        again.stop()

    # --reset starts afresh: new keys, new trades.
    fresh = Demo(data, "--no-discovery", "--reset")
    try:
        fresh.wait_for_line(BANNER_END, within=180)
        assert any(f"deleted {data}" in line for line in fresh.lines)
        assert any("making the demo trades" in line for line in fresh.lines)
        assert json.loads((data / "demo.json").read_text())["api_tokens"] != tokens
        assert fresh.interrupt() == 0
    finally:
        fresh.stop()


def _discover() -> list[dict[str, Any]]:
    script = Path(sys.executable).parent / "permitnet"
    result = subprocess.run(
        [str(script), "discover", "--interface", "127.0.0.1", "--seconds", "5", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


def test_demo_refuses_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("not the demo's")
    script = Path(sys.executable).parent / "permitnet"
    for extra in ([], ["--reset"]):
        result = subprocess.run(
            [str(script), "demo", "--data", str(tmp_path), "--base-port", "0", *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert "holds no demo.json" in result.stderr
        assert result.stderr.count("\n") == 1
    assert (tmp_path / "precious.txt").read_text() == "not the demo's"
