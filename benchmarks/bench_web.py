"""Web page benchmarks: dashboard and documents pages served per second, and logins per second.

Run: ``.venv/bin/python benchmarks/bench_web.py`` (about 20-40 s on the project machine).

Printed beside the figures, measured in the same run:

* raw aiohttp: the same loopback client fetching a trivial 1.5 KB HTML page from a bare
  aiohttp handler (no session, no database, no template), at the same concurrency;
* raw Argon2id: ``nacl.pwhash.argon2id.verify`` per second with the node's interactive limits
  (64 MiB, 2 passes), called in a worker thread as the login does.

The pages run with a logged-in session (a session lookup and a ``last_seen`` update per request)
over a store holding 500 signed import certificates, so the dashboard's queries have rows to
read. Every loop is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path
from typing import Final

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from nacl.pwhash import argon2id

from permitnet.node.accounts import AccountStore, PasswordHasher
from permitnet.node.keystore import SigningKey
from permitnet.node.registry_holder import RegistryHolder
from permitnet.node.testing import TestCountry, estimate, registry_view
from permitnet.node.web.testing import PASSWORD, WebNode, csrf_of, web_node

CONCURRENCY: Final = 8
REQUESTS: Final = 1500
TIME_LIMIT: Final = 12.0
DOCUMENTS: Final = 500
NOW: Final = int(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).timestamp())


async def _load(
    session: aiohttp.ClientSession, url: str, *, requests: int = REQUESTS
) -> tuple[float, list[float]]:
    """Fetch ``url`` ``requests`` times with CONCURRENCY workers; return (rate, latencies)."""
    latencies: list[float] = []
    remaining = requests
    deadline = time.monotonic() + TIME_LIMIT

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            started = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(CONCURRENCY):
            group.create_task(worker())
    return len(latencies) / (time.perf_counter() - started), latencies


async def _raw_page_rate() -> float:
    body = "<!doctype html><p>" + "x" * 1500 + "</p>"

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", handler)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        rate, _ = await _load(session, str(server.make_url("/")))
    return rate


async def _issue_documents(node: WebNode, count: int) -> None:
    services = node.services
    for i in range(count):
        body = {
            "number": f"DE-IC-{i}",
            "date_of_issue": "2026-03-01",
            "importer": {"name": "Pharma GmbH", "address": "Berlin", "licence": "L-1"},
            "exporter": {"name": "Laboratoires SA", "address": "Lyon", "licence": "L-9"},
            "exporting_country": "FR",
            "items": [{"substance": "morphine", "quantity_mg": 1000, "preparation": "powder"}],
            "valid_from": "2026-03-01",
            "valid_until": "2026-09-30",
            "several_consignments": False,
            "conditions": "",
            "estimate_year": 2026,
        }
        draft = await services.create_draft("import_certificate", body, actor="clerk")
        result = await services.approve_draft(draft.id, actor="officer")
        assert result.document is not None


async def _pages(directory: Path) -> dict[str, tuple[float, list[float]]]:
    holder = RegistryHolder()
    key = SigningKey.from_seed(b"D" * 32)
    partner = SigningKey.from_seed(b"F" * 32)
    countries = [
        TestCountry(code=code, public_key=k.public_key, kid=k.kid)
        for code, k in (("DE", key), ("FR", partner))
    ]
    holder.replace(registry_view(countries, [estimate("DE", "morphine", 2026, 10**12)]), NOW)
    results = {}
    async with web_node(
        directory, key=key, holder=holder, clock=lambda: NOW, users={"viewer": ["viewer"]}
    ) as node:
        await _issue_documents(node, DOCUMENTS)
        base = str(node.client.make_url("/"))
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            async with session.get(base + "login") as page:
                token = csrf_of(await page.text())
            data = {"csrf_token": token, "username": "viewer", "password": PASSWORD}
            async with session.post(base + "login", data=data) as response:
                assert response.status == 200
            for name, path in (("dashboard", ""), ("documents list", "documents")):
                results[name] = await _load(session, base + path)
    return results


async def _logins(directory: Path) -> tuple[float, float]:
    hasher = PasswordHasher()
    async with AccountStore.open(directory / "accounts.sqlite3", hasher=hasher) as accounts:
        await accounts.create_user(
            username="amina", display_name="A", password=PASSWORD, roles=["clerk"]
        )
        hashed = await hasher.hash(PASSWORD)
        count = 20
        started = time.perf_counter()
        for _ in range(count):
            await asyncio.to_thread(argon2id.verify, hashed.encode(), PASSWORD.encode())
        raw = count / (time.perf_counter() - started)
        started = time.perf_counter()
        for i in range(count):
            await accounts.login("amina", PASSWORD, address=f"10.0.0.{i}")
        logins = count / (time.perf_counter() - started)
    return logins, raw


def _ms(latencies: list[float], q: float) -> float:
    return statistics.quantiles(latencies, n=100)[int(q) - 1] * 1000


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        raw_rate = await _raw_page_rate()
        pages = await _pages(directory)
        logins, raw_verify = await _logins(directory)
    print(
        f"web pages, loopback, concurrency {CONCURRENCY}, logged in, {DOCUMENTS} documents stored"
    )
    print(f"  raw aiohttp 1.5 KB HTML page: {raw_rate:8.0f} requests/s")
    for name, (rate, latencies) in pages.items():
        print(
            f"  {name:<28} {rate:8.0f} pages/s  ({rate / raw_rate:5.1%} of raw)  "
            f"p50 {_ms(latencies, 50):.1f} ms  p99 {_ms(latencies, 99):.1f} ms"
        )
    print(f"  raw Argon2id verify (64 MiB, t=2): {raw_verify:6.1f} /s")
    print(
        f"  login (throttle check, verify, session insert): {logins:6.1f} /s "
        f"({logins / raw_verify:5.1%} of raw)"
    )


if __name__ == "__main__":
    asyncio.run(main())
