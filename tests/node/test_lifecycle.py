"""The lifecycle between an importing (DE) and an exporting (FR) node, in process.

Each node has its own real SQLite store; documents travel as their exact signed bytes and are
verified with the issuer's public key before ``testing.apply_received`` applies them with the
lifecycle's rules, as the exchange's receive pipeline does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from permitnet.node.drafting import (
    build_endorsement,
    build_export_authorization,
    decode_stored,
)
from permitnet.node.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from permitnet.node.keystore import SigningKey, generate_seed
from permitnet.node.lifecycle import NodeServices
from permitnet.node.registry_holder import RegistryHolder
from permitnet.node.store import DocumentRecord, Store
from permitnet.node.testing import TestCountry, apply_received, estimate, registry_view
from permitnet.protocol.documents import (
    Cancellation,
    DeliveryReceipt,
    Endorsement,
    ExportAuthorization,
    ImportCertificate,
    ReceivedItem,
)
from permitnet.protocol.errors import DocumentError, RuleViolation
from permitnet.protocol.signed import SignedDocument

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from permitnet.protocol.registry_records import Estimate

NOW = int(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).timestamp())


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


@dataclass
class Node:
    services: NodeServices
    key: SigningKey
    store: Store


@dataclass
class World:
    de: Node
    fr: Node
    holder: RegistryHolder
    clock: Clock
    countries: list[TestCountry]

    def publish(self, estimates: list[Estimate], version: int) -> None:
        self.holder.replace(registry_view(self.countries, estimates, version=version), NOW)


async def _node(tmp_path: Path, country: str, holder: RegistryHolder, clock: Clock) -> Node:
    key = SigningKey.from_seed(generate_seed())
    store = await Store.open(tmp_path / f"{country}.sqlite3", clock=clock)
    services = NodeServices(
        store=store,
        country=country,
        authority=f"Authority {country}",
        signing_key=key,
        registry=holder,
    )
    return Node(services=services, key=key, store=store)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = Clock()
    holder = RegistryHolder()
    de = await _node(tmp_path, "DE", holder, clock)
    fr = await _node(tmp_path, "FR", holder, clock)
    countries = [
        TestCountry(code=n.services.country, public_key=n.key.public_key, kid=n.key.kid)
        for n in (de, fr)
    ]
    w = World(de=de, fr=fr, holder=holder, clock=clock, countries=countries)
    w.publish(
        [estimate("DE", "morphine", 2026, 10_000), estimate("FR", "morphine", 2026, 50_000)], 1
    )
    yield w
    await de.store.close()
    await fr.store.close()


PARTY = {"name": "Pharma GmbH", "address": "Hauptstr. 1\nBerlin", "licence": "DE-L-1"}
EXPORTER = {"name": "Laboratoires SA", "address": "1 rue X, Lyon", "licence": "FR-L-9"}


def ic_body(mg: int = 4000, **over: Any) -> dict[str, Any]:
    return {
        "number": "DE-IC-1",
        "date_of_issue": "2026-03-01",
        "importer": PARTY,
        "exporter": EXPORTER,
        "exporting_country": "FR",
        "items": [{"substance": "morphine", "quantity_mg": mg, "preparation": "bulk powder"}],
        "valid_from": "2026-03-01",
        "valid_until": "2026-09-30",
        "several_consignments": True,
        "conditions": "",
        "estimate_year": 2026,
    } | over


def ea_body(ic_id: str, mg: int = 4000, **over: Any) -> dict[str, Any]:
    return {
        "import_certificate": ic_id,
        "number": "FR-EA-1",
        "date_of_issue": "2026-03-01",
        "items": [{"substance": "morphine", "quantity_mg": mg, "preparation": "bulk powder"}],
        "valid_from": "2026-03-01",
        "valid_until": "2026-06-30",
        "route": "Lyon - Frankfurt",
        "transport_mode": "air",
        "transit_countries": [],
    } | over


async def issue(node: Node, doc_type: str, body: dict[str, Any]) -> DocumentRecord:
    draft = await node.services.create_draft(doc_type, body, actor="clerk")
    result = await node.services.approve_draft(draft.id, actor="officer")
    assert result.document is not None, result.draft.held_reason
    return result.document


async def deliver(sender: Node, record: DocumentRecord, receiver: Node) -> str:
    signed = SignedDocument.verify(record.raw, sender.key.public_key)
    return await apply_received(receiver.services, signed, from_peer=sender.services.country)


async def test_full_chain_with_short_endorsement_alert(world: World) -> None:
    ic = await issue(world.de, "import_certificate", ic_body())
    async with world.de.store.read() as tx:
        (row,) = await tx.outbox_for_document(ic.id)
    assert row.peer == "FR"
    assert await deliver(world.de, ic, world.fr) == "accepted"
    assert await deliver(world.de, ic, world.fr) == "duplicate"

    ea = await issue(world.fr, "export_authorization", ea_body(ic.id))
    assert ea.refers_to == ic.id
    assert await deliver(world.fr, ea, world.de) == "accepted"

    end = await issue(
        world.de,
        "endorsement",
        {
            "export_authorization": ea.id,
            "date_received": "2026-03-01",
            "received": [{"line": 0, "quantity_mg": 3900}],
        },
    )
    assert (await world.de.store.get_document(ea.id)).state == "endorsed"
    assert await deliver(world.de, end, world.fr) == "accepted"
    assert (await world.fr.store.get_document(ea.id)).state == "endorsed"
    (alert,) = await world.fr.services.list_alerts()
    assert alert.kind == "quantity_mismatch"
    assert "authorized 4 g, received 3.9 g (100 mg less)" in alert.message
    await world.fr.services.acknowledge_alert(alert.id, actor="officer")
    assert await world.fr.services.list_alerts() == []


async def test_over_estimate_held_then_released_by_supplementary(world: World) -> None:
    await issue(world.de, "import_certificate", ic_body(8000))
    draft = await world.de.services.create_draft(
        "import_certificate", ic_body(3000, number="DE-IC-2"), actor="clerk"
    )
    result = await world.de.services.approve_draft(draft.id, actor="officer")
    assert result.document is None
    assert result.draft.state == "held"
    assert result.draft.held_reason == (
        "estimate-exceeded: DE morphine 2026: estimate 10 g + supplementary 0 mg, already "
        "authorized 8 g, requested 3 g: 1 g over the remaining 2 g"
    )
    balance = await world.de.services.balance("morphine", 2026)
    assert (balance.authorized_mg, balance.remaining_mg) == (8000, 2000)

    # A newer view that does not raise the estimate enough leaves it held.
    world.publish(
        [
            estimate("DE", "morphine", 2026, 10_000),
            estimate("DE", "morphine", 2026, 500, supplementary=1),
        ],
        2,
    )
    assert await world.de.services.recheck_held() == []
    assert "500 mg over the remaining 2.5 g" in (
        (await world.de.services.get_draft(draft.id)).held_reason or ""
    )

    world.publish(
        [
            estimate("DE", "morphine", 2026, 10_000),
            estimate("DE", "morphine", 2026, 1000, supplementary=1),
        ],
        3,
    )
    assert await world.de.services.recheck_held() == [draft.id]
    released = await world.de.services.get_draft(draft.id)
    assert released.state == "signed"
    assert released.approved_by == "officer"
    doc = await world.de.store.get_document(released.document_id or "")
    assert doc.reference == "DE-IC-2"
    assert (await world.de.services.balance("morphine", 2026)).remaining_mg == 0


async def test_salt_counts_as_base(world: World) -> None:
    body = ic_body()
    body["items"] = [
        {
            "substance": "morphine-sulfate-pentahydrate",
            "quantity_mg": 10_000,
            "preparation": "bulk powder",
        }
    ]
    ic = await issue(world.de, "import_certificate", body)
    assert ic.items[0].base_mg == 7521
    (b,) = await world.de.services.balances(2026)
    assert (b.substance, b.authorized_mg, b.remaining_mg) == ("morphine", 7521, 2479)


async def test_four_eyes_and_draft_states(world: World) -> None:
    draft = await world.de.services.create_draft("import_certificate", ic_body(), actor="clerk")
    with pytest.raises(ForbiddenError, match="four eyes"):
        await world.de.services.approve_draft(draft.id, actor="clerk")
    await world.de.services.discard_draft(draft.id, actor="clerk")
    with pytest.raises(ConflictError):
        await world.de.services.approve_draft(draft.id, actor="officer")
    with pytest.raises(ConflictError):
        await world.de.services.discard_draft(draft.id, actor="clerk")
    with pytest.raises(NotFoundError):
        await world.de.services.get_draft("nope")


@pytest.mark.parametrize(
    ("doc_type", "body", "error", "message"),
    [
        pytest.param("permit", {}, ValidationError, "unknown draft type", id="unknown-type"),
        pytest.param("import_certificate", [], ValidationError, "JSON object", id="not-object"),
        pytest.param(
            "import_certificate",
            {"items": []},
            DocumentError,
            "exporting_country",
            id="missing-country",
        ),
        pytest.param(
            "import_certificate",
            ic_body(items=[{"substance": "unobtainium", "quantity_mg": 1, "preparation": "x"}]),
            DocumentError,
            "items\\[0\\]",
            id="unknown-substance",
        ),
        pytest.param(
            "import_certificate",
            ic_body(items=[{"substance": "morphine", "quantity_mg": 1.5, "preparation": "x"}]),
            DocumentError,
            "integer",
            id="float-quantity",
        ),
        pytest.param(
            "import_certificate",
            ic_body(valid_until="2026-02-01"),
            DocumentError,
            "valid_until",
            id="validity-reversed",
        ),
        pytest.param(
            "import_certificate",
            ic_body(exporting_country="DE"),
            DocumentError,
            "recipient",
            id="to-itself",
        ),
        pytest.param(
            "import_certificate", ic_body(bonus=1), DocumentError, "bonus", id="unknown-field"
        ),
        pytest.param(
            "export_authorization",
            ea_body("00" * 32),
            DocumentError,
            "no document",
            id="unknown-certificate",
        ),
        pytest.param(
            "export_authorization", ea_body("XYZ"), DocumentError, "64 lowercase hex", id="bad-id"
        ),
    ],
)
async def test_bad_drafts(
    world: World, doc_type: str, body: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await world.de.services.create_draft(doc_type, body, actor="clerk")


async def _fr_with_ic(world: World, **over: Any) -> DocumentRecord:
    ic = await issue(world.de, "import_certificate", ic_body(**over))
    await deliver(world.de, ic, world.fr)
    return ic


@pytest.mark.parametrize(
    ("ic_over", "ea_over", "rule"),
    [
        pytest.param({}, {"mg": 4001}, "quantity-exceeds-certificate", id="over-quantity"),
        pytest.param(
            {},
            {"valid_until": "2026-10-01"},
            "validity-within-certificate",
            id="validity-beyond-certificate",
        ),
        pytest.param(
            {},
            {"items": [{"substance": "codeine", "quantity_mg": 1, "preparation": "x"}]},
            "substance-not-on-certificate",
            id="other-substance",
        ),
        pytest.param(
            {"valid_until": "2026-03-01"},
            {"valid_from": "2026-03-01", "valid_until": "2026-03-01"},
            "certificate-expired",
            id="expired-certificate",
        ),
    ],
)
async def test_blocked_export_authorizations(
    world: World, ic_over: dict[str, Any], ea_over: dict[str, Any], rule: str
) -> None:
    ic = await _fr_with_ic(world, **ic_over)
    world.clock.now = NOW + 86_400 * 2  # 2026-03-03
    mg = ea_over.pop("mg", 4000)
    draft = await world.fr.services.create_draft(
        "export_authorization", ea_body(ic.id, mg, **ea_over), actor="clerk"
    )
    with pytest.raises(RuleViolation) as info:
        await world.fr.services.approve_draft(draft.id, actor="officer")
    assert info.value.rule == rule
    assert (await world.fr.services.get_draft(draft.id)).state == "draft"
    assert await world.fr.store.list_documents(doc_type="export_authorization") == []


async def test_second_authorization_draws_on_what_remains(world: World) -> None:
    ic = await _fr_with_ic(world)
    await issue(world.fr, "export_authorization", ea_body(ic.id, 3000))
    draft = await world.fr.services.create_draft(
        "export_authorization", ea_body(ic.id, 1500, number="FR-EA-2"), actor="clerk"
    )
    with pytest.raises(
        RuleViolation, match="3000 mg already authorized, 1500 mg requested: 500 mg too much"
    ):
        await world.fr.services.approve_draft(draft.id, actor="officer")


async def test_single_consignment_certificate(world: World) -> None:
    ic = await _fr_with_ic(world, several_consignments=False)
    await issue(world.fr, "export_authorization", ea_body(ic.id, 1000))
    draft = await world.fr.services.create_draft(
        "export_authorization", ea_body(ic.id, 1000, number="FR-EA-2"), actor="clerk"
    )
    with pytest.raises(RuleViolation, match="single-consignment"):
        await world.fr.services.approve_draft(draft.id, actor="officer")


async def test_cancelled_certificate_blocks_and_propagates(world: World) -> None:
    ic = await _fr_with_ic(world)
    draft = await world.fr.services.create_draft(
        "export_authorization", ea_body(ic.id), actor="clerk"
    )
    cancel = await issue(
        world.de, "cancellation", {"document": ic.id, "reason": "licence withdrawn"}
    )
    assert (await world.de.store.get_document(ic.id)).state == "cancelled"
    assert await deliver(world.de, cancel, world.fr) == "accepted"
    assert (await world.fr.store.get_document(ic.id)).state == "cancelled"
    assert [a.kind for a in await world.fr.services.list_alerts()] == ["cancelled"]
    with pytest.raises(RuleViolation, match="certificate-cancelled"):
        await world.fr.services.approve_draft(draft.id, actor="officer")
    # A cancelled certificate no longer counts against the estimate.
    assert (await world.de.services.balance("morphine", 2026)).authorized_mg == 0


async def test_importer_estimate_defence_in_depth(world: World) -> None:
    ic = await _fr_with_ic(world)
    # The importer's estimate is revised down after the certificate was issued.
    world.publish([estimate("DE", "morphine", 2026, 1000)], 2)
    draft = await world.fr.services.create_draft(
        "export_authorization", ea_body(ic.id), actor="clerk"
    )
    with pytest.raises(RuleViolation, match="importer-estimate-exceeded"):
        await world.fr.services.approve_draft(draft.id, actor="officer")


async def test_out_of_order_arrival_waits_then_applies(world: World) -> None:
    ic = await issue(world.de, "import_certificate", ic_body())
    await deliver(world.de, ic, world.fr)
    ea = await issue(world.fr, "export_authorization", ea_body(ic.id))
    await deliver(world.fr, ea, world.de)
    end = await issue(
        world.de,
        "endorsement",
        {
            "export_authorization": ea.id,
            "date_received": "2026-03-01",
            "received": [{"line": 0, "quantity_mg": 4000}],
        },
    )
    msg = await world.de.services.send_message(
        {"about": end.id, "text": "Received in full"}, actor="officer"
    )
    # The message overtakes the endorsement it is about.
    assert await deliver(world.de, msg, world.fr) == "pending"
    async with world.fr.store.read() as tx:
        (p,) = await tx.pending()
    assert p.waiting_for == end.id
    assert await deliver(world.de, end, world.fr) == "accepted"
    assert (await world.fr.store.get_document(msg.id)).doc_type == "message"
    async with world.fr.store.read() as tx:
        assert await tx.pending() == []
    assert await world.fr.services.list_alerts() == []  # received in full: no mismatch


async def test_received_authorization_breaking_rules_is_refused(world: World) -> None:
    ic = await _fr_with_ic(world)
    certificate = decode_stored(await world.fr.store.get_document(ic.id))
    assert isinstance(certificate, ImportCertificate)
    # Validly signed by FR's key, but over the certificate: built outside FR's checks.
    forged = build_export_authorization(
        ea_body(ic.id, 4001),
        issuer="FR",
        authority="Authority FR",
        issued_at=NOW,
        certificate=certificate,
        certificate_id=ic.id,
    )
    signed = SignedDocument.sign(forged, signing_key=world.fr.key.seed, kid=world.fr.key.kid)
    with pytest.raises(RuleViolation) as info:
        await apply_received(world.de.services, signed, from_peer="FR")
    assert info.value.rule == "quantity-exceeds-certificate"
    assert await world.de.store.list_documents(doc_type="export_authorization") == []
    # Addressed to another country: refused before anything is read from the store.
    with pytest.raises(RuleViolation, match="wrong-recipient"):
        await apply_received(world.fr.services, signed, from_peer="FR")


async def test_overdue_flagged_on_both_sides(world: World) -> None:
    ic = await _fr_with_ic(world)
    ea = await issue(world.fr, "export_authorization", ea_body(ic.id))
    await deliver(world.fr, ea, world.de)
    world.clock.now = int(dt.datetime(2026, 7, 1, tzinfo=dt.UTC).timestamp())
    assert await world.fr.services.flag_overdue() == [ea.id]
    assert await world.de.services.flag_overdue() == [ea.id]
    assert await world.fr.services.flag_overdue() == []
    for node in (world.fr, world.de):
        (alert,) = await node.services.list_alerts()
        assert alert.kind == "overdue"
        assert "FR-EA-1 expired on 2026-06-30" in alert.message


async def test_paper_certificate_then_authorization_for_printing(world: World) -> None:
    body = ic_body()
    body.pop("exporting_country")
    body |= {"issuer": "GH", "authority": "Food and Drugs Authority, Ghana", "number": "GH-PAPER-7"}
    paper = await world.fr.services.record_paper_certificate(
        body,
        scan=b"%PDF-1.4 scan",
        media_type="application/pdf",
        filename="gh7.pdf",
        actor="officer",
    )
    assert paper.direction == "paper"
    assert not paper.electronically_verified
    detail = await world.fr.services.document_json(paper.id)
    assert detail["attachments"][0]["filename"] == "gh7.pdf"
    # Ghana has no node, but the INCB publishes its estimate.
    world.holder.replace(
        registry_view(
            world.countries,
            [estimate("GH", "morphine", 2026, 10_000)],
            without_node=["GH"],
            version=2,
        ),
        NOW,
    )
    ea = await issue(world.fr, "export_authorization", ea_body(paper.id))
    async with world.fr.store.read() as tx:
        assert await tx.outbox_for_document(ea.id) == []
    with pytest.raises(ConflictError, match="already recorded"):
        await world.fr.services.record_paper_certificate(
            body, scan=b"x", media_type="application/pdf", filename="a.pdf", actor="officer"
        )


async def test_message_thread_and_export_declaration(world: World) -> None:
    ic = await issue(world.de, "import_certificate", ic_body())
    await deliver(world.de, ic, world.fr)
    msg = await world.fr.services.send_message(
        {"about": ic.id, "text": "Please confirm the licence number"}, actor="officer"
    )
    assert msg.recipient == "DE"
    assert await deliver(world.fr, msg, world.de) == "accepted"
    detail = await world.de.services.document_json(ic.id)
    assert [r["type"] for r in detail["related"]] == ["message"]
    decl = await issue(
        world.fr,
        "export_declaration",
        {
            "number": "FR-ED-1",
            "exporter": EXPORTER,
            "importer": PARTY,
            "importing_country": "DE",
            "items": [
                {"substance": "diazepam", "quantity_mg": 5000, "preparation": "tablets 5 mg"}
            ],
            "date_of_export": "2026-03-01",
        },
    )
    assert await deliver(world.fr, decl, world.de) == "accepted"


async def test_declaration_only_for_declaration_regime(world: World) -> None:
    draft = await world.fr.services.create_draft(
        "export_declaration",
        {
            "number": "FR-ED-2",
            "exporter": EXPORTER,
            "importer": PARTY,
            "importing_country": "DE",
            "items": [{"substance": "morphine", "quantity_mg": 5000, "preparation": "bulk"}],
            "date_of_export": "2026-03-01",
        },
        actor="clerk",
    )
    with pytest.raises(RuleViolation, match="declaration-not-allowed"):
        await world.fr.services.approve_draft(draft.id, actor="officer")


async def _endorsement(world: World, ea: DocumentRecord, mg: int) -> SignedDocument:
    certificate = decode_stored(await world.de.store.get_document(ea.id))
    assert isinstance(certificate, ExportAuthorization)
    endorsement = build_endorsement(
        {
            "export_authorization": ea.id,
            "date_received": "2026-03-01",
            "received": [{"line": 0, "quantity_mg": mg}],
        },
        issuer="DE",
        authority="Authority DE",
        issued_at=NOW,
        authorization=certificate,
        authorization_id=ea.id,
    )
    return SignedDocument.sign(endorsement, signing_key=world.de.key.seed, kid=world.de.key.kid)


async def test_second_endorsement_refused_and_endorsement_after_cancellation_alerts(
    world: World,
) -> None:
    ic = await _fr_with_ic(world)
    ea = await issue(world.fr, "export_authorization", ea_body(ic.id))
    await deliver(world.fr, ea, world.de)
    first = await _endorsement(world, ea, 4000)
    assert await apply_received(world.fr.services, first, from_peer="DE") == "accepted"
    second = await _endorsement(world, ea, 3000)
    with pytest.raises(RuleViolation, match="already-endorsed"):
        await apply_received(world.fr.services, second, from_peer="DE")


async def test_endorsement_of_a_cancelled_authorization_alerts(world: World) -> None:
    ic = await _fr_with_ic(world)
    ea = await issue(world.fr, "export_authorization", ea_body(ic.id, 3000))
    await deliver(world.fr, ea, world.de)
    # FR cancels; the goods arrive at DE before the cancellation does.
    await issue(world.fr, "cancellation", {"document": ea.id, "reason": "exporter's licence"})
    endorsement = await _endorsement(world, ea, 3000)
    assert await apply_received(world.fr.services, endorsement, from_peer="DE") == "accepted"
    assert (await world.fr.store.get_document(ea.id)).state == "cancelled"
    (alert,) = await world.fr.services.list_alerts()
    assert alert.kind == "endorsed_after_cancellation"
    assert "FR-EA-1" in alert.message


def _signed(world: World, issuer: str, document: Any) -> SignedDocument:
    key = world.de.key if issuer == "DE" else world.fr.key
    return SignedDocument.sign(document, signing_key=key.seed, kid=key.kid)


async def test_received_documents_that_do_not_fit_are_refused(world: World) -> None:
    """Validly signed documents whose content does not fit what the receiver holds."""
    ic = await issue(world.de, "import_certificate", ic_body())
    await deliver(world.de, ic, world.fr)
    ea = await issue(world.fr, "export_authorization", ea_body(ic.id))
    await deliver(world.fr, ea, world.de)
    head: dict[str, Any] = {"issued_at": NOW, "authority": "Authority"}
    cases: list[tuple[str, str, Any]] = [
        # FR "cancels" DE's certificate: only the issuer may cancel.
        (
            "cancellation-by-issuer",
            "FR",
            Cancellation(
                issuer="FR",
                recipient="DE",
                document=bytes.fromhex(ic.id),
                reason="not mine to cancel",
                **head,
            ),
        ),
        # A receipt is an answer to a delivery, never a document to apply.
        (
            "receipt-not-a-document",
            "FR",
            DeliveryReceipt(
                issuer="FR",
                recipient="DE",
                document=bytes.fromhex(ic.id),
                status="accepted",
                reason="",
                received_at=NOW,
                **head,
            ),
        ),
        # FR endorses its own authorization to DE: endorsements come from the importer, and
        # DE did not issue this authorization.
        (
            "endorsement-not-ours",
            "FR",
            Endorsement(
                issuer="FR",
                recipient="DE",
                export_authorization=bytes.fromhex(ea.id),
                export_authorization_number="FR-EA-1",
                date_received=dt.date(2026, 3, 1),
                received=(ReceivedItem(line=0, substance="morphine", quantity_mg=1),),
                remarks="",
                **head,
            ),
        ),
    ]
    for rule, issuer, document in cases:
        before = len(await world.de.services.store.events_after(0, 1000))
        with pytest.raises(RuleViolation) as info:
            await apply_received(
                world.de.services, _signed(world, issuer, document), from_peer=issuer
            )
        assert info.value.rule == rule
        assert len(await world.de.services.store.events_after(0, 1000)) == before, rule
    assert (await world.de.store.get_document(ic.id)).state == "active"
