"""verify_document: a document is accepted only with its country's key, valid when it signed."""

from __future__ import annotations

import hashlib

import pytest

from permitnet.protocol.cose import key_id, public_key_from_seed
from permitnet.protocol.doc_examples import (
    EXAMPLE_ISSUED_AT,
    example_import_certificate,
    example_seed,
)
from permitnet.protocol.errors import InvalidSignatureError, ProtocolError
from permitnet.protocol.registry_errors import (
    KeyNotValidError,
    KeyRevokedError,
    UnknownKeyError,
    WrongCountryError,
)
from permitnet.protocol.registry_records import CountryRecord, KeyRecord, Record
from permitnet.protocol.registry_verify import verify_document
from permitnet.protocol.registry_view import RegistryView, fold
from permitnet.protocol.signed import SignedDocument

T = EXAMPLE_ISSUED_AT


def de_key(**changes: object) -> KeyRecord:
    public = public_key_from_seed(example_seed("DE"))
    fields: dict[str, object] = {
        "country": "DE",
        "kid": key_id(public),
        "public_key": public,
        "valid_from": T - 1000,
        "valid_until": None,
        "status": "active",
    }
    return KeyRecord(**(fields | changes))  # type: ignore[arg-type]


def view_with(*records: Record) -> RegistryView:
    countries = [
        CountryRecord(code=c, name=c, authority="a", endpoints=(), contact="")
        for c in ("DE", "IN", "FR")
    ]
    state = fold([*countries, *records])
    return RegistryView(
        version=1,
        issued_at=T,
        expires_at=T + 10,
        root_version=1,
        log_size=0,
        log_root=b"\x00" * 32,
        log_compact=(),
        state=state,
    )


def signed(**changes: object) -> bytes:
    seed = example_seed("DE")
    return SignedDocument.sign(
        example_import_certificate(**changes),
        signing_key=seed,
        kid=key_id(public_key_from_seed(seed)),
    ).raw


def test_accepts_a_document_from_the_issuers_valid_key() -> None:
    raw = signed()
    document = verify_document(raw, view_with(de_key()), now=T)
    assert document.raw == raw
    assert document.id == hashlib.sha256(raw).digest()
    assert document.document.issuer == "DE"


def test_document_signed_before_compromise_stays_valid() -> None:
    view = view_with(de_key(), de_key(status="revoked", compromised_at=T + 1, reason="stolen"))
    verify_document(signed(), view, now=T + 100)


FR_PUBLIC = public_key_from_seed(example_seed("FR"))
CASES: dict[str, tuple[tuple[Record, ...], dict[str, object], type[ProtocolError]]] = {
    "key not in the registry": ((), {}, UnknownKeyError),
    "key listed for another country": (
        (
            KeyRecord(
                country="FR",
                kid=key_id(public_key_from_seed(example_seed("DE"))),
                public_key=public_key_from_seed(example_seed("DE")),
                valid_from=0,
                valid_until=None,
                status="active",
            ),
        ),
        {},
        WrongCountryError,
    ),
    "signed before the key was valid": ((de_key(valid_from=T + 1),), {}, KeyNotValidError),
    "signed after a retired key's end": (
        (de_key(status="retired", valid_until=T),),
        {},
        KeyNotValidError,
    ),
    "signed at the compromise time": (
        (de_key(), de_key(status="revoked", compromised_at=T, reason="stolen")),
        {},
        KeyRevokedError,
    ),
    "issued in the future": ((de_key(),), {"issued_at": T + 3600}, KeyNotValidError),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refusals(case: str) -> None:
    records, changes, error = CASES[case]
    with pytest.raises(error):
        verify_document(signed(**changes), view_with(*records), now=T)


def test_registry_key_for_the_kid_must_verify_the_signature() -> None:
    raw = bytearray(signed())
    raw[-1] ^= 1
    with pytest.raises(InvalidSignatureError):
        verify_document(bytes(raw), view_with(de_key()), now=T)
