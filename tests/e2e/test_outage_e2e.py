"""Outages: a peer that is down, and a node that cannot accept inbound connections."""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING

from tests.e2e.conftest import ic_body

if TYPE_CHECKING:
    from tests.e2e.conftest import Network, RunningNode


async def _all_attempted_and_failed(node: RunningNode, ids: list[str]) -> bool:
    async with node.store.read() as tx:
        rows = [r for i in ids for r in await tx.outbox_for_document(i)]
    return all(r.attempts >= 1 and r.delivered_at is None and r.last_error for r in rows)


async def test_peer_down_for_a_while_then_receives_everything_exactly_once(
    network: Network,
) -> None:
    de, fr = await network.start("DE", "FR")
    await network.stop_node("FR")
    ids = [
        (await de.issue("import_certificate", ic_body(exporting_country="FR", number=f"IC-{n}"))).id
        for n in range(5)
    ]
    await network.wait_until(lambda: _all_attempted_and_failed(de, ids))
    async with de.store.read() as tx:
        errors = {r.last_error for i in ids for r in await tx.outbox_for_document(i)}
    assert all("unreachable" in (e or "") for e in errors), errors

    fr = await network.start_node("FR")
    for doc_id in ids:
        await network.wait_until(functools.partial(de.delivered, doc_id))
    assert await fr.count("SELECT count(*) FROM documents") == 5
    for doc_id in ids:
        assert (
            await fr.count(
                "SELECT count(*) FROM events WHERE kind = 'document' AND subject = ?", (doc_id,)
            )
            == 1
        )
    assert await fr.count("SELECT count(*) FROM quarantine") == 0
    assert await fr.count("SELECT count(*) FROM inbound_pending") == 0
    # A later re-delivery (the sender lost its acknowledgement) changes nothing.
    raws = [(await de.store.get_document(i)).raw for i in ids]
    results = await de.exchange.delivery.push("FR", raws)
    assert [r.outcome for r in results] == ["duplicate"] * 5
    assert await fr.count("SELECT count(*) FROM documents") == 5


async def test_node_without_inbound_connections_pulls_and_acknowledges(network: Network) -> None:
    # IN's registry entry lists no endpoint: nobody can push to it, so it pulls from DE.
    await network.enroll("DE")
    await network.registry.admin(
        "countries", {"code": "IN", "authority": "Authority IN", "endpoints": []}
    )
    await network.enroll_key_only("IN")
    (de,) = await network.start("DE")
    india = await network.start_node("IN", pull_from=("DE",))
    await de.refresh_registry()
    ic = await de.issue("import_certificate", ic_body(exporting_country="IN"))
    assert india.exchange.puller is not None
    india.exchange.puller.wake()
    await network.wait_until(lambda: de.delivered(ic.id))
    assert await india.holds(ic.id)
    assert await india.exchange.puller.pull_from("DE") == 0


async def test_registry_data_past_grace_holds_documents_until_fresh_data_arrives(
    network: Network,
) -> None:
    await network.enroll("DE", "FR")
    (de,) = await network.start("DE")
    fr = await network.start_node("FR", registry_grace_seconds=1)
    # FR's newest snapshot expires in 2 s; with 1 s of grace its data is then unusable.
    await network.registry.publish(expiry_seconds=2)
    assert await fr.refresh_registry()

    async def stale() -> bool:
        return not fr.exchange.pipeline.registry_usable(int(time.time()))

    await network.wait_until(stale, within=10)
    ic = await de.issue("import_certificate", ic_body(exporting_country="FR"))

    async def held_as_pending() -> bool:
        async with de.store.read() as tx:
            (row,) = await tx.outbox_for_document(ic.id)
        return "held as pending by FR" in (row.last_error or "")

    await network.wait_until(held_as_pending)
    assert not await fr.holds(ic.id)
    assert (
        await fr.count(
            "SELECT count(*) FROM inbound_pending WHERE reason = 'registry' AND document_id = ?",
            (ic.id,),
        )
        == 1
    )

    await network.registry.publish()
    assert await fr.refresh_registry()
    # The housekeeping loop does this every 30 s; the test does not wait for it.
    await fr.exchange.pipeline.retry_pending()
    assert await fr.holds(ic.id)
    await network.wait_until(lambda: de.delivered(ic.id))
    assert await fr.count("SELECT count(*) FROM inbound_pending") == 0
    assert await fr.count("SELECT count(*) FROM quarantine") == 0
