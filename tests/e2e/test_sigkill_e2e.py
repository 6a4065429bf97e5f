"""A node killed with SIGKILL during delivery neither loses nor duplicates anything.

DE is a real ``permitnet node serve`` process; FR is an in-process node that holds its answers
for a moment after committing, so that the kill lands in the worst window: FR has stored
documents whose receipts DE has not recorded yet. After DE restarts it delivers what is left,
FR answers ``duplicate`` for what it already holds, and both sides end up with every document
exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from permitnet.node import drafting
from permitnet.node.config import NodeConfig
from permitnet.node.keystore import load_key
from permitnet.node.lifecycle import ACTIVE
from permitnet.node.store import Store
from permitnet.protocol.signed import SignedDocument
from tests.e2e.conftest import bound_socket, ic_body, wait_until

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from tests.e2e.conftest import Network

pytestmark = pytest.mark.slow

DOCUMENTS = 600


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "permitnet.tools.cli", *args]


def _outbox_counts(database: Path) -> tuple[int, int]:
    """(delivered, total) outbox rows, read from another process's live WAL database."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute(
            "SELECT coalesce(sum(delivered_at IS NOT NULL AND receipt IS NOT NULL), 0), "
            "count(*) FROM outbox"
        ).fetchone()
    finally:
        db.close()
    return int(row[0]), int(row[1])


async def _issue_offline(config: NodeConfig, count: int) -> list[str]:
    """Store signed certificates with their outbox rows, as the lifecycle does, before serving."""
    key = load_key(config.key_path, passphrase=None)
    store = await Store.open(config.database_path)
    ids = []
    try:
        async with store.transaction() as tx:
            for n in range(count):
                document = drafting.build_import_certificate(
                    ic_body(exporting_country="FR", number=f"IC-K-{n:05d}"),
                    issuer="DE",
                    authority="Authority DE",
                    issued_at=tx.now - 5,
                )
                signed = SignedDocument.sign(document, signing_key=key.seed, kid=key.kid)
                record = drafting.record_for(
                    signed.raw, document, direction="outbound", state=ACTIVE
                )
                await tx.insert_document(record, actor="officer", outbox_peers=["FR"])
                ids.append(record.id)
    finally:
        await store.close()
    return ids


async def _start_serving(directory: Path, url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, stopped by the test
        _cli("node", "serve", str(directory)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )

    async def healthy() -> bool:
        if process.poll() is not None:
            pytest.fail(f"permitnet node serve exited with {process.returncode}")
        try:
            async with aiohttp.ClientSession() as session, session.get(url + "/healthz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    await wait_until(healthy, within=30)
    return process


async def test_sigkill_during_delivery_loses_and_duplicates_nothing(
    network: Network, tmp_path: Path
) -> None:
    (fr,) = await network.start("FR")
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}"
    directory = tmp_path / "de-node"
    root = tmp_path / "root.cbor"
    root.write_bytes(network.registry.pinned_root)
    init = subprocess.run(  # noqa: ASYNC221 - a short command before anything else runs
        _cli(
            "node",
            "init",
            str(directory),
            "--country",
            "DE",
            "--authority",
            "Authority DE",
            "--registry",
            network.registry.url,
            "--registry-root",
            str(root),
            "--port",
            str(port),
            "--insecure-plaintext-key",
        ),
        capture_output=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr.decode()
    config = NodeConfig.load(directory)
    network.keys["DE"] = load_key(config.key_path, passphrase=None)
    await network.registry.enroll("DE", url, network.keys["DE"])
    await network.registry.set_estimate("DE", 10**12)
    await network.registry.publish()
    await fr.refresh_registry()
    ids = await _issue_offline(config, DOCUMENTS)

    # FR answers each batch a moment after committing it: the window the kill must hit.
    original = fr.exchange.pipeline.receive

    async def receive_then_linger(*args: Any, **kwargs: Any) -> Any:
        results = await original(*args, **kwargs)
        await asyncio.sleep(1.0)
        return results

    fr.exchange.pipeline.receive = receive_then_linger  # type: ignore[method-assign]
    process = await _start_serving(directory, url)
    try:
        await wait_until(lambda: _fr_holds_some(fr))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    delivered_at_kill, total = _outbox_counts(config.database_path)
    held_at_kill = await fr.count("SELECT count(*) FROM documents")
    assert total == DOCUMENTS
    assert delivered_at_kill < held_at_kill, "the kill must land after FR stored documents"

    fr.exchange.pipeline.receive = original  # type: ignore[method-assign]
    process = await _start_serving(directory, url)
    try:
        await wait_until(lambda: _all_delivered(config.database_path), within=60)
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert await fr.count("SELECT count(*) FROM documents") == DOCUMENTS
    assert (
        await fr.count(
            "SELECT count(*) FROM (SELECT subject FROM events WHERE kind = 'document' "
            "GROUP BY subject HAVING count(*) > 1)"
        )
        == 0
    )
    assert await fr.count("SELECT count(*) FROM quarantine") == 0
    await _check_every_id(fr, ids)


async def _fr_holds_some(fr: Any) -> bool:
    return bool(await fr.count("SELECT count(*) FROM documents"))


async def _all_delivered(database: Path) -> bool:
    delivered, total = _outbox_counts(database)
    return delivered == total == DOCUMENTS


async def _check_every_id(fr: Any, ids: Sequence[str]) -> None:
    for doc_id in ids:
        assert await fr.holds(doc_id), doc_id
