"""Verifying in steps (parse, Ed25519 check run elsewhere, finish) equals verifying at once.

The node runs the Ed25519 checks in a worker process; these steps must accept exactly what
``verify1``, ``SignedDocument.verify`` and ``verify_document`` accept, and refuse the rest.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from permitnet.protocol.cose import Ed25519Check, Sign1Message, key_id, public_key_from_seed, sign1
from permitnet.protocol.doc_examples import example_seed
from permitnet.protocol.errors import InvalidSignatureError, SignatureError
from permitnet.protocol.registry_errors import UnknownKeyError
from permitnet.protocol.registry_verify import prepare_document, verify_document
from permitnet.protocol.signed import SignedDocument, parse_document
from tests.protocol.test_registry_verify import CASES, T, de_key, signed, view_with

SEED = example_seed("DE")
PUBLIC = public_key_from_seed(SEED)
KID = key_id(PUBLIC)


def message(payload: bytes = b"payload") -> Sign1Message:
    return Sign1Message.from_bytes(sign1(payload, SEED, KID))


@given(st.binary(max_size=2000))
def test_the_steps_return_what_verify_returns(payload: bytes) -> None:
    parsed = message(payload)
    check = parsed.signature_check(PUBLIC)
    assert check.holds()
    assert parsed.checked_payload(check, holds=True) == parsed.verify(PUBLIC) == payload


def test_a_check_that_did_not_hold_is_an_invalid_signature() -> None:
    parsed = message()
    with pytest.raises(InvalidSignatureError):
        parsed.checked_payload(parsed.signature_check(PUBLIC), holds=False)


def test_another_messages_check_is_refused_even_if_said_to_hold() -> None:
    parsed, other = message(b"one"), message(b"another")
    with pytest.raises(SignatureError, match="another message's"):
        parsed.checked_payload(other.signature_check(PUBLIC), holds=True)
    forged = Ed25519Check(PUBLIC, bytes(64), parsed.signature_check(PUBLIC).message)
    with pytest.raises(SignatureError, match="another message's"):
        parsed.checked_payload(forged, holds=True)


@pytest.mark.parametrize("key", [b"", bytes(31), bytes(33), "k" * 32])
def test_a_key_that_is_not_32_bytes_is_refused_before_any_check(key: object) -> None:
    with pytest.raises(SignatureError, match="32 bytes"):
        message().signature_check(key)  # type: ignore[arg-type]


def test_a_check_with_another_key_does_not_hold() -> None:
    other = public_key_from_seed(example_seed("FR"))
    assert not message().signature_check(other).holds()


def test_from_checked_is_verify_parsed_in_steps() -> None:
    raw = signed()
    parsed = parse_document(raw)
    check = parsed.signature_check(PUBLIC)
    assert SignedDocument.from_checked(parsed, check, holds=True) == SignedDocument.verify(
        raw, PUBLIC
    )
    with pytest.raises(InvalidSignatureError):
        SignedDocument.from_checked(parsed, check, holds=False)


def test_from_checked_refuses_a_check_with_another_key_than_the_kid() -> None:
    raw = signed()
    parsed = parse_document(raw)
    other = public_key_from_seed(example_seed("FR"))
    with pytest.raises(SignatureError, match="kid"):
        SignedDocument.from_checked(parsed, parsed.signature_check(other), holds=True)


def test_prepare_and_finish_equal_verify_document() -> None:
    raw, view = signed(), view_with(de_key())
    unchecked = prepare_document(raw, view)
    assert unchecked.check.public_key == PUBLIC
    finished = unchecked.finish(holds=unchecked.check.holds(), view=view, now=T)
    assert finished == verify_document(raw, view, now=T)


def test_prepare_refuses_an_unknown_key_before_any_check() -> None:
    with pytest.raises(UnknownKeyError):
        prepare_document(signed(), view_with())


def test_finish_refuses_a_check_that_did_not_hold() -> None:
    view = view_with(de_key())
    unchecked = prepare_document(signed(), view)
    with pytest.raises(InvalidSignatureError):
        unchecked.finish(holds=False, view=view, now=T)


@pytest.mark.parametrize("case", sorted(c for c in CASES if CASES[c][0]))
def test_finish_refuses_what_verify_document_refuses(case: str) -> None:
    # The registry rules are checked after the signature, in finish, with holds=True.
    records, changes, error = CASES[case]
    view = view_with(*records)
    unchecked = prepare_document(signed(**changes), view)
    with pytest.raises(error):
        unchecked.finish(holds=True, view=view, now=T)
