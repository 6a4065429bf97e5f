"""The whole lifecycle across a real registry and real nodes on loopback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.e2e.conftest import YEAR, ea_body, ic_body, today

if TYPE_CHECKING:
    from tests.e2e.conftest import Network


async def test_certificate_authorization_endorsement_with_short_quantity_alert(
    network: Network,
) -> None:
    de, fr = await network.start("DE", "FR")
    ic = await de.issue("import_certificate", ic_body(exporting_country="FR"))
    await network.wait_until(lambda: de.delivered(ic.id))
    assert await fr.holds(ic.id)

    ea = await fr.issue("export_authorization", ea_body(ic.id))
    await network.wait_until(lambda: fr.delivered(ea.id))
    assert await de.holds(ea.id)

    endorsement = await de.issue(
        "endorsement",
        {
            "export_authorization": ea.id,
            "date_received": today(),
            "received": [{"line": 0, "quantity_mg": 3900}],
        },
    )
    await network.wait_until(lambda: de.delivered(endorsement.id))
    assert await fr.holds(endorsement.id)
    assert (await fr.store.get_document(ea.id)).state == "endorsed"
    (alert,) = await fr.services.list_alerts()
    assert alert.kind == "quantity_mismatch"
    assert "authorized 4 g, received 3.9 g (100 mg less)" in alert.message
    # Each side holds each document exactly once, and nothing was quarantined.
    for node in (de, fr):
        assert await node.count("SELECT count(*) FROM documents") == 3
        assert await node.count("SELECT count(*) FROM quarantine") == 0


async def test_over_estimate_certificate_is_held_then_released_by_a_supplementary_estimate(
    network: Network,
) -> None:
    await network.enroll("DE", "FR", estimate_mg=5000)
    de, fr = await network.start("DE", "FR")
    first = await de.issue("import_certificate", ic_body(exporting_country="FR", mg=4000))
    draft = await de.services.create_draft(
        "import_certificate",
        ic_body(exporting_country="FR", mg=3000, number="IC-2"),
        actor="clerk",
    )
    held = await de.services.approve_draft(draft.id, actor="officer")
    assert held.document is None
    assert held.draft.state == "held"
    # The message names the substance, the year, the estimate, what is already authorized and
    # what is requested (its exact wording belongs to the lifecycle).
    reason = held.draft.held_reason or ""
    for part in ("morphine", str(YEAR), "5 g", "already authorized 4 g", "3 g"):
        assert part in reason, (part, reason)
    await network.wait_until(lambda: fr.holds(first.id))
    assert await fr.count("SELECT count(*) FROM documents") == 1

    await network.registry.set_estimate("DE", 2000, kind="supplementary")
    await network.registry.publish()
    assert await de.refresh_registry()
    released = await de.services.get_draft(draft.id)
    assert released.state == "signed"
    assert released.document_id is not None
    await network.wait_until(lambda: fr.holds(released.document_id or ""))
    await network.wait_until(lambda: de.delivered(released.document_id or ""))
