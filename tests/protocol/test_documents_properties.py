"""Property tests: generated documents round-trip exactly; arbitrary payloads fail cleanly."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from permitnet.protocol import DocumentError, ProtocolError, decode_cbor, public_key_from_seed
from permitnet.protocol.catalogue import DEFAULT_CATALOGUE
from permitnet.protocol.doc_examples import (
    example_cancellation,
    example_delivery_receipt,
    example_endorsement,
    example_export_authorization,
    example_export_declaration,
    example_import_certificate,
    example_kid,
    example_message,
    example_seed,
)
from permitnet.protocol.documents import (
    TRANSPORT_MODES,
    Document,
    Item,
    Party,
    ReceivedItem,
    document_from_payload,
)
from permitnet.protocol.quantities import MAX_QUANTITY_MG
from permitnet.protocol.signed import SignedDocument

# Text without control characters or bidirectional overrides, not blank.
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
characters = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=BIDI)
line_text = st.text(alphabet=characters, min_size=1, max_size=60).filter(lambda s: s.strip() != "")
multi_text = st.text(
    alphabet=characters | st.just("\n"),
    min_size=1,
    max_size=120,
).filter(lambda s: s.strip() != "")
dates = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31))
ids = st.binary(min_size=32, max_size=32)
parties = st.builds(Party, name=line_text, address=multi_text, licence=line_text)
items = st.builds(
    Item.create,
    st.sampled_from([s.code for s in DEFAULT_CATALOGUE.substances]),
    st.integers(min_value=1, max_value=MAX_QUANTITY_MG),
    line_text,
)
countries = st.sampled_from(["DE", "IN", "FR", "CH", "AE", "BR", "JP", "ZA", "NG", "AU"])


@st.composite
def import_certificates(draw: st.DrawFn) -> Document:
    issuer, recipient = draw(st.lists(countries, min_size=2, max_size=2, unique=True))
    start = draw(dates)
    return example_import_certificate(
        issuer=issuer,
        recipient=recipient,
        exporting_country=recipient,
        issued_at=draw(st.integers(min_value=0, max_value=2**33)),
        authority=draw(line_text),
        number=draw(line_text),
        date_of_issue=start,
        importer=draw(parties),
        exporter=draw(parties),
        items=tuple(draw(st.lists(items, min_size=1, max_size=5))),
        valid_from=start,
        valid_until=start + dt.timedelta(days=draw(st.integers(0, 400))),
        several_consignments=draw(st.booleans()),
        conditions=draw(st.just("") | multi_text),
        estimate_year=draw(st.integers(min_value=1961, max_value=9999)),
    )


@st.composite
def export_authorizations(draw: st.DrawFn) -> Document:
    start = draw(dates)
    transit = draw(st.lists(st.sampled_from(["AE", "CH", "TR", "SG"]), max_size=3, unique=True))
    return example_export_authorization(
        draw(ids),
        items=tuple(draw(st.lists(items, min_size=1, max_size=5))),
        valid_from=start,
        valid_until=start + dt.timedelta(days=draw(st.integers(0, 200))),
        route=draw(st.just("") | multi_text),
        transport_mode=draw(st.sampled_from(TRANSPORT_MODES)),
        transit_countries=tuple(transit),
    )


@st.composite
def endorsements(draw: st.DrawFn) -> Document:
    lines = draw(st.lists(st.integers(0, 99), min_size=1, max_size=5, unique=True))
    received = tuple(
        ReceivedItem(
            line=line,
            substance=draw(st.sampled_from(["morphine", "codeine", "diazepam"])),
            quantity_mg=draw(st.integers(0, MAX_QUANTITY_MG)),
        )
        for line in lines
    )
    return example_endorsement(draw(ids), received=received, remarks=draw(st.just("") | multi_text))


documents = st.one_of(
    import_certificates(),
    export_authorizations(),
    endorsements(),
    st.builds(example_message, ids, in_reply_to=st.none() | ids, text=multi_text),
    st.builds(example_delivery_receipt, ids),
    st.builds(example_cancellation, ids, reason=multi_text),
    st.builds(
        example_export_declaration,
        items=st.lists(
            st.builds(
                Item.create,
                st.sampled_from(
                    [
                        s.code
                        for s in DEFAULT_CATALOGUE.substances
                        if s.regime == "export_declaration"
                    ]
                ),
                st.integers(min_value=1, max_value=MAX_QUANTITY_MG),
                line_text,
            ),
            min_size=1,
            max_size=5,
        ).map(tuple),
        date_of_export=dates,
    ),
)


@given(documents)
def test_generated_documents_round_trip(document: Document) -> None:
    encoded = document.to_cbor()
    again = document_from_payload(decode_cbor(encoded))
    assert again == document
    assert again.to_cbor() == encoded


SEED = example_seed("DE")
PUBLIC = public_key_from_seed(SEED)


@given(import_certificates())
def test_generated_certificates_sign_and_verify(document: Document) -> None:
    signed = SignedDocument.sign(document, signing_key=SEED, kid=example_kid("DE"))
    assert SignedDocument.verify(signed.raw, PUBLIC).document == document


cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.data())
def test_arbitrary_changes_fail_only_with_document_error(data: st.DataObject) -> None:
    # Replace one field of a valid payload (or of one of its items) by an arbitrary value:
    # the result is either a valid document or a DocumentError, never another exception.
    document = data.draw(documents)
    payload: dict[str, Any] = document.to_payload()
    target = payload
    if "items" in payload and data.draw(st.booleans()):
        target = payload["items"][0]
    key = data.draw(st.sampled_from(sorted(target)) | st.text(max_size=8))
    target[key] = data.draw(cbor_values)
    with contextlib.suppress(DocumentError):
        document_from_payload(payload)


@given(cbor_values)
def test_arbitrary_values_fail_only_with_document_error(value: object) -> None:
    with contextlib.suppress(DocumentError):
        document_from_payload(value)


@given(st.data())
def test_damaged_signed_bytes_fail_only_with_protocol_errors(data: st.DataObject) -> None:
    raw = bytearray(
        SignedDocument.sign(
            example_import_certificate(), signing_key=SEED, kid=example_kid("DE")
        ).raw
    )
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(raw)))
    damaged = bytes(raw[:cut])
    try:
        SignedDocument.verify(damaged, PUBLIC)
    except ProtocolError:
        return
    # Only an undamaged message may verify (a byte may have been set to its own value).
    assert (
        damaged
        == SignedDocument.sign(
            example_import_certificate(), signing_key=SEED, kid=example_kid("DE")
        ).raw
    )
