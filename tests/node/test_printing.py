"""Printing signed documents: every field, the authority, the QR code and the signed file."""

from __future__ import annotations

import datetime as dt
import io

import pypdfium2
import pytest
import zxingcpp
from pypdf import PdfReader

from permitnet.node.print_layout import PrintError
from permitnet.node.printing import (
    attachment_name,
    document_sections,
    print_document,
)
from permitnet.protocol.cose import key_id, public_key_from_seed
from permitnet.protocol.documents import (
    CertificateReference,
    Endorsement,
    ExportAuthorization,
    ExportDeclaration,
    ImportCertificate,
    Item,
    Message,
    Party,
    ReceivedItem,
)
from permitnet.protocol.qr import decode_qr_text
from permitnet.protocol.signed import SignedDocument

DE_SEED = bytes(range(32))
FR_SEED = bytes(range(1, 33))
DE_KID = key_id(public_key_from_seed(DE_SEED))
FR_KID = key_id(public_key_from_seed(FR_SEED))
ISSUED_AT = 1_795_000_000  # 2026-11-18

IMPORTER = Party(
    name="Pharma Import GmbH",
    address="Hauptstraße 1\n10115 Berlin",
    licence="DE-BtM-4711",
)
EXPORTER = Party(
    name="Laboratoires Export SA",
    address="1 rue de la Paix\n75002 Paris",
    licence="FR-ANSM-998877",
)
ITEMS = (
    Item.create("morphine-sulfate-pentahydrate", 1_500_000, "bulk powder"),
    Item.create("codeine-phosphate-hemihydrate", 250_000, "tablets 30 mg"),
)


def import_certificate() -> SignedDocument:
    return SignedDocument.sign(
        ImportCertificate(
            issuer="DE",
            recipient="FR",
            issued_at=ISSUED_AT,
            authority="Bundesinstitut für Arzneimittel und Medizinprodukte, Bundesopiumstelle",
            number="DE-IC-2026-000123",
            date_of_issue=dt.date(2026, 11, 18),
            importer=IMPORTER,
            exporter=EXPORTER,
            exporting_country="FR",
            items=ITEMS,
            valid_from=dt.date(2026, 11, 18),
            valid_until=dt.date(2027, 5, 17),
            several_consignments=True,
            conditions="Into the bonded warehouse of the importer",
            estimate_year=2026,
        ),
        signing_key=DE_SEED,
        kid=DE_KID,
    )


def export_authorization(certificate: SignedDocument | None = None) -> SignedDocument:
    certificate = certificate or import_certificate()
    ic = certificate.document
    assert isinstance(ic, ImportCertificate)
    return SignedDocument.sign(
        ExportAuthorization(
            issuer="FR",
            recipient="DE",
            issued_at=ISSUED_AT + 86_400,
            authority="Agence nationale de sécurité du médicament et des produits de santé",
            number="FR-EA-2026-0042",
            date_of_issue=dt.date(2026, 11, 19),
            importer=IMPORTER,
            exporter=EXPORTER,
            importing_country="DE",
            items=ITEMS,
            import_certificate=CertificateReference(
                id=certificate.id,
                number=ic.number,
                date_of_issue=ic.date_of_issue,
                authority=ic.authority,
            ),
            valid_from=dt.date(2026, 11, 19),
            valid_until=dt.date(2027, 2, 19),
            route="Paris CDG - Frankfurt FRA",
            transport_mode="air",
            transit_countries=("BE",),
        ),
        signing_key=FR_SEED,
        kid=FR_KID,
    )


def endorsement(authorization: SignedDocument | None = None) -> SignedDocument:
    authorization = authorization or export_authorization()
    ea = authorization.document
    assert isinstance(ea, ExportAuthorization)
    return SignedDocument.sign(
        Endorsement(
            issuer="DE",
            recipient="FR",
            issued_at=ISSUED_AT + 10 * 86_400,
            authority="Bundesinstitut für Arzneimittel und Medizinprodukte, Bundesopiumstelle",
            export_authorization=authorization.id,
            export_authorization_number=ea.number,
            date_received=dt.date(2026, 11, 27),
            received=(
                ReceivedItem(line=0, substance=ITEMS[0].substance, quantity_mg=1_400_000),
                ReceivedItem(line=1, substance=ITEMS[1].substance, quantity_mg=250_000),
            ),
            remarks="One drum damaged in transit",
        ),
        signing_key=DE_SEED,
        kid=DE_KID,
    )


def export_declaration() -> SignedDocument:
    return SignedDocument.sign(
        ExportDeclaration(
            issuer="FR",
            recipient="DE",
            issued_at=ISSUED_AT,
            authority="Agence nationale de sécurité du médicament et des produits de santé",
            number="FR-ED-2026-0007",
            exporter=EXPORTER,
            importer=IMPORTER,
            importing_country="DE",
            items=(Item.create("diazepam", 5_000_000, "bulk powder"),),
            date_of_export=dt.date(2026, 11, 20),
        ),
        signing_key=FR_SEED,
        kid=FR_KID,
    )


def text_of(pdf: bytes) -> str:
    # Collapse whitespace: the layout wraps long values onto several lines.
    pages = PdfReader(io.BytesIO(pdf)).pages
    return " ".join(" ".join(page.extract_text().split()) for page in pages)


def qr_bytes(pdf: bytes) -> bytes:
    document = pypdfium2.PdfDocument(pdf)
    for index in range(len(document)):
        image = document[index].render(scale=200 / 72).to_pil()
        found = zxingcpp.read_barcodes(image)
        if found:
            return decode_qr_text(found[0].bytes)
    raise AssertionError("no QR code on any page")


# Every field of each document type, as it must appear on paper.
EXPECTED: list[tuple[str, object, tuple[str, ...]]] = [
    (
        "import certificate",
        import_certificate,
        (
            "FEDERAL REPUBLIC OF GERMANY",
            "Bundesopiumstelle",
            "IMPORT CERTIFICATE",
            "article 31, paragraphs 4 and 5",
            "DE-IC-2026-000123",
            "2026-11-18",
            "Pharma Import GmbH",
            "Hauptstraße 1",
            "10115 Berlin",
            "DE-BtM-4711",
            "Laboratoires Export SA",
            "FR-ANSM-998877",
            "France (FR)",
            "Morphine sulfate pentahydrate",
            "morphine-sulfate-pentahydrate",
            "1961, I",
            "bulk powder",
            "1.5 kg",
            "Codeine phosphate hemihydrate",
            "tablets 30 mg",
            "250 g",
            "2026-11-18 to 2027-05-17",
            "Allowed",
            "2026",
            "Into the bonded warehouse of the importer",
            "2026-11-18 ",
            "UTC",
        ),
    ),
    (
        "export authorization",
        export_authorization,
        (
            "FRENCH REPUBLIC",
            "Agence nationale de sécurité du médicament",
            "EXPORT AUTHORIZATION",
            "article 31, paragraphs 4 to 6",
            "FR-EA-2026-0042",
            "DE-IC-2026-000123",
            "Germany (DE)",
            "2026-11-19 to 2027-02-19",
            "air",
            "Paris CDG - Frankfurt FRA",
            "Belgium (BE)",
            "Morphine sulfate pentahydrate",
        ),
    ),
    (
        "endorsement",
        endorsement,
        (
            "ENDORSEMENT OF EXPORT AUTHORIZATION",
            "article 31, paragraph 7",
            "FR-EA-2026-0042",
            "2026-11-27",
            "QUANTITIES ACTUALLY RECEIVED",
            "Morphine sulfate pentahydrate",
            "1.4 kg",
            "Codeine phosphate hemihydrate",
            "One drum damaged in transit",
        ),
    ),
    (
        "export declaration",
        export_declaration,
        (
            "EXPORT DECLARATION",
            "article 12, paragraph 2",
            "FR-ED-2026-0007",
            "Diazepam",
            "1971, IV",
            "5 kg",
            "2026-11-20",
        ),
    ),
]


@pytest.mark.parametrize(
    ("make", "expected"),
    [pytest.param(make, expected, id=name) for name, make, expected in EXPECTED],
)
def test_each_document_prints_every_field_its_qr_code_and_its_signed_file(
    make: object, expected: tuple[str, ...]
) -> None:
    assert callable(make)
    signed = make()
    assert isinstance(signed, SignedDocument)
    pdf = print_document(signed)
    text = text_of(pdf)
    for value in expected:
        assert value in text, value
    # The verification block: signer, key and document identifiers, grouped for reading.
    assert signed.kid.hex()[:8] in text
    assert " ".join(signed.id_hex[i : i + 8] for i in range(0, 64, 8)) in text
    attachments = PdfReader(io.BytesIO(pdf)).attachments
    assert attachments == {attachment_name(signed): [signed.raw]}
    assert qr_bytes(pdf) == signed.raw


def test_the_item_reference_of_an_authorization_names_its_certificate() -> None:
    certificate = import_certificate()
    text = text_of(print_document(export_authorization(certificate)))
    assert " ".join(certificate.id_hex[i : i + 8] for i in range(0, 64, 8)) in text


def test_a_message_is_not_a_paper_document() -> None:
    message = SignedDocument.sign(
        Message(
            issuer="DE",
            recipient="FR",
            issued_at=ISSUED_AT,
            authority="Bundesopiumstelle",
            about=import_certificate().id,
            text="Please confirm the route.",
            in_reply_to=None,
        ),
        signing_key=DE_SEED,
        kid=DE_KID,
    )
    with pytest.raises(PrintError, match="message is not a paper document"):
        print_document(message)


def test_attachment_names_are_safe_file_names() -> None:
    assert attachment_name(import_certificate()) == "import-certificate-DE-IC-2026-000123.cose"
    assert attachment_name(endorsement()) == "endorsement-Endorsement-of-FR-EA-2026-0042.cose"


def test_sections_for_display_hold_every_field() -> None:
    sections = document_sections(import_certificate())
    labels = {field.label for section in sections for field in section.fields}
    assert {
        "Issuing country",
        "Competent authority",
        "Reference",
        "Importer",
        "Exporter",
        "No. 1",
        "No. 2",
        "Import to take place",
        "Several consignments",
        "Conditions",
    } <= labels


@pytest.mark.parametrize("make", [import_certificate, export_authorization, endorsement])
def test_a_two_item_document_prints_on_one_page(make: object) -> None:
    assert callable(make)
    signed = make()
    assert isinstance(signed, SignedDocument)
    assert len(PdfReader(io.BytesIO(print_document(signed))).pages) == 1
