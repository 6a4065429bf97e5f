"""The whole trade through the pages of two nodes (DE imports, FR exports), over loopback HTTP.

Each node's pages run on a real server with a real SQLite store. Documents travel between the
two as their exact signed bytes, verified with the issuer's key and applied as the exchange
would: the exchange itself is tested elsewhere; here the pages are the point.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import re
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import segno

from permitnet.node import audit
from permitnet.node.keystore import SigningKey
from permitnet.node.print_layout import ItemRow, draw_sheet
from permitnet.node.printing import document_sheet
from permitnet.node.registry_holder import RegistryHolder
from permitnet.node.testing import TestCountry, apply_received, estimate, registry_view
from permitnet.node.web.testing import WebNode, log_in, web_node
from permitnet.protocol.qr import encode_qr_text
from permitnet.protocol.signed import SignedDocument

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from aiohttp import web
    from aiohttp.test_utils import TestClient

NOW = int(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).timestamp())
Client = "TestClient[web.Request, web.Application]"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


class Trade:
    def __init__(self, de: WebNode, fr: WebNode, holder: RegistryHolder) -> None:
        self.de, self.fr, self.holder = de, fr, holder

    def publish(self, estimates: list[Any], version: int) -> None:
        countries = [
            TestCountry(code=n.country, public_key=n.key.public_key, kid=n.key.kid)
            for n in (self.de, self.fr)
        ]
        view = registry_view(countries, estimates, version=version, without_node=("IN",))
        self.holder.replace(view, NOW)

    async def deliver(self, sender: WebNode, document_id: str, receiver: WebNode) -> None:
        record = await sender.services.store.get_document(document_id)
        signed = SignedDocument.verify(record.raw, sender.key.public_key)
        outcome = await apply_received(receiver.services, signed, from_peer=sender.country)
        assert outcome == "accepted"


@pytest.fixture
async def trade(tmp_path: Path) -> AsyncIterator[Trade]:
    clock = Clock()
    holder = RegistryHolder()
    users = {"clara": ["clerk"], "otto": ["officer"], "olga": ["officer"], "vera": ["viewer"]}
    async with (
        web_node(
            tmp_path,
            country="DE",
            key=SigningKey.from_seed(b"D" * 32),
            holder=holder,
            clock=clock,
            users=users,
        ) as de,
        web_node(
            tmp_path,
            country="FR",
            key=SigningKey.from_seed(b"F" * 32),
            holder=holder,
            clock=clock,
            users=users,
        ) as fr,
    ):
        t = Trade(de, fr, holder)
        t.publish(
            [
                estimate("DE", "morphine", 2026, 10_000_000),
                estimate("FR", "morphine", 2026, 10**9),
                estimate("IN", "morphine", 2026, 10**9),
            ],
            1,
        )
        yield t


def certificate_form(csrf: str, quantity: str, number: str = "DE-IC-2026-1") -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "exporting_country": "FR",
        "number": number,
        "date_of_issue": "2026-03-01",
        "estimate_year": "2026",
        "valid_from": "2026-03-01",
        "valid_until": "2026-08-31",
        "importer_name": "Pharma GmbH",
        "importer_address": "Hauptstr. 1, Berlin",
        "importer_licence": "DE-L-1",
        "exporter_name": "Laboratoires SA",
        "exporter_address": "1 rue X, Lyon",
        "exporter_licence": "FR-L-9",
        "item1_substance": "morphine-sulfate-pentahydrate",
        "item1_preparation": "bulk powder",
        "item1_quantity": quantity,
        "action": "draft",
    }


def _draft_id(url: str) -> str:
    match = re.fullmatch(r"/drafts/([0-9a-f]+)", url)
    assert match is not None, url
    return match.group(1)


def _document_id(url: str) -> str:
    match = re.fullmatch(r"/documents/([0-9a-f]{64})", url)
    assert match is not None, url
    return match.group(1)


async def _form_csrf(client: TestClient[web.Request, web.Application], path: str) -> str:
    page = await client.get(path)
    assert page.status == 200, await page.text()
    text = await page.text()
    tokens: list[str] = re.findall(r'name="csrf_token" value="([^"]*)"', text)
    # Every form on the page carries the same, non-empty token (the header's logout form too).
    assert tokens, f"no form on {path}"
    assert len(set(tokens)) == 1, tokens
    assert tokens[0], f"a form on {path} has an empty CSRF token"
    return tokens[0]


async def test_certificate_to_discrepancy_alert_through_the_pages(trade: Trade) -> None:
    de, fr = trade.de.client, trade.fr.client

    # DE: the clerk drafts the certificate; the live preview shows the base equivalent.
    await log_in(de, "clara")
    preview = await de.get(
        "/certificates/preview",
        params={
            "item1_substance": "morphine-sulfate-pentahydrate",
            "item1_quantity": "2 kg",
            "item1_preparation": "bulk powder",
            "estimate_year": "2026",
        },
    )
    body = await preview.json()
    assert body["ok"] is True
    assert "1.5042 kg of morphine (anhydrous base)" in body["message"]
    assert "remaining 10 kg" in body["message"]
    csrf = await _form_csrf(de, "/certificates/new")
    response = await de.post("/certificates/new", data=certificate_form(csrf, "2 kg"))
    assert response.status == 200, await response.text()
    draft_id = _draft_id(response.url.path)
    text = await response.text()
    assert 'name="csrf_token" value=""' not in text
    assert "prepared by" in text.lower()
    assert "Approve and sign" not in text  # a clerk cannot sign

    # The clerk cannot approve, even by posting directly.
    response = await de.post(f"/drafts/{draft_id}/approve", data={"csrf_token": csrf})
    assert response.status == 403

    # DE: the officer approves; the node signs and queues it for FR.
    csrf = await log_in(de, "otto")
    response = await de.post(f"/drafts/{draft_id}/approve", data={"csrf_token": csrf})
    assert response.status == 200
    ic_id = _document_id(response.url.path)
    page = await response.text()
    assert 'name="csrf_token" value=""' not in page
    assert "DE-IC-2026-1" in page
    assert "morphine-sulfate-pentahydrate" in page
    assert "1.5042 kg" in page
    assert "not yet delivered" in page

    await trade.deliver(trade.de, ic_id, trade.fr)

    # FR: the dashboard lists the certificate awaiting an authorization.
    await log_in(fr, "clara")
    dashboard = await (await fr.get("/")).text()
    assert f"/documents/{ic_id}" in dashboard
    csrf = await _form_csrf(fr, f"/documents/{ic_id}/authorize")
    response = await fr.post(
        f"/documents/{ic_id}/authorize",
        data={
            "csrf_token": csrf,
            "number": "FR-EA-2026-7",
            "date_of_issue": "2026-03-01",
            "valid_from": "2026-03-01",
            "valid_until": "2026-06-30",
            "route": "Lyon - Frankfurt",
            "transport_mode": "air",
            "transit_countries": "",
            "item1_substance": "morphine-sulfate-pentahydrate",
            "item1_preparation": "bulk powder",
            "item1_quantity": "2 kg",
        },
    )
    assert response.status == 200, await response.text()
    ea_draft = _draft_id(response.url.path)
    csrf = await log_in(fr, "olga")
    response = await fr.post(f"/drafts/{ea_draft}/approve", data={"csrf_token": csrf})
    assert response.status == 200, await response.text()
    ea_id = _document_id(response.url.path)
    again = await (await fr.get(f"/documents/{ic_id}/authorize")).text()
    assert "Already authorized against this certificate: 2 kg; at most 0 mg remain" in again

    await trade.deliver(trade.fr, ea_id, trade.de)

    # DE: the clerk records a smaller quantity received; an officer signs the endorsement.
    csrf = await log_in(de, "clara")
    csrf = await _form_csrf(de, f"/documents/{ea_id}/endorse")
    response = await de.post(
        f"/documents/{ea_id}/endorse",
        data={"csrf_token": csrf, "date_received": "2026-03-01", "line0_received": "1.9 kg"},
    )
    assert response.status == 200, await response.text()
    end_draft = _draft_id(response.url.path)
    csrf = await log_in(de, "otto")
    response = await de.post(f"/drafts/{end_draft}/approve", data={"csrf_token": csrf})
    assert response.status == 200, await response.text()
    end_id = _document_id(response.url.path)

    await trade.deliver(trade.de, end_id, trade.fr)

    # FR: the exporter sees the discrepancy alert on the dashboard and on the document.
    await log_in(fr, "vera")
    dashboard = await (await fr.get("/")).text()
    # The alert names both quantities (its exact wording belongs to the lifecycle).
    assert "Discrepancy and other alerts" in dashboard
    assert "authorized 2 kg" in dashboard
    assert "received 1.9 kg" in dashboard
    page = await (await fr.get(f"/documents/{ea_id}")).text()
    assert "Quantity mismatch:" in page
    assert "received 1.9 kg" in page
    # The chain certificate -> authorization -> endorsement is linked on the page.
    for doc_id in (ic_id, ea_id, end_id):
        assert f'href="/documents/{doc_id}"' in page
    # The endorsement has no number of its own: the list names the authorization it is of.
    listing = await (await fr.get("/documents", params={"doc_type": "endorsement"})).text()
    assert f'<a href="/documents/{end_id}">of FR-EA-2026-7</a>' in listing

    # Every action is in each node's audit log under the name of the person who did it.
    de_log = {(e.actor, e.action) for e in await audit.entries(trade.de.services.store)}
    assert {
        ("clara", "login"),
        ("clara", "draft import_certificate"),
        ("otto", "store import_certificate"),
        ("clara", "draft endorsement"),
        ("otto", "store endorsement"),
    } <= de_log
    fr_log = {(e.actor, e.action) for e in await audit.entries(trade.fr.services.store)}
    assert {("clara", "draft export_authorization"), ("olga", "store export_authorization")} <= (
        fr_log
    )


async def test_over_estimate_certificate_explains_the_block(trade: Trade) -> None:
    de = trade.de.client
    await log_in(de, "clara")
    csrf = await _form_csrf(de, "/certificates/new")
    form = certificate_form(csrf, "20 kg") | {"action": "check"}
    response = await de.post("/certificates/new", data=form)
    text = await response.text()
    assert response.status == 200
    assert "This certificate exceeds the estimate by" in text
    assert "it will be held, not signed" in text

    response = await de.post("/certificates/new", data=form | {"action": "draft"})
    draft_id = _draft_id(response.url.path)
    assert "Against the estimate now:" in await response.text()
    assert "exceeds the estimate by 5.042 kg" in await response.text()
    csrf = await log_in(de, "otto")
    response = await de.post(f"/drafts/{draft_id}/approve", data={"csrf_token": csrf})
    text = await response.text()
    assert response.url.path == f"/drafts/{draft_id}"
    assert "Held by the estimate, not signed." in text
    assert "morphine 2026: estimate 10 kg" in text
    assert "requested 15.042 kg" in text
    held_list = await (await de.get("/drafts", params={"state": "held"})).text()
    assert f'href="/drafts/{draft_id}"' in held_list
    assert "requested 15.042 kg" in held_list
    assert f'href="/drafts/{draft_id}"' not in await (await de.get("/drafts")).text()
    assert (await de.get("/drafts", params={"state": "lost"})).status == 400
    dashboard = await (await de.get("/")).text()
    assert "Held certificates" in dashboard
    assert "requested 15.042 kg" in dashboard


async def test_officer_cannot_approve_own_draft(trade: Trade) -> None:
    de = trade.de.client
    csrf = await log_in(de, "otto")
    csrf = await _form_csrf(de, "/certificates/new")
    response = await de.post("/certificates/new", data=certificate_form(csrf, "1 kg"))
    draft_id = _draft_id(response.url.path)
    page = await response.text()
    assert "four eyes" in page
    assert "disabled" in page
    response = await de.post(f"/drafts/{draft_id}/approve", data={"csrf_token": csrf})
    assert response.status == 403
    assert "four eyes" in await response.text()
    assert (await trade.de.services.get_draft(draft_id)).state == "draft"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"item1_quantity": "2"}, "Item 1 quantity"),
        ({"item1_quantity": "0 kg"}, "more than 0 mg"),
        ({"item1_quantity": "1.0000001 kg"}, "whole number of milligrams"),
        ({"item1_substance": "unobtainium"}, "not in the catalogue"),
        ({"date_of_issue": "01/03/2026"}, "Date of issue"),
        ({"estimate_year": "soon"}, "Estimate year"),
        ({"item1_preparation": ""}, "Item 1: give the substance"),
        ({"importer_name": ""}, "importer"),
        ({"valid_until": "2026-02-01"}, "valid_until"),
    ],
    ids=[
        "no-unit",
        "zero",
        "sub-milligram",
        "unknown-substance",
        "bad-date",
        "bad-year",
        "half-filled-item",
        "missing-importer",
        "validity-ends-before-start",
    ],
)
async def test_bad_certificate_forms_are_refused_with_the_field_named(
    trade: Trade, change: dict[str, str], message: str
) -> None:
    de = trade.de.client
    await log_in(de, "clara")
    csrf = await _form_csrf(de, "/certificates/new")
    response = await de.post("/certificates/new", data=certificate_form(csrf, "1 kg") | change)
    assert response.status == 400
    text = await response.text()
    assert message in text
    assert 'value="Pharma GmbH"' in text or change.get("importer_name") == ""
    assert await trade.de.services.list_drafts() == []


async def test_documents_list_filters(trade: Trade) -> None:
    de = trade.de.client
    for number, quantity in (("DE-IC-A", "1 kg"), ("DE-IC-B", "2 kg")):
        await log_in(de, "clara")
        csrf = await _form_csrf(de, "/certificates/new")
        response = await de.post(
            "/certificates/new", data=certificate_form(csrf, quantity, number=number)
        )
        draft_id = _draft_id(response.url.path)
        csrf = await log_in(de, "otto")
        await de.post(f"/drafts/{draft_id}/approve", data={"csrf_token": csrf})
    cases = [
        ({}, {"DE-IC-A", "DE-IC-B"}),
        ({"text": "IC-B"}, {"DE-IC-B"}),
        ({"partner": "fr"}, {"DE-IC-A", "DE-IC-B"}),
        ({"partner": "IT"}, set()),
        ({"substance": "morphine"}, {"DE-IC-A", "DE-IC-B"}),
        ({"substance": "codeine"}, set()),
        ({"doc_type": "export_authorization"}, set()),
        (
            {"state": "active", "date_from": "2026-03-01", "date_to": "2026-03-01"},
            {"DE-IC-A", "DE-IC-B"},
        ),
        ({"date_from": "2026-03-02"}, set()),
    ]
    for params, expected in cases:
        text = await (await de.get("/documents", params=params)).text()
        found = {n for n in ("DE-IC-A", "DE-IC-B") if f">{n}</a>" in text}
        assert found == expected, params
    response = await de.get("/documents", params={"date_from": "yesterday"})
    assert response.status == 400


async def test_estimates_page_shows_used_and_remaining(trade: Trade) -> None:
    de = trade.de.client
    await log_in(de, "clara")
    csrf = await _form_csrf(de, "/certificates/new")
    response = await de.post("/certificates/new", data=certificate_form(csrf, "4 kg"))
    draft_id = _draft_id(response.url.path)
    csrf = await log_in(de, "otto")
    await de.post(f"/drafts/{draft_id}/approve", data={"csrf_token": csrf})
    text = await (await de.get("/estimates", params={"year": "2026"})).text()
    # 4 kg of the pentahydrate is 3.0084 kg of morphine base.
    assert "3.0084 kg" in text
    assert "6.9916 kg" in text
    assert 'aria-label="30 percent used"' in text
    trends = await (await de.get("/trends")).text()
    assert "morphine" in trends
    assert "2026-03" in trends
    status = await (await de.get("/status")).text()
    assert "Competent authority of FR" in status


async def _signed_certificate(trade: Trade) -> str:
    de = trade.de.client
    await log_in(de, "clara")
    csrf = await _form_csrf(de, "/certificates/new")
    response = await de.post("/certificates/new", data=certificate_form(csrf, "2 kg"))
    draft_id = _draft_id(response.url.path)
    csrf = await log_in(de, "otto")
    response = await de.post(f"/drafts/{draft_id}/approve", data={"csrf_token": csrf})
    return _document_id(response.url.path)


async def _verify(client: TestClient[web.Request, web.Application], data: bytes, name: str) -> str:
    client.session.cookie_jar.clear()
    csrf = await _form_csrf(client, "/verify")
    form = aiohttp.FormData()
    form.add_field("csrf_token", csrf)
    form.add_field("file", data, filename=name, content_type="application/octet-stream")
    response = await client.post("/verify", data=form)
    assert response.status == 200, await response.text()
    return await response.text()


async def test_printed_pdf_verifies_and_a_tampered_one_fails(trade: Trade) -> None:
    ic_id = await _signed_certificate(trade)
    de = trade.de.client
    response = await de.get(f"/documents/{ic_id}/pdf")
    assert response.status == 200
    assert response.content_type == "application/pdf"
    pdf = await response.read()
    assert pdf.startswith(b"%PDF-")
    printed = await audit.entries(trade.de.services.store, subject=ic_id)
    assert ("otto", "print") in {(e.actor, e.action) for e in printed}

    # Anyone, not logged in, on the other country's node.
    text = await _verify(trade.fr.client, pdf, "certificate.pdf")
    assert "Authentic: Import certificate DE-IC-2026-1" in text
    assert "Competent authority of DE" in text
    assert "snapshot version 1" in text

    signed = await de.get(f"/documents/{ic_id}/signed")
    raw = await signed.read()
    assert hashlib.sha256(raw).hexdigest() == ic_id
    text = await _verify(trade.fr.client, raw, "certificate.cose")
    assert "Authentic: Import certificate" in text

    # The text of the QR code, pasted.
    client = trade.fr.client
    client.session.cookie_jar.clear()
    csrf = await _form_csrf(client, "/verify")
    response = await client.post(
        "/verify", data={"csrf_token": csrf, "qr_text": encode_qr_text(raw)}
    )
    assert "Authentic: Import certificate DE-IC-2026-1" in await response.text()

    # A photo or scan of the QR code (here: the code drawn as a PNG).
    image = io.BytesIO()
    segno.make(encode_qr_text(raw), error="m").save(image, kind="png", scale=4, border=4)
    text = await _verify(client, image.getvalue(), "qr.png")
    assert "Authentic: Import certificate DE-IC-2026-1" in text
    assert "QR code" in text

    forged = bytearray(raw)
    forged[-10] ^= 0x01
    text = await _verify(trade.fr.client, bytes(forged), "forged.cose")
    assert "Not authentic" in text
    assert "the signature does not verify" in text

    # A forger reprints the real signed document with a larger quantity.
    record = await trade.de.services.store.get_document(ic_id)
    sheet = document_sheet(SignedDocument.verify(record.raw, trade.de.key.public_key))
    first = sheet.items[0].cells
    forged_row = ItemRow(cells=(*first[:4], "20 kg\n20 000 000 mg", *first[5:]))
    tampered = draw_sheet(dataclasses.replace(sheet, items=(forged_row, *sheet.items[1:])))
    text = await _verify(trade.fr.client, tampered, "certificate.pdf")
    assert "Not authentic" in text
    assert "printed text was altered" in text


async def test_verify_page_refuses_empty_and_unreadable_uploads(trade: Trade) -> None:
    client = trade.fr.client
    csrf = await _form_csrf(client, "/verify")
    response = await client.post("/verify", data={"csrf_token": csrf, "qr_text": ""})
    assert response.status == 400
    assert "Choose a file" in await response.text()
    text = await _verify(client, b"just some bytes", "notes.txt")
    assert "Not authentic" in text
    assert "cannot read the input" in text
    response = await client.post("/verify", data={"qr_text": "PN1:XYZ"})
    assert response.status == 403


PNG_SCAN = b"\x89PNG\r\n\x1a\n" + b"scan of a paper certificate" * 10


def _paper_form(csrf: str, scan: bytes | None) -> aiohttp.FormData:
    form = aiohttp.FormData()
    fields = certificate_form(csrf, "2 kg", number="IN-IC-55") | {
        "issuer": "IN",
        "authority": "Narcotics Commissioner of India",
        "exporter_name": "Laboratoires SA",
    }
    fields.pop("exporting_country")
    fields.pop("action")
    for name, value in fields.items():
        form.add_field(name, value)
    if scan is not None:
        form.add_field("scan", scan, filename="certificate.png", content_type="image/png")
    return form


async def test_paper_certificate_recorded_then_authorized_for_printing(trade: Trade) -> None:
    fr = trade.fr.client
    await log_in(fr, "clara")
    csrf = await _form_csrf(fr, "/certificates/paper")
    for scan, message in ((None, "attach the scan"), (b"GIF89a...", "PDF, PNG or JPEG")):
        response = await fr.post("/certificates/paper", data=_paper_form(csrf, scan))
        assert response.status == 400
        assert message in await response.text()
    response = await fr.post("/certificates/paper", data=_paper_form(csrf, PNG_SCAN))
    assert response.status == 200, await response.text()
    ic_id = _document_id(response.url.path)
    page = await response.text()
    assert "not electronically verified" in page
    match = re.search(r'href="(/documents/[0-9a-f]+/attachments/[0-9]+)"', page)
    assert match is not None
    download = await fr.get(match.group(1))
    assert download.content_type == "image/png"
    assert await download.read() == PNG_SCAN
    assert (await fr.get(f"/documents/{ic_id}/attachments/999")).status == 404

    csrf = await _form_csrf(fr, f"/documents/{ic_id}/authorize")
    response = await fr.post(
        f"/documents/{ic_id}/authorize",
        data={
            "csrf_token": csrf,
            "number": "FR-EA-IN-1",
            "date_of_issue": "2026-03-01",
            "valid_from": "2026-03-01",
            "valid_until": "2026-06-30",
            "route": "",
            "transport_mode": "air",
            "transit_countries": "",
            "item1_substance": "morphine-sulfate-pentahydrate",
            "item1_preparation": "bulk powder",
            "item1_quantity": "2 kg",
        },
    )
    assert response.status == 200, await response.text()
    csrf = await log_in(fr, "olga")
    response = await fr.post(
        f"/drafts/{_draft_id(response.url.path)}/approve", data={"csrf_token": csrf}
    )
    assert response.status == 200, await response.text()
    ea_id = _document_id(response.url.path)
    assert "Not sent to any node." in await response.text()
    pdf = await fr.get(f"/documents/{ea_id}/pdf")
    assert pdf.status == 200
    assert (await pdf.read()).startswith(b"%PDF-")
    # The paper record itself has no signed file to print.
    response = await fr.get(f"/documents/{ic_id}/pdf")
    assert response.status == 400


async def test_export_declaration_for_a_1971_schedule_iv_substance(trade: Trade) -> None:
    fr = trade.fr.client
    await log_in(fr, "clara")
    csrf = await _form_csrf(fr, "/declarations/new")
    page = await (await fr.get("/declarations/new")).text()
    assert 'value="diazepam"' in page
    assert 'value="morphine"' not in page  # needs an import certificate, not a declaration
    form = {
        "csrf_token": csrf,
        "importing_country": "DE",
        "number": "FR-ED-1",
        "date_of_export": "2026-03-01",
        "exporter_name": "Laboratoires SA",
        "exporter_address": "1 rue X, Lyon",
        "exporter_licence": "FR-L-9",
        "importer_name": "Pharma GmbH",
        "importer_address": "Hauptstr. 1, Berlin",
        "importer_licence": "DE-L-1",
        "item1_substance": "diazepam",
        "item1_preparation": "tablets 5 mg",
        "item1_quantity": "500 g",
    }
    response = await fr.post("/declarations/new", data=form | {"item1_substance": "morphine"})
    assert response.status == 400
    assert "morphine is in Schedule I of the 1961 Convention" in await response.text()
    assert await trade.fr.services.list_drafts() == []
    response = await fr.post("/declarations/new", data=form)
    assert response.status == 200, await response.text()
    draft_id = _draft_id(response.url.path)
    csrf = await log_in(fr, "otto")
    response = await fr.post(f"/drafts/{draft_id}/approve", data={"csrf_token": csrf})
    assert response.status == 200, await response.text()
    declaration_id = _document_id(response.url.path)
    text = await response.text()
    assert "Export declaration FR-ED-1" in text
    assert "diazepam" in text
    await trade.deliver(trade.fr, declaration_id, trade.de)


async def test_messages_between_authorities_are_threaded(trade: Trade) -> None:
    ic_id = await _signed_certificate(trade)
    de = trade.de.client
    csrf = await log_in(de, "clara")
    response = await de.post(
        f"/documents/{ic_id}/message",
        data={"csrf_token": csrf, "text": "Please confirm the\\nshipping date."},
    )
    assert response.status == 200
    (message,) = await trade.de.services.store.list_documents(doc_type="message")
    assert message.recipient == "FR"
    await trade.deliver(trade.de, ic_id, trade.fr)
    await trade.deliver(trade.de, message.id, trade.fr)
    fr = trade.fr.client
    csrf = await log_in(fr, "clara")
    dashboard = await (await fr.get("/")).text()
    assert f'href="/documents/{ic_id}#messages">import certificate DE-IC-2026-1</a>' in dashboard
    page = await (await fr.get(f"/documents/{ic_id}")).text()
    assert "Please confirm the\\nshipping date." in page
    assert f'name="in_reply_to" value="{message.id}"' in page
    response = await fr.post(
        f"/documents/{ic_id}/message",
        data={"csrf_token": csrf, "text": "Shipping on 10 March.", "in_reply_to": message.id},
    )
    assert response.status == 200
    page = await response.text()
    assert "in reply to" in page
    response = await fr.post(f"/documents/{ic_id}/message", data={"csrf_token": csrf, "text": ""})
    assert response.status == 400
    assert "write the message" in await response.text()


async def test_cancel_an_issued_certificate(trade: Trade) -> None:
    ic_id = await _signed_certificate(trade)
    de = trade.de.client
    csrf = await log_in(de, "clara")
    page = await (await de.get(f"/documents/{ic_id}")).text()
    assert "Prepare the cancellation" in page
    response = await de.post(f"/documents/{ic_id}/cancel", data={"csrf_token": csrf, "reason": ""})
    assert response.status == 400
    assert "say why" in await response.text()
    response = await de.post(
        f"/documents/{ic_id}/cancel",
        data={"csrf_token": csrf, "reason": "importer's licence withdrawn"},
    )
    assert response.status == 200
    draft_id = _draft_id(response.url.path)
    csrf = await log_in(de, "olga")
    response = await de.post(f"/drafts/{draft_id}/approve", data={"csrf_token": csrf})
    assert response.status == 200, await response.text()
    page = await (await de.get(f"/documents/{ic_id}")).text()
    assert "Cancelled</strong> by DE (Germany)" in page
    assert "importer&#39;s licence withdrawn" in page
    assert "Prepare the cancellation" not in page
    assert (await trade.de.services.store.get_document(ic_id)).state == "cancelled"
    # A received certificate cannot be cancelled by the receiver.
    await trade.deliver(trade.de, ic_id, trade.fr)
    csrf = await log_in(trade.fr.client, "clara")
    response = await trade.fr.client.post(
        f"/documents/{ic_id}/cancel", data={"csrf_token": csrf, "reason": "not ours"}
    )
    assert response.status == 400
    assert "only documents this node issued can be cancelled" in await response.text()


async def test_a_draft_can_be_saved_without_registry_data(tmp_path: Path) -> None:
    async with web_node(tmp_path, country="DE", clock=Clock(), users={"clara": ["clerk"]}) as node:
        client = node.client
        await log_in(client, "clara")
        csrf = await _form_csrf(client, "/certificates/new")
        form = certificate_form(csrf, "1 kg")
        response = await client.post("/certificates/new", data=form | {"action": "check"})
        assert response.status == 200
        assert "no verified registry data yet" in await response.text()
        response = await client.post("/certificates/new", data=form)
        assert response.status == 200, await response.text()
        draft = await node.services.get_draft(_draft_id(response.url.path))
        assert draft.state == "draft"
        assert draft.created_by == "clara"


async def test_forms_refuse_documents_of_the_wrong_kind_or_side(trade: Trade) -> None:
    ic_id = await _signed_certificate(trade)
    de = trade.de.client
    await log_in(de, "clara")
    cases = [
        (f"/documents/{ic_id}/authorize", 400, "not an import certificate received"),
        (f"/documents/{ic_id}/endorse", 400, "not an export authorization received"),
        (f"/documents/{'0' * 64}/authorize", 404, "no document"),
        ("/drafts/nonexistent", 404, "no draft"),
    ]
    for path, status, message in cases:
        response = await de.get(path)
        assert response.status == status, path
        assert message in await response.text(), path
