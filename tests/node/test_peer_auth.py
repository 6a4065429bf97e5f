"""Signed node-to-node requests: a good request passes, every bad one is refused with a reason."""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from permitnet.node.peer_auth import (
    AUTH_SCHEME,
    MAX_CLOCK_SKEW,
    REQUEST_CONTENT_TYPE,
    AuthenticatedPeer,
    NonceCache,
    PeerAuthError,
    PeerKey,
    PeerReplayError,
    RequestClaims,
    UncheckedRequest,
    UnknownPeerKeyError,
    prepare_request,
    sign_request,
    verify_request,
)
from permitnet.protocol.cose import key_id, public_key_from_seed, sign1

if TYPE_CHECKING:
    from collections.abc import Callable

DE_SEED = bytes(range(32))
FR_SEED = bytes(range(1, 33))
DE_KID = key_id(public_key_from_seed(DE_SEED))
FR_KID = key_id(public_key_from_seed(FR_SEED))
NOW = 1_790_000_000
BODY = b"\x81\x41\x00"
TARGET = "/peer/v1/documents"


def resolver(keys: dict[bytes, PeerKey]) -> Callable[[bytes, int], PeerKey]:
    def resolve(kid: bytes, at: int) -> PeerKey:
        del at
        try:
            return keys[kid]
        except KeyError:
            raise UnknownPeerKeyError(f"key {kid.hex()} is not listed") from None

    return resolve


REGISTRY = resolver(
    {
        DE_KID: PeerKey(country="DE", public_key=public_key_from_seed(DE_SEED)),
        FR_KID: PeerKey(country="FR", public_key=public_key_from_seed(FR_SEED)),
    }
)


@dataclass(frozen=True, kw_only=True)
class Req:
    method: str = "POST"
    target: str = TARGET
    body: bytes = BODY
    sender: str = "DE"
    audience: str = "FR"
    seed: bytes = DE_SEED
    kid: bytes = DE_KID
    signed_at: int = NOW
    nonce: bytes = b"n" * 16


def header_for(req: Req) -> str:
    return sign_request(
        method=req.method,
        target=req.target,
        body=req.body,
        sender=req.sender,
        audience=req.audience,
        signing_key=req.seed,
        kid=req.kid,
        now=req.signed_at,
        nonce=req.nonce,
    )


def check(
    header: str | None,
    *,
    method: str = "POST",
    target: str = TARGET,
    body: bytes = BODY,
    now: int = NOW,
    nonces: NonceCache | None = None,
) -> None:
    verify_request(
        header,
        method=method,
        target=target,
        body=body,
        audience="FR",
        now=now,
        resolve_key=REGISTRY,
        nonces=nonces if nonces is not None else NonceCache(),
    )


def test_good_request_is_accepted_and_names_its_sender() -> None:
    nonces = NonceCache()
    peer = verify_request(
        header_for(Req()),
        method="POST",
        target=TARGET,
        body=BODY,
        audience="FR",
        now=NOW + 10,
        resolve_key=REGISTRY,
        nonces=nonces,
    )
    assert peer.country == "DE"
    assert peer.kid == DE_KID
    assert peer.claims.timestamp == NOW
    assert len(nonces) == 1


def test_replayed_request_is_refused_the_second_time() -> None:
    nonces = NonceCache()
    header = header_for(Req())
    check(header, nonces=nonces)
    with pytest.raises(PeerReplayError, match="already received"):
        check(header, now=NOW + 5, nonces=nonces)


def test_replay_outside_window_is_refused_by_timestamp_even_after_nonce_pruned() -> None:
    nonces = NonceCache()
    header = header_for(Req())
    check(header, nonces=nonces)
    later = NOW + MAX_CLOCK_SKEW + 1
    nonces.prune(later)
    assert len(nonces) == 0
    with pytest.raises(PeerReplayError, match="timestamp"):
        check(header, now=later, nonces=nonces)


def test_failed_request_does_not_burn_the_nonce() -> None:
    nonces = NonceCache()
    header = header_for(Req())
    with pytest.raises(PeerAuthError):
        check(header, body=b"other", nonces=nonces)
    check(header, nonces=nonces)


def _raw_envelope(
    payload: bytes,
    *,
    seed: bytes = DE_SEED,
    kid: bytes = DE_KID,
    content_type: str | None = REQUEST_CONTENT_TYPE,
) -> str:
    envelope = sign1(payload, seed, kid, content_type=content_type)
    return f"{AUTH_SCHEME} " + base64.urlsafe_b64encode(envelope).rstrip(b"=").decode()


def _tampered(header: str) -> str:
    token = header.split(" ", 1)[1]
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[-1] ^= 1  # flips a bit of the signature
    return f"{AUTH_SCHEME} " + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


GOOD_CLAIMS = RequestClaims(
    method="POST",
    target=TARGET,
    body_sha256=bytes(32),
    sender="DE",
    audience="FR",
    timestamp=NOW,
    nonce=bytes(16),
)

UNKNOWN_SEED = bytes(range(2, 34))
BAD_CASES: list[tuple[str, Callable[[], str | None], dict[str, object], type[Exception], str]] = [
    ("missing header", lambda: None, {}, PeerAuthError, "need an Authorization"),
    ("wrong scheme", lambda: "Bearer abc", {}, PeerAuthError, "scheme"),
    ("empty token", lambda: f"{AUTH_SCHEME} ", {}, PeerAuthError, "scheme"),
    ("not base64", lambda: f"{AUTH_SCHEME} @@@@", {}, PeerAuthError, "malformed|base64"),
    ("not cose", lambda: f"{AUTH_SCHEME} AAAA", {}, PeerAuthError, "malformed"),
    ("oversized header", lambda: f"{AUTH_SCHEME} " + "A" * 4096, {}, PeerAuthError, "too large"),
    (
        "unknown key",
        lambda: header_for(Req(seed=UNKNOWN_SEED, kid=key_id(public_key_from_seed(UNKNOWN_SEED)))),
        {},
        UnknownPeerKeyError,
        "not listed",
    ),
    (
        "kid of DE, signed by another key (forged)",
        lambda: header_for(Req(seed=UNKNOWN_SEED)),
        {},
        PeerAuthError,
        "does not verify",
    ),
    ("tampered signature", lambda: _tampered(header_for(Req())), {}, PeerAuthError, "verify"),
    (
        "claims to be from FR with a DE key",
        lambda: header_for(Req(sender="FR")),
        {},
        UnknownPeerKeyError,
        "belongs to DE",
    ),
    (
        "addressed to another country",
        lambda: header_for(Req(audience="IN")),
        {},
        PeerAuthError,
        "addressed to IN",
    ),
    ("other method", lambda: header_for(Req()), {"method": "GET"}, PeerAuthError, "signed for"),
    ("other target", lambda: header_for(Req()), {"target": "/x"}, PeerAuthError, "signed for"),
    (
        "other query",
        lambda: header_for(Req(target="/peer/v1/outbox?for=FR")),
        {"target": "/peer/v1/outbox?for=IN"},
        PeerAuthError,
        "signed for",
    ),
    ("tampered body", lambda: header_for(Req()), {"body": b"x"}, PeerAuthError, "digest"),
    (
        "too old",
        lambda: header_for(Req()),
        {"now": NOW + MAX_CLOCK_SKEW + 1},
        PeerReplayError,
        "timestamp",
    ),
    (
        "from the future",
        lambda: header_for(Req()),
        {"now": NOW - MAX_CLOCK_SKEW - 1},
        PeerReplayError,
        "timestamp",
    ),
    (
        "a signed document's content type (domain separation)",
        lambda: _raw_envelope(
            GOOD_CLAIMS.to_payload(), content_type="application/permitnet-document+cbor"
        ),
        {},
        PeerAuthError,
        "content type",
    ),
    (
        "no content type",
        lambda: _raw_envelope(GOOD_CLAIMS.to_payload(), content_type=None),
        {},
        PeerAuthError,
        "content type",
    ),
    (
        "claims not a map",
        lambda: _raw_envelope(b"\x01"),
        {},
        PeerAuthError,
        "must be a map",
    ),
    (
        "claims of another version",
        lambda: _raw_envelope(
            bytes.fromhex("a8")
            + RequestClaims(
                method="POST",
                target=TARGET,
                body_sha256=bytes(32),
                sender="DE",
                audience="FR",
                timestamp=NOW,
                nonce=bytes(16),
            )
            .to_payload()[1:]
            .replace(b"av\x01", b"av\x02")
        ),
        {},
        PeerAuthError,
        "version",
    ),
]


@pytest.mark.parametrize(
    ("header_factory", "overrides", "error", "match"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_CASES],
)
def test_bad_requests_are_refused(
    header_factory: Callable[[], str | None],
    overrides: dict[str, object],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        check(header_factory(), **overrides)  # type: ignore[arg-type]  # overrides come from the table


BAD_CLAIMS: list[tuple[str, dict[str, object], str]] = [
    ("lower-case method", {"method": "post"}, "method"),
    ("relative target", {"target": "peer"}, "absolute"),
    ("short digest", {"body_sha256": b"x"}, "digest"),
    ("short nonce", {"nonce": b"x"}, "nonce"),
    ("lower-case country", {"sender": "de"}, "alpha-2"),
    ("three-letter country", {"audience": "FRA"}, "alpha-2"),
    ("negative time", {"timestamp": -1}, "non-negative"),
]


@pytest.mark.parametrize(
    ("changes", "match"), [pytest.param(c[1], c[2], id=c[0]) for c in BAD_CLAIMS]
)
def test_bad_claims_are_refused_on_construction(changes: dict[str, object], match: str) -> None:
    with pytest.raises(PeerAuthError, match=match):
        replace(GOOD_CLAIMS, **changes)  # type: ignore[arg-type]  # changes come from the table


@given(
    method=st.sampled_from(["GET", "POST"]),
    target=st.text(min_size=0, max_size=40).map(lambda s: "/" + s),
    timestamp=st.integers(min_value=0, max_value=2**40),
    nonce=st.binary(min_size=16, max_size=16),
    digest=st.binary(min_size=32, max_size=32),
)
def test_claims_round_trip(
    method: str, target: str, timestamp: int, nonce: bytes, digest: bytes
) -> None:
    claims = RequestClaims(
        method=method,
        target=target,
        body_sha256=digest,
        sender="DE",
        audience="FR",
        timestamp=timestamp,
        nonce=nonce,
    )
    assert RequestClaims.from_payload(claims.to_payload()) == claims


def test_nonce_cache_is_bounded_and_refuses_rather_than_forgets() -> None:
    cache = NonceCache(max_entries=2)
    cache.remember(b"a", expires_at=NOW + 10, now=NOW)
    cache.remember(b"b", expires_at=NOW + 10, now=NOW)
    with pytest.raises(PeerReplayError, match="too many"):
        cache.remember(b"c", expires_at=NOW + 10, now=NOW)
    assert b"a" in cache
    cache.remember(b"c", expires_at=NOW + 30, now=NOW + 11)  # a and b expired meanwhile
    assert len(cache) == 1


def test_nonce_cache_restores_live_entries_after_restart() -> None:
    cache = NonceCache()
    cache.load([(b"old", NOW - 1), (b"live", NOW + 5)], now=NOW)
    assert b"old" not in cache
    with pytest.raises(PeerReplayError):
        cache.remember(b"live", expires_at=NOW + 5, now=NOW)


def _finish(unchecked: UncheckedRequest, *, holds: bool, nonces: NonceCache) -> AuthenticatedPeer:
    return unchecked.finish(
        holds=holds,
        method="POST",
        target=TARGET,
        body=BODY,
        audience="FR",
        now=NOW,
        nonces=nonces,
    )


def test_prepare_then_finish_is_verify_request_in_steps() -> None:
    unchecked = prepare_request(header_for(Req()), now=NOW, resolve_key=REGISTRY)
    assert unchecked.check.holds()
    nonces = NonceCache()
    peer = _finish(unchecked, holds=True, nonces=nonces)
    assert (peer.country, peer.kid) == ("DE", DE_KID)
    assert len(nonces) == 1


def test_finish_refuses_a_signature_check_that_did_not_hold_and_remembers_no_nonce() -> None:
    unchecked = prepare_request(header_for(Req()), now=NOW, resolve_key=REGISTRY)
    nonces = NonceCache()
    with pytest.raises(PeerAuthError, match="does not verify"):
        _finish(unchecked, holds=False, nonces=nonces)
    assert len(nonces) == 0


def test_a_forged_signature_fails_its_check() -> None:
    # Signed with FR's seed under DE's kid: the check made with DE's registered key fails.
    unchecked = prepare_request(header_for(Req(seed=FR_SEED)), now=NOW, resolve_key=REGISTRY)
    assert not unchecked.check.holds()


def test_prepare_refuses_what_needs_no_signature_check() -> None:
    with pytest.raises(PeerAuthError):
        prepare_request(None, now=NOW, resolve_key=REGISTRY)
    with pytest.raises(UnknownPeerKeyError):
        prepare_request(
            header_for(Req(seed=bytes(range(2, 34)), kid=b"k" * 16)), now=NOW, resolve_key=REGISTRY
        )
