"""The key rotation drill, end to end, on a real registry and real nodes on loopback.

Germany's node prepares a new key and a rotation request signed by its current key
(``permitnet node rotate-key DIR``), the INCB operator
approves it through the registry's admin API and publishes, the node activates the new key once
the registry lists it (``permitnet node rotate-key DIR --activate``), and restarts. Then: documents signed with the old key still
verify, new ones are signed with the new key, and the peer accepts them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from permitnet.node.config import NodeConfig
from permitnet.node.key_rotation import REQUEST_FILE, next_key_path
from permitnet.node.keystore import load_key, save_key
from permitnet.protocol.cose import Sign1Message
from permitnet.protocol.registry_verify import verify_document
from permitnet.tools.cli import main
from tests.e2e.conftest import ea_body, ic_body

if TYPE_CHECKING:
    from tests.e2e.conftest import Network, RunningNode


def _rotation_config(node: RunningNode, registry_url: str) -> NodeConfig:
    """The node directory's node.toml as ``permitnet node rotate-key`` reads it."""
    config = NodeConfig(
        data_dir=node.data_dir,
        country=node.country,
        authority_name=f"Authority {node.country}",
        registry_urls=(registry_url,),
        registry_root=Path("registry-root.cbor"),
        public_url=node.url,
        insecure_plaintext_key=True,
    )
    config.save()
    return config


async def test_key_rotation_drill(network: Network) -> None:
    de, fr = await network.start("DE", "FR")
    old_key = de.key
    before = await de.issue("import_certificate", ic_body(exporting_country="FR"))
    await network.wait_until(lambda: de.delivered(before.id))

    # Step 1: the node makes the next key and a request signed by the current key.
    config = _rotation_config(de, network.registry.url)
    save_key(config.key_path, old_key, passphrase=None, insecure_plaintext=True)
    assert await asyncio.to_thread(main, ["node", "rotate-key", str(de.data_dir)]) == 0
    request_file = de.data_dir / REQUEST_FILE
    new_kid = load_key(next_key_path(config), passphrase=None).kid

    # Step 2: the INCB receives the request, approves it after confirming the fingerprint,
    # and publishes a snapshot.
    registry = network.registry
    async with registry.session.post(
        f"{registry.url}/v1/key-requests", data=request_file.read_bytes()
    ) as response:
        answer = await response.json()
        assert response.status == 201, answer
    await registry.admin(
        f"key-requests/{answer['id']}/approve",
        {"fingerprint": new_kid.hex(), "overlap_seconds": 3600},
    )
    await registry.publish()
    await network.refresh_all()

    # Step 3: the node activates the key its verified registry view now lists, and restarts.
    assert (
        await asyncio.to_thread(main, ["node", "rotate-key", str(de.data_dir), "--activate"]) == 0
    )
    new_key = load_key(config.key_path, passphrase=None)
    assert new_key.kid == new_kid
    assert not request_file.exists()
    network.keys["DE"] = new_key
    await network.stop_node("DE")
    de = await network.start_node("DE")
    assert de.key.kid == new_key.kid

    # New documents are signed with the new key, and the peer accepts them.
    after = await de.issue(
        "import_certificate", ic_body(exporting_country="FR", number="IC-after-rotation")
    )
    assert Sign1Message.from_bytes(after.raw).kid == new_key.kid
    await network.wait_until(lambda: de.delivered(after.id))
    assert await fr.holds(after.id)
    # The exchange goes on in both directions on the new key.
    ea = await fr.issue("export_authorization", ea_body(after.id))
    await network.wait_until(lambda: fr.delivered(ea.id))
    assert await de.holds(ea.id)

    # The document signed with the old key still verifies against the newest registry view.
    fr_view = fr.fetcher.current
    assert fr_view is not None
    old_signed = (await fr.store.get_document(before.id)).raw
    assert Sign1Message.from_bytes(old_signed).kid == old_key.kid
    verified = verify_document(old_signed, fr_view, now=int(time.time()))
    assert verified.document.issuer == "DE"
    retired = fr_view.key(old_key.kid)
    assert retired is not None
    assert retired.status == "retired"
    active = fr_view.key(new_key.kid)
    assert active is not None
    assert active.status == "active"
    for node in (de, fr):
        assert await node.count("SELECT count(*) FROM quarantine") == 0
