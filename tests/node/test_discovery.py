"""LAN discovery (zeroconf on loopback) and the signed challenge that must pass before use."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from permitnet.node.discovery import (
    Advertisement,
    Advertiser,
    DiscoveredNode,
    DiscoveryError,
    announce_addresses,
    answer_challenge,
    browse,
    make_challenge,
    prove,
    setup_challenge,
    verify_answer,
)
from permitnet.node.discovery_challenge import ANSWER_TYPE, Challenge, ChallengeResponder
from permitnet.node.peer_auth import PeerKey, UnknownPeerKeyError
from permitnet.protocol.cbor import encode_cbor
from permitnet.protocol.cose import key_id, public_key_from_seed, sign1

if TYPE_CHECKING:
    from collections.abc import Callable

NOW = 1_790_000_000
DE_SEED = bytes(range(32))
DE_KID = key_id(public_key_from_seed(DE_SEED))
FR_SEED = bytes(range(1, 33))
FR_KID = key_id(public_key_from_seed(FR_SEED))
ROGUE_SEED = bytes(range(2, 34))
ROGUE_KID = key_id(public_key_from_seed(ROGUE_SEED))


def registry_view(kid: bytes, _at: int) -> PeerKey:
    """The registry lists DE's and FR's keys, nothing else."""
    keys = {
        DE_KID: PeerKey(country="DE", public_key=public_key_from_seed(DE_SEED)),
        FR_KID: PeerKey(country="FR", public_key=public_key_from_seed(FR_SEED)),
    }
    if kid not in keys:
        raise UnknownPeerKeyError(f"key {kid.hex()} is not listed")
    return keys[kid]


DE_AD = Advertisement(country="DE", kid=DE_KID)


def test_advertisement_round_trip() -> None:
    ad = Advertisement(country="IN", kid=DE_KID, scheme="https", path="/node")
    props: dict[bytes, bytes | None] = {
        k.encode(): v.encode() for k, v in ad.to_properties().items()
    }
    assert Advertisement.from_properties(props) == ad


BAD_TXT = [
    ("no version", {b"country": b"DE", b"kid": DE_KID.hex().encode()}, "version"),
    ("future version", {b"v": b"2", b"country": b"DE", b"kid": DE_KID.hex().encode()}, "2"),
    ("bad country", {b"v": b"1", b"country": b"de", b"kid": DE_KID.hex().encode()}, "alpha-2"),
    ("kid not hex", {b"v": b"1", b"country": b"DE", b"kid": b"zz"}, "hexadecimal"),
    ("kid short", {b"v": b"1", b"country": b"DE", b"kid": b"abcd"}, "16-byte"),
    (
        "scheme ftp",
        {b"v": b"1", b"country": b"DE", b"kid": DE_KID.hex().encode(), b"scheme": b"ftp"},
        "http or https",
    ),
    (
        "relative path",
        {b"v": b"1", b"country": b"DE", b"kid": DE_KID.hex().encode(), b"path": b"x"},
        "absolute path",
    ),
    ("not ascii", {b"v": b"1", b"country": "DÉ".encode()}, "ASCII"),
]


@pytest.mark.parametrize(("name", "props", "message"), BAD_TXT, ids=[case[0] for case in BAD_TXT])
def test_bad_txt_records(name: str, props: dict[bytes, bytes | None], message: str) -> None:
    with pytest.raises(DiscoveryError, match=message):
        Advertisement.from_properties(props)


def _answer(seed: bytes, kid: bytes, **changes: object) -> Callable[[Challenge], bytes]:
    def make(challenge: Challenge) -> bytes:
        payload: dict[str, object] = {
            "v": 1,
            "type": ANSWER_TYPE,
            "nonce": challenge.nonce,
            "country": "DE",
            "challenger": challenge.challenger,
            "ts": NOW,
        }
        payload.update(changes)
        payload = {k: v for k, v in payload.items() if v is not None}
        return sign1(encode_cbor(payload), seed, kid)

    return make


BAD_ANSWERS: list[tuple[str, Callable[[Challenge], bytes], Advertisement, str]] = [
    ("rogue key not in registry", _answer(ROGUE_SEED, ROGUE_KID), DE_AD, "advertised"),
    (
        "rogue key advertised",
        _answer(ROGUE_SEED, ROGUE_KID),
        Advertisement(country="DE", kid=ROGUE_KID),
        "not listed by the registry",
    ),
    (
        "FR key posing as DE",
        _answer(FR_SEED, FR_KID),
        Advertisement(country="DE", kid=FR_KID),
        "belongs to FR",
    ),
    ("rogue key claiming DE's kid", _answer(ROGUE_SEED, DE_KID), DE_AD, "does not verify"),
    ("another nonce", _answer(DE_SEED, DE_KID, nonce=b"\x00" * 32), DE_AD, "another nonce"),
    ("another challenger", _answer(DE_SEED, DE_KID, challenger="IN"), DE_AD, "challenger"),
    ("speaks for FR", _answer(DE_SEED, DE_KID, country="FR"), DE_AD, "speaks for"),
    ("stale", _answer(DE_SEED, DE_KID, ts=NOW - 301), DE_AD, "more than 300 s"),
    ("from the future", _answer(DE_SEED, DE_KID, ts=NOW + 301), DE_AD, "more than 300 s"),
    ("wrong type", _answer(DE_SEED, DE_KID, type="document"), DE_AD, "not a challenge answer"),
    ("version 2", _answer(DE_SEED, DE_KID, v=2), DE_AD, "version 2"),
    ("missing ts", _answer(DE_SEED, DE_KID, ts=None), DE_AD, "exactly"),
    ("not COSE", lambda _c: b"\xa0", DE_AD, "not a valid COSE_Sign1"),
    ("oversized", lambda _c: b"\x00" * 2000, DE_AD, "at most"),
    ("unprotected kid", lambda _c: _unprotected_kid(), DE_AD, "protected kid"),
]


def _unprotected_kid() -> bytes:
    from permitnet.protocol.cbor import Tag

    good = _answer(DE_SEED, DE_KID)(make_challenge(challenger="FR", audience="DE"))
    protected = encode_cbor({1: -8})
    return encode_cbor(Tag(18, [protected, {4: DE_KID}, b"\xa0", good[-64:]]))


@pytest.mark.parametrize(
    ("name", "answer", "ad", "message"), BAD_ANSWERS, ids=[case[0] for case in BAD_ANSWERS]
)
def test_bad_answers_are_refused(
    name: str, answer: Callable[[Challenge], bytes], ad: Advertisement, message: str
) -> None:
    challenge = make_challenge(challenger="FR", audience="DE")
    with pytest.raises(DiscoveryError, match=message):
        verify_answer(
            answer(challenge),
            challenge=challenge,
            advertisement=ad,
            resolve_key=registry_view,
            now=NOW,
        )


def test_good_answer_verifies() -> None:
    challenge = make_challenge(challenger="FR", audience="DE")
    raw = answer_challenge(
        challenge.to_payload(), country="DE", signing_key=DE_SEED, kid=DE_KID, now=NOW
    )
    key = verify_answer(
        raw, challenge=challenge, advertisement=DE_AD, resolve_key=registry_view, now=NOW + 5
    )
    assert key.country == "DE"


BAD_CHALLENGES = [
    ("empty", b"", "not strict CBOR"),
    ("too big", b"\x00" * 300, "at most"),
    ("short nonce", encode_cbor({"v": 1, "nonce": b"x", "from": "FR", "to": "DE"}), "32 bytes"),
    (
        "for FR",
        Challenge(nonce=b"n" * 32, challenger="IN", audience="FR").to_payload(),
        "is for FR",
    ),
    ("bad from", encode_cbor({"v": 1, "nonce": b"x" * 32, "from": 1, "to": "DE"}), "alpha-2"),
]


@pytest.mark.parametrize(
    ("name", "body", "message"), BAD_CHALLENGES, ids=[case[0] for case in BAD_CHALLENGES]
)
def test_bad_challenges_are_refused(name: str, body: bytes, message: str) -> None:
    with pytest.raises(DiscoveryError, match=message):
        answer_challenge(body, country="DE", signing_key=DE_SEED, kid=DE_KID, now=NOW)


async def _challenge_server(seed: bytes, kid: bytes) -> TestServer:
    app = web.Application()
    setup_challenge(
        app,
        ChallengeResponder(
            country="DE", signing_key=lambda: seed, kid=lambda: kid, clock=lambda: NOW
        ),
    )
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server


async def test_discovered_node_proves_itself_over_loopback() -> None:
    """Advertise with zeroconf on loopback, browse, challenge over HTTP, verify."""
    server = await _challenge_server(DE_SEED, DE_KID)
    try:
        assert server.port is not None
        async with Advertiser(
            DE_AD, port=server.port, addresses=["127.0.0.1"], interfaces=["127.0.0.1"]
        ):
            found = await browse(10, interfaces=["127.0.0.1"], stop_after=1)
        mine = [n for n in found if n.port == server.port]
        assert len(mine) == 1, found
        node = mine[0]
        assert node.advertisement == DE_AD
        assert node.urls == (f"http://127.0.0.1:{server.port}",)
        async with aiohttp.ClientSession() as session:
            url, key = await prove(
                session, node, own_country="FR", resolve_key=registry_view, clock=lambda: NOW
            )
        assert url == f"http://127.0.0.1:{server.port}"
        assert key.country == "DE"
    finally:
        await server.close()


async def test_impostor_address_is_not_used() -> None:
    """A node on the LAN advertising DE's key but holding another key fails the challenge."""
    server = await _challenge_server(ROGUE_SEED, DE_KID)
    try:
        node = DiscoveredNode(
            name="impostor", advertisement=DE_AD, addresses=("127.0.0.1",), port=server.port or 0
        )
        async with aiohttp.ClientSession() as session:
            with pytest.raises(DiscoveryError, match=r"did not prove its key.*does not verify"):
                await prove(
                    session, node, own_country="FR", resolve_key=registry_view, clock=lambda: NOW
                )
    finally:
        await server.close()


async def test_unreachable_address_is_reported() -> None:
    server = await _challenge_server(DE_SEED, DE_KID)
    port = server.port or 0
    await server.close()
    node = DiscoveredNode(name="gone", advertisement=DE_AD, addresses=("127.0.0.1",), port=port)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DiscoveryError, match="gone did not prove its key"):
            await prove(
                session,
                node,
                own_country="FR",
                resolve_key=registry_view,
                clock=lambda: NOW,
                per_url_seconds=2,
            )


async def test_challenge_endpoint_refuses_a_bad_body() -> None:
    server = await _challenge_server(DE_SEED, DE_KID)
    try:
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                f"http://127.0.0.1:{server.port}/peer/v1/challenge", data=b"junk"
            )
            assert response.status == 400
            assert "not strict CBOR" in await response.text()
    finally:
        await server.close()


def test_announce_addresses() -> None:
    assert announce_addresses("127.0.0.1") == (["127.0.0.1"], ["127.0.0.1"])
    assert announce_addresses("192.0.2.7") == (["192.0.2.7"], None)
    addresses, interfaces = announce_addresses("0.0.0.0")
    assert interfaces is None
    assert addresses
    assert "127.0.0.1" not in addresses
    for bad in ("::1", "node.example"):
        with pytest.raises(DiscoveryError, match="IPv4 listen address"):
            announce_addresses(bad)
