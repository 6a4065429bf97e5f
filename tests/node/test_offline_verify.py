"""Offline verification verdicts: printed PDFs, scans, QR texts and files; every failure named."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from typing import TYPE_CHECKING

import pypdfium2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from permitnet.node.offline_verify import Verdict, verify_offline
from permitnet.node.print_layout import ItemRow, PrintError, draw_sheet
from permitnet.node.printing import document_sheet, print_document
from permitnet.protocol.cose import key_id, public_key_from_seed
from permitnet.protocol.documents import ImportCertificate, Party
from permitnet.protocol.errors import DocumentError
from permitnet.protocol.qr import encode_qr_text
from permitnet.protocol.registry_client import TrustedRegistry
from permitnet.protocol.registry_publish import publish
from permitnet.protocol.registry_records import CountryRecord, KeyRecord, encode_record
from permitnet.protocol.registry_root import RootMetadata, sign_root
from permitnet.protocol.signed import SignedDocument

from .test_printing import (
    DE_KID,
    DE_SEED,
    FR_KID,
    FR_SEED,
    ISSUED_AT,
    endorsement,
    export_authorization,
    import_certificate,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from permitnet.protocol.registry_view import RegistryView

DAY = 86_400
NOW = ISSUED_AT + 30 * DAY  # 2026-12-18: the certificate is in force
ROOT_SEEDS = [hashlib.sha256(f"root-{i}".encode()).digest() for i in range(2)]
SNAPSHOT_SEED = hashlib.sha256(b"snapshot").digest()
PINNED_ROOT = sign_root(
    RootMetadata(
        version=1,
        issued_at=ISSUED_AT - 400 * DAY,
        threshold=2,
        root_keys=tuple(public_key_from_seed(s) for s in ROOT_SEEDS),
        snapshot_keys=(public_key_from_seed(SNAPSHOT_SEED),),
    ),
    ROOT_SEEDS,
)
STRANGER_SEED = bytes(range(2, 34))


def key(country: str, seed: bytes, **changes: object) -> KeyRecord:
    fields: dict[str, object] = {
        "country": country,
        "kid": key_id(public_key_from_seed(seed)),
        "public_key": public_key_from_seed(seed),
        "valid_from": ISSUED_AT - 365 * DAY,
        "valid_until": None,
        "status": "active",
    }
    fields.update(changes)
    return KeyRecord(**fields)  # type: ignore[arg-type]  # the table above has the right types


def snapshot(*keys: KeyRecord, expires_at: int = NOW + 7 * DAY) -> bytes:
    """A real signed registry snapshot listing DE and FR and the given keys."""
    records: list[CountryRecord | KeyRecord] = [
        CountryRecord(
            code=code,
            name=name,
            authority=f"Competent authority of {name}",
            endpoints=(f"https://node.{code.lower()}.example",),
            contact="",
        )
        for code, name in (("DE", "Germany"), ("FR", "France"))
    ]
    publication = publish(
        records=[encode_record(r) for r in [*records, *keys]],
        previous=None,
        issued_at=NOW - DAY,
        expires_at=expires_at,
        root_version=1,
        seed=SNAPSHOT_SEED,
    )
    return publication.snapshot


def view_of(raw_snapshot: bytes) -> RegistryView:
    trusted = TrustedRegistry(PINNED_ROOT)
    return trusted.update_snapshot(raw_snapshot, now=None)


VIEW = view_of(snapshot(key("DE", DE_SEED), key("FR", FR_SEED)))


def render_png(pdf: bytes, dpi: int = 200) -> bytes:
    document = pypdfium2.PdfDocument(pdf)
    image = document[len(document) - 1].render(scale=dpi / 72).to_pil()
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def as_jpeg(png: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("L").save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


def flip(raw: bytes, offset: int) -> bytes:
    return raw[:offset] + bytes([raw[offset] ^ 0x01]) + raw[offset + 1 :]


CERTIFICATE = import_certificate()
PDF = print_document(CERTIFICATE)


@pytest.mark.parametrize(
    ("make_input", "source"),
    [
        pytest.param(lambda: PDF, "PDF attachment", id="pdf"),
        pytest.param(lambda: render_png(PDF), "QR code in image", id="png scan"),
        pytest.param(lambda: as_jpeg(render_png(PDF, 150)), "QR code in image", id="jpeg photo"),
        pytest.param(lambda: encode_qr_text(CERTIFICATE.raw).encode(), "QR text", id="qr text"),
        pytest.param(lambda: CERTIFICATE.raw, "signed file", id="signed file"),
    ],
)
def test_an_authentic_certificate_verifies_from_every_kind_of_input(
    make_input: Callable[[], bytes], source: str
) -> None:
    verdict = verify_offline(make_input(), VIEW, now=NOW)
    assert verdict.authentic, verdict.reason
    assert verdict.reason is None
    assert verdict.source is not None
    assert verdict.source.startswith(source)
    assert verdict.document_id == CERTIFICATE.id_hex
    assert verdict.title == "Import certificate"
    assert verdict.issuer == "DE"
    assert verdict.authority is not None
    assert "Bundesopiumstelle" in verdict.authority
    assert verdict.reference == "DE-IC-2026-000123"
    assert verdict.kid == DE_KID.hex()
    assert verdict.key_status == "active, registered to DE"
    assert verdict.validity == "in force on 2026-12-18 (valid 2026-11-18 to 2027-05-17)"
    assert verdict.registry_version == VIEW.version
    if source == "QR code in image":
        assert verdict.warnings == (
            (
                "only the QR code was verified, not the text around it: compare the fields shown "
                "here with the paper"
            ),
        )
    else:
        assert verdict.warnings == ()
    assert verdict.signed is not None
    assert verdict.signed.raw == CERTIFICATE.raw
    labels = {f.label for s in verdict.sections for f in s.fields}
    assert {"Importer", "Exporter", "Conditions"} <= labels
    lines = verdict.summary()
    assert lines[0] == "AUTHENTIC: Import certificate DE-IC-2026-000123"
    assert any(line.startswith("  Registry: snapshot version") for line in lines)


def test_the_chain_names_what_an_authorization_and_an_endorsement_refer_to() -> None:
    authorization = export_authorization(CERTIFICATE)
    verdict = verify_offline(print_document(authorization), VIEW, now=NOW)
    assert verdict.authentic, verdict.reason
    assert [(c.relation, c.number, c.document_id) for c in verdict.chain] == [
        ("issued against import certificate", "DE-IC-2026-000123", CERTIFICATE.id_hex)
    ]
    verdict = verify_offline(endorsement(authorization).raw, VIEW, now=NOW)
    assert verdict.authentic, verdict.reason
    assert [(c.relation, c.document_id) for c in verdict.chain] == [
        ("endorses export authorization", authorization.id_hex)
    ]
    assert verdict.validity == "not limited in time"
    assert any("Refers to: endorses export authorization" in x for x in verdict.summary())


def test_an_expired_certificate_is_authentic_but_says_so() -> None:
    verdict = verify_offline(CERTIFICATE.raw, VIEW, now=ISSUED_AT + 400 * DAY)
    assert verdict.authentic
    assert verdict.validity is not None
    assert verdict.validity.startswith("EXPIRED on 2027-05-17")


def test_an_expired_registry_snapshot_is_a_warning() -> None:
    view = view_of(snapshot(key("DE", DE_SEED), expires_at=NOW - 1))
    verdict = verify_offline(CERTIFICATE.raw, view, now=NOW)
    assert verdict.authentic
    assert len(verdict.warnings) == 1
    assert "expired" in verdict.warnings[0]
    assert "refresh the registry data" in verdict.warnings[0]


def test_a_key_revoked_after_signing_keeps_the_document_valid_with_a_warning() -> None:
    revoked_later = key(
        "DE",
        DE_SEED,
        status="revoked",
        compromised_at=ISSUED_AT + DAY,
        reason="laptop stolen",
        valid_until=ISSUED_AT + DAY,
    )
    verdict = verify_offline(CERTIFICATE.raw, view_of(snapshot(revoked_later)), now=NOW)
    assert verdict.authentic, verdict.reason
    assert verdict.key_status is not None
    assert verdict.key_status.startswith("revoked as compromised from")
    assert "signed before that, so it stays valid" in verdict.warnings[0]


def signed_by(seed: bytes, kid: bytes) -> SignedDocument:
    document = CERTIFICATE.document
    return SignedDocument.sign(document, signing_key=seed, kid=kid)


def tampered_pdf_text() -> bytes:
    """The real signed document, with one printed quantity changed (as a forger would)."""
    sheet = document_sheet(CERTIFICATE)
    first = sheet.items[0].cells
    forged = (*first[:4], "15 kg\n15 000 000 mg", *first[5:])
    items = (ItemRow(cells=forged), *sheet.items[1:])
    return draw_sheet(dataclasses.replace(sheet, items=items))


def consistent_forgery() -> bytes:
    """A printout whose attachment and QR code both carry a tampered document."""
    forged = flip(CERTIFICATE.raw, len(CERTIFICATE.raw) - 70)
    from .test_printing_layout import make_sheet

    return draw_sheet(make_sheet(forged))


def revoked_before() -> RegistryView:
    revoked = key(
        "DE",
        DE_SEED,
        status="revoked",
        compromised_at=ISSUED_AT - DAY,
        reason="key leaked",
        valid_until=ISSUED_AT - DAY,
    )
    return view_of(snapshot(revoked))


QR = encode_qr_text(CERTIFICATE.raw)


def tamper_qr(text: str) -> bytes:
    return (text[:40] + ("A" if text[40] != "A" else "B") + text[41:]).encode()


BAD: list[tuple[str, Callable[[], bytes], Callable[[], RegistryView | None], str]] = [
    ("garbage", lambda: b"not a document", lambda: VIEW, "cannot read the input"),
    (
        "PDF whose attachment and QR disagree",
        lambda: _swap_attachment(PDF),
        lambda: VIEW,
        "cannot read the input: the PDF has been altered",
    ),
    (
        "PDF with a tampered signed document in attachment and QR",
        consistent_forgery,
        lambda: VIEW,
        "the signature does not verify with the registered key of Germany (DE)",
    ),
    (
        "PDF whose printed quantity was changed",
        tampered_pdf_text,
        lambda: VIEW,
        "the PDF's printed text was altered: it reads '15' where the signed document says '1.5'",
    ),
    (
        "PDF made by other software around an authentic certificate",
        lambda: pdf_with_attachment(CERTIFICATE.raw),
        lambda: VIEW,
        "the PDF's printed text was altered: text was added or removed",
    ),
    (
        "PDF with a page added",
        lambda: with_extra_page(PDF),
        lambda: VIEW,
        "the PDF has been altered: it has 2 pages where its signed document prints on 1",
    ),
    (
        "tampered QR text",
        lambda: tamper_qr(QR),
        lambda: VIEW,
        "the QR text is not a valid permitnet QR text: the compressed content is damaged",
    ),
    (
        "tampered signed file",
        lambda: flip(CERTIFICATE.raw, len(CERTIFICATE.raw) - 70),
        lambda: VIEW,
        "the signature does not verify",
    ),
    (
        "truncated signed file",
        lambda: CERTIFICATE.raw[:-10],
        lambda: VIEW,
        "not a valid signed permitnet document",
    ),
    (
        "key not in the registry",
        lambda: signed_by(STRANGER_SEED, key_id(public_key_from_seed(STRANGER_SEED))).raw,
        lambda: VIEW,
        "signed with a key the registry does not list",
    ),
    (
        "another country's key",
        lambda: signed_by(FR_SEED, FR_KID).raw,
        lambda: VIEW,
        "belongs to FR, not to the issuer DE",
    ),
    (
        "key revoked before signing",
        lambda: CERTIFICATE.raw,
        revoked_before,
        (
            "signed with a revoked key: revoked as compromised from 2026-11-17 11:06:40 UTC "
            "(key leaked)"
        ),
    ),
    ("no registry data", lambda: CERTIFICATE.raw, lambda: None, "no registry data"),
]


def pdf_with_attachment(raw: bytes) -> bytes:
    """A PDF made by other software: one page (which could say anything) and a .cose file."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_attachment("document.cose", raw)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def with_extra_page(pdf: bytes) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.add_blank_page()
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _swap_attachment(pdf: bytes) -> bytes:
    from .test_offline_inputs import tampered_attachment

    return tampered_attachment(pdf)


@pytest.mark.parametrize(
    ("make_input", "make_view", "reason"),
    [pytest.param(i, v, r, id=name) for name, i, v, r in BAD],
)
def test_what_is_not_authentic_fails_with_the_reason(
    make_input: Callable[[], bytes],
    make_view: Callable[[], RegistryView | None],
    reason: str,
) -> None:
    verdict = verify_offline(make_input(), make_view(), now=NOW)
    assert isinstance(verdict, Verdict)
    assert not verdict.authentic
    assert verdict.reason is not None
    assert reason in verdict.reason
    assert verdict.summary()[0] == f"NOT AUTHENTIC: {verdict.reason}"
    # Only a printout that fails around an authentic signed document carries that document.
    assert verdict.signed is None or verdict.reason.startswith("the PDF")


def test_a_failed_document_still_names_its_key_and_its_registered_country() -> None:
    verdict = verify_offline(flip(CERTIFICATE.raw, len(CERTIFICATE.raw) - 70), VIEW, now=NOW)
    assert verdict.kid == DE_KID.hex()
    assert verdict.issuer == "DE"
    assert verdict.key_status == "active, registered to DE"
    assert verdict.registry_version == VIEW.version
    assert any("key registered to Germany (DE)" in line for line in verdict.summary())


def test_verifying_printed_pdfs_from_several_threads_at_once() -> None:
    # The web verify page runs verification in worker threads; PDFium must not be entered twice.
    from concurrent.futures import ThreadPoolExecutor

    inputs = [PDF, print_document(export_authorization(CERTIFICATE))] * 3
    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = list(pool.map(lambda data: verify_offline(data, VIEW, now=NOW), inputs))
    assert [v.authentic for v in verdicts] == [True] * len(inputs)
    assert {v.source for v in verdicts} == {
        "PDF attachment import-certificate-DE-IC-2026-000123.cose, same as its QR code",
        "PDF attachment export-authorization-FR-EA-2026-0042.cose, same as its QR code",
    }


def test_a_pdf_saved_again_by_another_program_still_verifies_by_its_words() -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(PDF)))
    writer.add_metadata({"/Producer": "another program"})
    buffer = io.BytesIO()
    writer.write(buffer)
    resaved = buffer.getvalue()
    assert resaved != PDF
    verdict = verify_offline(resaved, VIEW, now=NOW)
    assert verdict.authentic, verdict.reason


@pytest.mark.parametrize(
    "make", [import_certificate, export_authorization, endorsement], ids=lambda f: f.__name__
)
def test_printed_pdf_rendered_to_an_image_decodes_and_verifies(
    make: Callable[[], SignedDocument],
) -> None:
    # The issue's "must show", step by step with the libraries themselves: print, render the
    # page with PDFium, read the QR code with zxing-cpp, decode the QR text, verify against the
    # registry. Tampered PDFs, QR texts and files are in the BAD table above.
    import zxingcpp

    from permitnet.protocol.qr import decode_qr_text
    from permitnet.protocol.registry_verify import verify_document

    signed = make()
    pdf = print_document(signed)
    document = pypdfium2.PdfDocument(pdf)
    image = document[len(document) - 1].render(scale=200 / 72, grayscale=True).to_pil()
    (found,) = zxingcpp.read_barcodes(image)
    assert found.format == zxingcpp.BarcodeFormat.QRCode
    raw = decode_qr_text(found.bytes)
    assert raw == signed.raw
    assert verify_document(raw, VIEW, now=NOW).id == signed.id
    verdict = verify_offline(render_png(pdf), VIEW, now=NOW)
    assert verdict.authentic, verdict.reason
    assert verdict.document_id == signed.id_hex


# Names and addresses as people write them, in the scripts the print font covers.
_PRINTABLE = st.characters(
    codec="utf-8",
    categories=("Lu", "Ll", "Nd", "Zs", "Pd", "Po"),
    max_codepoint=0x04FF,  # Latin, Greek, Cyrillic
)


@settings(max_examples=8, deadline=None)
@given(
    name=st.text(_PRINTABLE, min_size=1, max_size=120).filter(lambda s: s.strip() == s and s),
    address=st.text(_PRINTABLE, min_size=1, max_size=200).filter(lambda s: s.strip() == s and s),
)
def test_any_printable_party_prints_and_verifies(name: str, address: str) -> None:
    document = CERTIFICATE.document
    assert isinstance(document, ImportCertificate)
    importer = Party(name=name, address=address, licence="DE-1")
    try:
        signed = SignedDocument.sign(
            dataclasses.replace(document, importer=importer), signing_key=DE_SEED, kid=DE_KID
        )
    except DocumentError:
        return  # the document rules refuse some texts (control characters, lengths)
    try:
        pdf = print_document(signed)
    except PrintError:
        return  # a character DejaVu Sans cannot draw: refused, never printed as a box
    verdict = verify_offline(pdf, VIEW, now=NOW)
    assert verdict.authentic, verdict.reason


def test_messages_and_cancellations_verify_and_name_what_they_are_about() -> None:
    from permitnet.protocol.documents import Cancellation, Message

    message = SignedDocument.sign(
        Message(
            issuer="FR",
            recipient="DE",
            issued_at=ISSUED_AT,
            authority="ANSM",
            about=CERTIFICATE.id,
            text="Please confirm the route.",
            in_reply_to=None,
        ),
        signing_key=FR_SEED,
        kid=FR_KID,
    )
    cancellation = SignedDocument.sign(
        Cancellation(
            issuer="DE",
            recipient="FR",
            issued_at=ISSUED_AT + DAY,
            authority="Bundesopiumstelle",
            document=CERTIFICATE.id,
            reason="Importer's licence withdrawn",
        ),
        signing_key=DE_SEED,
        kid=DE_KID,
    )
    for signed, relation in (
        (message, "is a message about document"),
        (cancellation, "cancels document"),
    ):
        verdict = verify_offline(signed.raw, VIEW, now=NOW)
        assert verdict.authentic, verdict.reason
        assert [(c.relation, c.document_id) for c in verdict.chain] == [
            (relation, CERTIFICATE.id_hex)
        ]
        assert verdict.validity == "not limited in time"
        shown = {f.label: f.value for section in verdict.sections for f in section.fields}
        assert shown.get("Text", shown.get("Reason")) in {
            "Please confirm the route.",
            "Importer's licence withdrawn",
        }
        # A PDF around one was not printed by permitnet: its pages could say anything.
        forged = verify_offline(pdf_with_attachment(signed.raw), VIEW, now=NOW)
        assert not forged.authentic
        assert forged.reason is not None
        assert "which is never printed: its pages were not printed from" in forged.reason


def test_the_largest_certificate_the_protocol_allows_prints_and_verifies_from_a_scan() -> None:
    from permitnet.protocol.catalogue import DEFAULT_CATALOGUE
    from permitnet.protocol.documents import MAX_ITEMS, Item

    codes = [s.code for s in DEFAULT_CATALOGUE.substances if s.regime == "import_certificate"]
    items = tuple(
        Item.create(codes[i % len(codes)], 1_000 * (i + 1), f"tablets {i} mg")
        for i in range(MAX_ITEMS)
    )
    document = CERTIFICATE.document
    assert isinstance(document, ImportCertificate)
    signed = SignedDocument.sign(
        dataclasses.replace(document, items=items), signing_key=DE_SEED, kid=DE_KID
    )
    pdf = print_document(signed)
    verdict = verify_offline(render_png(pdf), VIEW, now=NOW)
    assert verdict.authentic, verdict.reason
    assert verdict.document_id == signed.id_hex
