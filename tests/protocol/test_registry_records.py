"""Registry records and key requests: round trips, and a table of bad inputs each refused."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from permitnet.protocol.cbor import encode_cbor
from permitnet.protocol.cose import key_id, public_key_from_seed
from permitnet.protocol.registry_errors import (
    KeyRevokedError,
    RecordError,
    SignerError,
    UnknownKeyError,
    WrongCountryError,
)
from permitnet.protocol.registry_records import (
    CatalogueEdition,
    CountryRecord,
    Estimate,
    KeyRecord,
    Record,
    decode_record,
    encode_record,
)
from permitnet.protocol.registry_requests import (
    build_enrollment_request,
    build_revocation_request,
    build_rotation_request,
    verify_key_request,
)
from permitnet.protocol.registry_view import fold

T0 = 1_780_000_000


def seed(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def pub(name: str) -> bytes:
    return public_key_from_seed(seed(name))


def key(name: str, country: str = "DE", **changes: object) -> KeyRecord:
    fields: dict[str, object] = {
        "country": country,
        "kid": key_id(pub(name)),
        "public_key": pub(name),
        "valid_from": T0,
        "valid_until": None,
        "status": "active",
    }
    return KeyRecord(**(fields | changes))  # type: ignore[arg-type]


estimates = st.builds(
    Estimate,
    country=st.sampled_from(["DE", "FR", "IN", "JP"]),
    substance=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    year=st.just(2026),
    quantity_mg=st.integers(0, 2**63),
    kind=st.sampled_from(["estimate", "assessment"]),
    effective=st.dates(
        min_value=dt.date(2026, 1, 1),
        max_value=dt.date(2026, 12, 31),
    ).map(str),
)


@given(estimates)
def test_estimates_round_trip(record: Estimate) -> None:
    assert decode_record(encode_record(record)) == record


@pytest.mark.parametrize(
    "record",
    [
        CountryRecord(
            code="DE",
            name="Germany",
            authority="BfArM",
            endpoints=("https://de.example",),
            contact="x@example.org",
        ),
        key("a"),
        key("a", status="revoked", compromised_at=T0, reason="stolen"),
        key("a", status="retired", valid_until=T0 + 1),
        Estimate(
            country="DE",
            substance="morphine",
            year=2026,
            quantity_mg=5,
            kind="supplementary",
            effective="2026-05-01",
            sequence=3,
        ),
        CatalogueEdition(edition="permitnet-2026.1", digest=b"\x01" * 32),
    ],
)
def test_records_round_trip(record: object) -> None:
    assert decode_record(encode_record(record)) == record  # type: ignore[arg-type]


def _country(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "country",
        "code": "DE",
        "name": "Germany",
        "authority": "BfArM",
        "endpoints": [],
        "contact": "",
    }
    return base | changes


def _key(**changes: object) -> dict[str, object]:
    return key("a").to_payload() | changes


def _estimate(**changes: object) -> dict[str, object]:
    return {
        "type": "estimate",
        "country": "DE",
        "substance": "morphine",
        "year": 2026,
        "quantity_mg": 1,
        "kind": "estimate",
        "effective": "2026-01-01",
        "sequence": 0,
    } | changes


BAD_RECORDS: dict[str, object] = {
    "not a map": [1, 2],
    "unknown type": {"type": "wizard"},
    "no type": {"code": "DE"},
    "lower-case country": _country(code="de"),
    "not an ISO country": _country(code="XX"),
    "endpoint not http": _country(endpoints=["ftp://x"]),
    "endpoints not a list": _country(endpoints="https://x"),
    "empty authority": _country(authority=" "),
    "kid not of the key": _key(kid=b"\x00" * 16),
    "short public key": _key(public_key=b"\x00" * 31),
    "unknown key status": _key(status="lost"),
    "revoked without compromise time": _key(status="revoked", reason="x"),
    "revoked without reason": _key(status="revoked", compromised_at=T0),
    "active with compromise time": _key(compromised_at=T0),
    "retired without end": _key(status="retired"),
    "validity ends before it starts": _key(valid_until=T0 - 1),
    "negative quantity": _estimate(quantity_mg=-1),
    "float quantity as text": _estimate(quantity_mg="1.5"),
    "bad substance code": _estimate(substance="Morphine"),
    "impossible date": _estimate(effective="2026-02-30"),
    "date not ISO": _estimate(effective="01/02/2026"),
    "supplementary without sequence": _estimate(kind="supplementary"),
    "estimate with sequence": _estimate(sequence=2),
    "assessment in another year": _estimate(kind="assessment", effective="2025-06-01"),
    "unknown estimate kind": _estimate(kind="guess"),
    "year out of range": _estimate(year=1900),
    "boolean year": _estimate(year=True),
    "catalogue digest short": {"type": "catalogue", "edition": "e", "digest": b"\x00"},
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_bad_records_are_refused(case: str) -> None:
    with pytest.raises(RecordError):
        decode_record(encode_cbor(BAD_RECORDS[case]))


def test_not_cbor_is_a_record_error() -> None:
    with pytest.raises(RecordError, match="strict CBOR"):
        decode_record(b"\xff")


TRANSITIONS: dict[str, list[Record]] = {
    "key for an unregistered country": [key("a", "FR")],
    "key moves to another country": [
        CountryRecord(code="FR", name="France", authority="ANSM", endpoints=(), contact=""),
        key("a"),
        key("a", "FR"),
    ],
    "revoked key reinstated": [
        key("a"),
        key("a", status="revoked", compromised_at=T0, reason="x"),
        key("a"),
    ],
    "estimate for an unregistered country": [
        Estimate(
            country="FR",
            substance="morphine",
            year=2026,
            quantity_mg=1,
            kind="estimate",
            effective="2026-01-01",
        )
    ],
}


@pytest.mark.parametrize("case", sorted(TRANSITIONS))
def test_forbidden_transitions(case: str) -> None:
    germany = CountryRecord(code="DE", name="Germany", authority="BfArM", endpoints=(), contact="")
    with pytest.raises(RecordError):
        fold([germany, *TRANSITIONS[case]])


# ---------------------------------------------------------------- key requests


def keys(*records: KeyRecord) -> dict[bytes, KeyRecord]:
    return {r.kid: r for r in records}


def test_enrollment_proves_possession() -> None:
    raw = build_enrollment_request(seed("new"), country="DE", valid_from=T0, requested_at=T0)
    request = verify_key_request(raw, {})
    assert (request.action, request.country, request.public_key) == ("enroll", "DE", pub("new"))
    assert request.new_key_record().status == "active"


def test_rotation_and_revocation_verify() -> None:
    registered = keys(key("old"), key("other"))
    rotation = verify_key_request(
        build_rotation_request(
            seed("old"), seed("new"), country="DE", valid_from=T0 + 5, requested_at=T0
        ),
        registered,
    )
    assert (rotation.signer_kid, rotation.public_key, rotation.valid_from) == (
        key_id(pub("old")),
        pub("new"),
        T0 + 5,
    )
    revocation = verify_key_request(
        build_revocation_request(
            seed("other"),
            country="DE",
            kid=key_id(pub("old")),
            compromised_at=T0,
            reason="stolen",
            requested_at=T0,
        ),
        registered,
    )
    assert (revocation.kid, revocation.reason) == (key_id(pub("old")), "stolen")
    with pytest.raises(RecordError):
        revocation.new_key_record()


def _tampered_enrollment() -> bytes:
    raw = bytearray(
        build_enrollment_request(seed("new"), country="DE", valid_from=T0, requested_at=T0)
    )
    raw[-1] ^= 1
    return bytes(raw)


REVOKED_OLD = key("old", status="revoked", compromised_at=T0, reason="x")
BAD_REQUESTS: dict[str, tuple[bytes, dict[bytes, KeyRecord], type[Exception]]] = {
    "tampered enrollment": (_tampered_enrollment(), {}, SignerError),
    "rotation by an unknown key": (
        build_rotation_request(
            seed("stranger"), seed("new"), country="DE", valid_from=T0, requested_at=T0
        ),
        keys(key("old")),
        UnknownKeyError,
    ),
    "rotation by another country's key": (
        build_rotation_request(
            seed("old"), seed("new"), country="FR", valid_from=T0, requested_at=T0
        ),
        keys(key("old")),
        WrongCountryError,
    ),
    "rotation by a revoked key": (
        build_rotation_request(
            seed("old"), seed("new"), country="DE", valid_from=T0, requested_at=T0
        ),
        keys(REVOKED_OLD),
        SignerError,
    ),
    "revocation of another country's key": (
        build_revocation_request(
            seed("old"),
            country="DE",
            kid=key_id(pub("fr")),
            compromised_at=T0,
            reason="x",
            requested_at=T0,
        ),
        keys(key("old"), key("fr", "FR")),
        WrongCountryError,
    ),
    "revoked key revoking another": (
        build_revocation_request(
            seed("old"),
            country="DE",
            kid=key_id(pub("b")),
            compromised_at=T0,
            reason="x",
            requested_at=T0,
        ),
        keys(REVOKED_OLD, key("b")),
        KeyRevokedError,
    ),
    "revocation without reason": (
        build_revocation_request(
            seed("old"),
            country="DE",
            kid=key_id(pub("old")),
            compromised_at=T0,
            reason=" ",
            requested_at=T0,
        ),
        keys(key("old")),
        RecordError,
    ),
    "not a request": (encode_cbor({"type": "x"}), {}, RecordError),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_key_requests(case: str) -> None:
    raw, registered, error = BAD_REQUESTS[case]
    with pytest.raises(error):
        verify_key_request(raw, registered)
