"""Inputs that are not authentic, or not for this node, are refused over real HTTP.

DE and FR run against the real registry; the test plays a DE sender (or an attacker) talking to
FR's peer endpoint directly. Each document case must come back ``rejected`` with its reason,
be kept in FR's quarantine, and never be stored as a document; each request case must be
refused before anything is read.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import pytest

from permitnet.node import drafting
from permitnet.node.keystore import SigningKey, generate_seed
from permitnet.node.peer_auth import sign_request
from permitnet.node.peer_wire import PATH_DOCUMENTS, decode_results, encode_byte_strings
from permitnet.protocol.signed import SignedDocument, document_id
from tests.e2e.conftest import ic_body

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.e2e.conftest import Network, RunningNode


@dataclass
class Attack:
    network: Network
    de: RunningNode
    fr: RunningNode
    revoked: SigningKey

    def certificate(self, *, key: SigningKey | None = None, **changes: object) -> bytes:
        body = ic_body(exporting_country="FR") | changes
        document = drafting.build_import_certificate(
            body, issuer="DE", authority="Authority DE", issued_at=int(time.time()) - 5
        )
        signer = key or self.network.keys["DE"]
        return SignedDocument.sign(document, signing_key=signer.seed, kid=signer.kid).raw

    async def post(
        self, raws: list[bytes], *, key: SigningKey | None = None, header: str | None = None
    ) -> tuple[int, bytes, str]:
        body = encode_byte_strings(raws)
        signer = key or self.network.keys["DE"]
        header = header or sign_request(
            method="POST",
            target=PATH_DOCUMENTS,
            body=body,
            sender="DE",
            audience="FR",
            signing_key=signer.seed,
            kid=signer.kid,
            now=int(time.time()),
        )
        headers = {"Authorization": header, "Content-Type": "application/cbor"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.fr.url + PATH_DOCUMENTS, data=body, headers=headers) as response,
        ):
            return response.status, await response.read(), header


@pytest.fixture
async def attack(network: Network) -> Attack:
    de, fr = await network.start("DE", "FR")
    # A second DE key, enrolled and then revoked as compromised an hour ago.
    revoked = SigningKey.from_seed(generate_seed())
    await network.registry.enroll_key("DE", revoked)
    await network.registry.revoke(
        revoked, compromised_at=int(time.time()) - 3600, reason="laptop stolen"
    )
    await network.registry.publish()
    await network.refresh_all()
    return Attack(network=network, de=de, fr=fr, revoked=revoked)


def _tampered(attack: Attack) -> bytes:
    raw = attack.certificate(number="IC-TAMPER")
    return raw.replace(b"IC-TAMPER", b"IC-TAMPEX")


DOCUMENTS: list[tuple[str, Callable[[Attack], bytes], str]] = [
    (
        "forged: signed with a key the registry does not list",
        lambda a: a.certificate(key=SigningKey.from_seed(generate_seed())),
        "does not list",
    ),
    ("tampered: payload changed after signing", _tampered, "InvalidSignatureError"),
    (
        "wrong country: DE's genuine certificate addressed to IN",
        lambda a: a.certificate(exporting_country="IN"),
        "addressed to IN, this node is FR",
    ),
    (
        "revoked key: signed after the compromise time",
        lambda a: a.certificate(key=a.revoked),
        "KeyRevokedError",
    ),
    (
        "genuine but against the Convention rules: estimate year outside its validity",
        lambda a: a.certificate(estimate_year=2000),
        "estimate-year",
    ),
]


@pytest.mark.parametrize(("make", "why"), [pytest.param(c[1], c[2], id=c[0]) for c in DOCUMENTS])
async def test_inauthentic_documents_are_rejected_and_quarantined(
    attack: Attack, make: Callable[[Attack], bytes], why: str
) -> None:
    raw = make(attack)
    status, answer, _ = await attack.post([raw])
    assert status == 200, answer
    (result,) = decode_results(answer, expected=[document_id(raw)], max_size=1 << 20)
    assert result.outcome == "rejected"
    assert why in result.reason
    doc_id = hashlib.sha256(raw).hexdigest()
    assert not await attack.fr.holds(doc_id)
    assert (
        await attack.fr.count("SELECT count(*) FROM quarantine WHERE document_id = ?", (doc_id,))
        == 1
    )
    assert await attack.fr.count("SELECT count(*) FROM documents") == 0


async def test_replayed_request_is_refused(attack: Attack) -> None:
    raw = attack.certificate(number="IC-REPLAY")
    status, _, header = await attack.post([raw])
    assert status == 200
    again, answer, _ = await attack.post([raw], header=header)
    assert again == 401
    assert b"replay" in answer
    assert await attack.fr.count("SELECT count(*) FROM documents") == 1


async def test_request_signed_with_a_revoked_key_is_refused(attack: Attack) -> None:
    status, answer, _ = await attack.post([attack.certificate()], key=attack.revoked)
    assert status == 403
    assert b"revoked" in answer
    assert await attack.fr.count("SELECT count(*) FROM quarantine") == 0


async def test_request_from_a_key_the_registry_does_not_list_is_refused(attack: Attack) -> None:
    stranger = SigningKey.from_seed(generate_seed())
    status, answer, _ = await attack.post([attack.certificate()], key=stranger)
    assert status == 403
    assert b"unknown_peer_key" in answer


@pytest.mark.parametrize("path", [PATH_DOCUMENTS, "/peer/v1/outbox?for=DE"])
async def test_replay_after_the_receiver_restarts_is_refused(attack: Attack, path: str) -> None:
    network = attack.network
    method = "GET" if "outbox" in path else "POST"
    body = b"" if method == "GET" else encode_byte_strings([attack.certificate(number="IC-R")])
    key = network.keys["DE"]
    header = sign_request(
        method=method,
        target=path,
        body=body,
        sender="DE",
        audience="FR",
        signing_key=key.seed,
        kid=key.kid,
        now=int(time.time()),
    )
    headers = {"Authorization": header, "Content-Type": "application/cbor"}

    async def send(url: str) -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, url + path, data=body or None, headers=headers) as response,
        ):
            return response.status

    assert await send(attack.fr.url) == 200
    await network.stop_node("FR")
    fr = await network.start_node("FR")
    assert await send(fr.url) == 401
