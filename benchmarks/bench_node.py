"""Node benchmarks: issuing, receiving over loopback (c=16), and end-to-end chain latency.

Run: ``.venv/bin/python benchmarks/bench_node.py`` (about 10-20 s on the project machine;
``--quick`` for a smoke run of a few seconds).

Printed beside the figures, measured in the same run:

* raw Ed25519 verifications/s (PyNaCl, one core);
* raw receive limit: decode + verify + hash of the same signed documents
  (``SignedDocument.verify``) plus a batched SQLite insert (1000 rows per transaction, WAL),
  in-process, no HTTP; the goal is batched receive >= 50 % of it, one-per-request >= 25 %.

The raw limits are measured in CPU seconds of one core (``time.process_time``), and the
receiving node's throughput is printed both per wall-clock second and per CPU-second of its
processes (from ``/proc``; the node and its signature worker): on a shared machine the
wall-clock figure depends on who else runs, the per-CPU-second ratio much less.

The receiving node runs in a child process (``--serve-receiver``) so that the load generator
and the node each have a core, as two machines would. Nodes use their production settings
(SQLite ``synchronous=FULL``: a committed document survives power loss).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import nacl.bindings
from aiohttp import web

from permitnet.node.app import SERVICES_KEY, STORE_KEY, create_app
from permitnet.node.config import NodeConfig
from permitnet.node.keystore import SigningKey
from permitnet.node.lifecycle import NodeServices
from permitnet.node.peer_auth import sign_request
from permitnet.node.peer_wire import PATH_DOCUMENTS, decode_results, encode_byte_strings
from permitnet.node.registry_holder import RegistryHolder
from permitnet.node.store import Store
from permitnet.node.testing import TestCountry, estimate, registry_view
from permitnet.protocol.cbor import encode_cbor
from permitnet.protocol.cose import Sign1Message
from permitnet.protocol.doc_examples import example_import_certificate, example_seed
from permitnet.protocol.signed import SignedDocument, document_id

CONCURRENCY = 16
KEYS = {c: SigningKey.from_seed(example_seed(c)) for c in ("DE", "FR")}
YEAR = dt.datetime.now(dt.UTC).year


def countries(ports: dict[str, int]) -> list[TestCountry]:
    return [
        TestCountry(
            code=c,
            public_key=KEYS[c].public_key,
            kid=KEYS[c].kid,
            endpoint=f"http://127.0.0.1:{ports.get(c, 9)}",
        )
        for c in ("DE", "FR")
    ]


def view(ports: dict[str, int]) -> Any:
    big = 10**15
    return registry_view(
        countries(ports), [estimate("DE", "morphine", YEAR, big)], issued_at=0, expires_at=2**40
    )


def config(data_dir: Path, country: str, port: int) -> NodeConfig:
    return NodeConfig(
        data_dir=data_dir,
        country=country,
        authority_name=f"Authority {country}",
        registry_urls=("http://127.0.0.1:9",),
        registry_root=data_dir / "root.cbor",
        public_url=f"http://127.0.0.1:{port}",
        max_request_bytes=4 * 1024 * 1024,
    )


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def now() -> int:
    return int(time.time())


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its live children (Linux ``/proc``).

    The children count: the node checks signatures in a worker process.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            total += process_cpu_seconds(int(child))
    return total


# Raw limits --------------------------------------------------------------------------------


def raw_limits(raws: list[bytes]) -> dict[str, float]:
    public = KEYS["DE"].public_key
    messages = [Sign1Message.from_bytes(r) for r in raws[:2000]]
    to_verify = [
        m.signature + encode_cbor(["Signature1", m.protected_bytes, b"", m.payload])
        for m in messages
    ]
    start = time.process_time()
    for signed in to_verify:
        nacl.bindings.crypto_sign_open(signed, public)
    ed25519 = len(to_verify) / (time.process_time() - start)
    start = time.process_time()
    for raw in raws[:2000]:
        SignedDocument.verify(raw, public)
    verify_doc = (time.process_time() - start) / min(2000, len(raws))
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "raw.sqlite3", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        # The shape of the node's documents table: the signed bytes plus indexed columns.
        db.execute(
            "CREATE TABLE d (id TEXT PRIMARY KEY, raw BLOB NOT NULL, doc_type TEXT NOT NULL, "
            "issuer TEXT NOT NULL, recipient TEXT NOT NULL, issued_at INTEGER NOT NULL)"
        )
        db.execute("CREATE INDEX d_type ON d (doc_type, issued_at)")
        db.execute("CREATE INDEX d_issuer ON d (issuer, issued_at)")
        rows = [
            (f"{i:064x}", raws[i % len(raws)], "import_certificate", "DE", "FR", 1_800_000_000 + i)
            for i in range(20_000)
        ]
        start = time.process_time()
        for chunk in range(0, len(rows), 1000):
            db.execute("BEGIN")
            db.executemany("INSERT INTO d VALUES (?,?,?,?,?,?)", rows[chunk : chunk + 1000])
            db.execute("COMMIT")
        insert = (time.process_time() - start) / len(rows)
        db.close()
    return {
        "ed25519_verify_per_s": ed25519,
        "verify_doc_us": verify_doc * 1e6,
        "insert_us": insert * 1e6,
        "raw_receive_per_s": 1 / (verify_doc + insert),
    }


# Issuing -----------------------------------------------------------------------------------


def ic_body(i: int) -> dict[str, Any]:
    today = dt.datetime.now(dt.UTC).date()
    return {
        "number": f"DE-IC-{i:06d}",
        "date_of_issue": today.isoformat(),
        "importer": {"name": "Pharma GmbH", "address": "Hauptstr. 1\nBerlin", "licence": "L-1"},
        "exporter": {"name": "Laboratoires SA", "address": "1 rue X, Lyon", "licence": "L-9"},
        "exporting_country": "FR",
        "items": [{"substance": "morphine", "quantity_mg": 4000, "preparation": "bulk powder"}],
        "valid_from": today.isoformat(),
        "valid_until": (today + dt.timedelta(days=180)).isoformat(),
        "several_consignments": True,
        "conditions": "",
        "estimate_year": YEAR,
    }


async def bench_issuing(tmp: Path, count: int) -> float:
    holder = RegistryHolder()
    holder.replace(view({}), now())
    store = await Store.open(tmp / "issuing.sqlite3")
    services = NodeServices(
        store=store, country="DE", authority="Authority DE", signing_key=KEYS["DE"], registry=holder
    )
    try:
        start = time.perf_counter()
        for i in range(count):
            draft = await services.create_draft("import_certificate", ic_body(i), actor="clerk")
            result = await services.approve_draft(draft.id, actor="officer")
            assert result.document is not None, result.draft.held_reason
        return count / (time.perf_counter() - start)
    finally:
        await store.close()


# Receiving ---------------------------------------------------------------------------------


def presign(count: int) -> list[bytes]:
    base = example_import_certificate(recipient="FR", exporting_country="FR")
    issued = now() - 60
    # Valid today, whatever day the benchmark runs (the example's own dates are fixed).
    today = dt.datetime.now(dt.UTC).date()
    dates = {
        "date_of_issue": today,
        "valid_from": today,
        "valid_until": today + dt.timedelta(days=180),
        "estimate_year": YEAR,
    }
    return [
        SignedDocument.sign(
            example_import_certificate(
                recipient="FR",
                exporting_country="FR",
                number=f"DE-IC-B-{i:07d}",
                issued_at=issued,
                items=base.items,
                **dates,
            ),
            signing_key=KEYS["DE"].seed,
            kid=KEYS["DE"].kid,
        ).raw
        for i in range(count)
    ]


def serve_receiver(port_file: Path, data_dir: Path) -> None:
    """Child process: FR's node on a loopback port written to ``port_file``."""
    sock = bound_socket()
    port = sock.getsockname()[1]
    app = create_app(
        config(data_dir, "FR", port),
        signing_key=KEYS["FR"],
        registry_view=view({"FR": port}),
    )

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        # Written after the socket listens: the parent reads it as the "ready" signal.
        await asyncio.to_thread(port_file.write_text, str(port))
        await asyncio.Event().wait()

    asyncio.run(main())


def prepare(raws: list[bytes]) -> tuple[bytes, dict[str, str]]:
    """A signed request (body and headers), made before the clock starts."""
    body = encode_byte_strings(raws)
    header = sign_request(
        method="POST",
        target=PATH_DOCUMENTS,
        body=body,
        sender="DE",
        audience="FR",
        signing_key=KEYS["DE"].seed,
        kid=KEYS["DE"].kid,
        now=now(),
    )
    return body, {"Authorization": header, "Content-Type": "application/cbor"}


def check_answer(raws: list[bytes], status: int, answer: bytes) -> None:
    """Every document of the request must have been accepted with a receipt."""
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {answer[:300]!r}")
    results = decode_results(answer, expected=[document_id(r) for r in raws], max_size=1 << 24)
    bad = [r for r in results if r.outcome != "accepted" or not r.receipt]
    if bad:
        raise RuntimeError(f"{len(bad)} not accepted, e.g. {bad[0].reason}")


async def bench_receive(
    url: str, raws: list[bytes], per_request: int, concurrency: int = CONCURRENCY
) -> float:
    # Requests are signed before the clock starts and answers checked after it stops, so that
    # the load generator (one Python process) does as little as possible while it is timed.
    batches = [raws[i : i + per_request] for i in range(0, len(raws), per_request)]
    requests = [(batch, *prepare(batch)) for batch in batches]
    answers: list[tuple[list[bytes], int, bytes]] = []
    queue = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for batch, body, headers in queue:
                async with session.post(url + PATH_DOCUMENTS, data=body, headers=headers) as r:
                    answers.append((batch, r.status, await r.read()))

        start = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker())
        elapsed = time.perf_counter() - start
    for batch, status, answer in answers:
        check_answer(batch, status, answer)
    return len(raws) / elapsed


# End-to-end latency ------------------------------------------------------------------------


async def bench_chain(tmp: Path, chains: int) -> list[float]:
    sockets = {c: bound_socket() for c in ("DE", "FR")}
    ports = {c: s.getsockname()[1] for c, s in sockets.items()}
    shared = view(ports)
    runners: dict[str, web.AppRunner] = {}
    for c in ("DE", "FR"):
        (tmp / c).mkdir()
        app = create_app(config(tmp / c, c, ports[c]), signing_key=KEYS[c], registry_view=shared)
        runners[c] = web.AppRunner(app, access_log=None)
        await runners[c].setup()
        await web.SockSite(runners[c], sockets[c]).start()
    de, fr = (runners[c].app for c in ("DE", "FR"))
    arrived = asyncio.Event()

    def ping(_seqs: list[int]) -> None:
        arrived.set()

    for app in (de, fr):
        app[STORE_KEY].add_listener(ping)

    async def wait_for(app: web.Application, doc_id: str) -> None:
        async with asyncio.timeout(30):
            while True:
                arrived.clear()
                async with app[STORE_KEY].read() as tx:
                    if await tx.has_document(doc_id):
                        return
                await arrived.wait()

    async def issue(app: web.Application, doc_type: str, body: dict[str, Any]) -> str:
        services = app[SERVICES_KEY]
        draft = await services.create_draft(doc_type, body, actor="clerk")
        result = await services.approve_draft(draft.id, actor="officer")
        assert result.document is not None, result.draft.held_reason
        return result.document.id

    latencies = []
    today = dt.datetime.now(dt.UTC).date().isoformat()
    try:
        for i in range(chains):
            start = time.perf_counter()
            ic = await issue(de, "import_certificate", ic_body(10_000 + i))
            await wait_for(fr, ic)
            ea_body = {
                "import_certificate": ic,
                "number": f"FR-EA-{i:06d}",
                "date_of_issue": today,
                "items": [
                    {"substance": "morphine", "quantity_mg": 4000, "preparation": "bulk powder"}
                ],
                "valid_from": today,
                "valid_until": today,
                "route": "Lyon - Frankfurt",
                "transport_mode": "air",
                "transit_countries": [],
            }
            ea = await issue(fr, "export_authorization", ea_body)
            await wait_for(de, ea)
            end_body = {
                "export_authorization": ea,
                "date_received": today,
                "received": [{"line": 0, "quantity_mg": 4000}],
            }
            endorsement = await issue(de, "endorsement", end_body)
            await wait_for(fr, endorsement)
            latencies.append(time.perf_counter() - start)
    finally:
        for runner in runners.values():
            await runner.cleanup()
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"permitnet node benchmark (cpus: {os.cpu_count()}, concurrency {args.concurrency})")
        raws = presign(args.single + args.batched)
        limits = raw_limits(raws)
        raw_limit = limits["raw_receive_per_s"]
        print(f"raw Ed25519 verify (PyNaCl):           {limits['ed25519_verify_per_s']:8.0f} /s")
        print(
            f"raw receive limit in-process:          {raw_limit:8.0f} docs/s "
            f"(decode+verify+hash {limits['verify_doc_us']:.0f} us + batched insert "
            f"{limits['insert_us']:.0f} us per document)"
        )
        issuing = await bench_issuing(tmp, args.issue)
        print(
            f"issuing (draft -> approve -> signed+stored, {args.issue}): {issuing:8.0f} docs/s "
            f"(= {issuing / raw_limit:.0%} of raw receive limit; each is 2 transactions)"
        )
        port_file = tmp / "port"
        (tmp / "fr").mkdir()
        child = subprocess.Popen(  # noqa: ASYNC220 - the child lives for the whole benchmark
            [sys.executable, __file__, "--serve-receiver", str(port_file), str(tmp / "fr")]
        )
        try:
            async with asyncio.timeout(30):
                # Polls a file another process writes: there is no event to wait on.
                while not port_file.exists() or not port_file.read_text():  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            url = f"http://127.0.0.1:{port_file.read_text()}"
            for label, docs, per_request, goal in (
                ("1 doc/request", raws[: args.single], 1, 0.25),
                (f"{args.batch} docs/request", raws[args.single :], args.batch, 0.50),
            ):
                cpu_before = process_cpu_seconds(child.pid)
                rate = await bench_receive(url, docs, per_request, args.concurrency)
                cpu = process_cpu_seconds(child.pid) - cpu_before
                per_core = len(docs) / cpu if cpu > 0 else float("nan")
                print(
                    f"receive, {label}, c={args.concurrency} ({len(docs)}): {rate:8.0f} docs/s "
                    f"= {rate / raw_limit:.0%} of raw (goal >= {goal:.0%}); receiving node "
                    f"CPU: {per_core:.0f} docs per CPU-second = {per_core / raw_limit:.0%} of raw"
                )
        finally:
            child.terminate()
            child.wait(timeout=10)
        latencies = await bench_chain(tmp, args.chains)
        print(
            f"end-to-end IC -> EA -> endorsement across two nodes ({args.chains} chains): "
            f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
            f"mean {statistics.fmean(latencies) * 1000:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--issue", type=int, default=300)
    parser.add_argument("--single", type=int, default=2000)
    parser.add_argument("--batched", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--chains", type=int, default=50)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=CONCURRENCY,
        help=f"requests in flight while receiving (the issue's figure: {CONCURRENCY})",
    )
    parser.add_argument("--serve-receiver", nargs=2, metavar=("PORT_FILE", "DIR"))
    parser.add_argument(
        "--quick", action="store_true", help="small counts: checks the benchmark runs"
    )
    args = parser.parse_args()
    if args.quick:
        args.issue, args.single, args.batched, args.chains = 20, 200, 1000, 3
    if args.serve_receiver:
        serve_receiver(Path(args.serve_receiver[0]), Path(args.serve_receiver[1]))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
