"""Two real node applications on loopback sockets: push, pull, and the peer endpoints' refusals."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from permitnet.node import drafting
from permitnet.node.app import STORE_KEY, create_app
from permitnet.node.config import NodeConfig
from permitnet.node.keystore import SigningKey
from permitnet.node.peer_auth import sign_request
from permitnet.node.peer_http import EXCHANGE_KEY, PULL_FROM_KEY
from permitnet.node.peer_wire import (
    PATH_DOCUMENTS,
    PATH_OUTBOX,
    decode_results,
    encode_byte_strings,
)
from permitnet.node.signature_worker import SignatureWorker
from permitnet.protocol.cbor import decode_cbor
from permitnet.protocol.cose import public_key_from_seed
from permitnet.protocol.doc_examples import (
    EXAMPLE_ISSUED_AT,
    example_import_certificate,
    example_seed,
)
from permitnet.protocol.registry_records import CountryRecord, KeyRecord
from permitnet.protocol.registry_view import RegistryView, fold
from permitnet.protocol.signed import SignedDocument, document_id

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

NOW = EXAMPLE_ISSUED_AT + 60 * 86_400
ROGUE_SEED = bytes(range(5, 37))


async def wait_until(condition: Callable[[], Awaitable[bool]], *, within: float = 10.0) -> None:
    """Wait for ``condition`` to hold, checking often, failing after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.02)


def _key(country: str) -> KeyRecord:
    public = public_key_from_seed(example_seed(country))
    return KeyRecord(
        country=country,
        kid=SigningKey.from_seed(example_seed(country)).kid,
        public_key=public,
        valid_from=EXAMPLE_ISSUED_AT - 86_400 * 365,
        valid_until=None,
        status="active",
    )


def make_view(endpoints: dict[str, tuple[str, ...]]) -> RegistryView:
    records: list[Any] = [
        CountryRecord(code=c, name=c, authority=f"{c} authority", endpoints=e, contact="")
        for c, e in endpoints.items()
    ]
    records += [_key(c) for c in endpoints]
    return RegistryView(
        version=1,
        issued_at=NOW - 60,
        expires_at=NOW + 86_400,
        root_version=1,
        log_size=len(records),
        log_root=bytes(32),
        log_compact=(),
        state=fold(records),
    )


@dataclass
class Node:
    country: str
    app: web.Application
    runner: web.AppRunner
    url: str

    @property
    def store(self) -> Any:
        return self.app[STORE_KEY]


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def start_nodes(
    tmp_path: Path, *, reachable: set[str], pull: dict[str, tuple[str, ...]] | None = None
) -> list[Node]:
    countries = ("DE", "IN")
    sockets = {c: _bound_socket() for c in countries}
    urls = {c: f"http://127.0.0.1:{s.getsockname()[1]}" for c, s in sockets.items()}
    view = make_view({c: (urls[c],) if c in reachable else () for c in countries})
    nodes = []
    for country in countries:
        data_dir = tmp_path / country
        data_dir.mkdir()
        config = NodeConfig(
            data_dir=data_dir,
            country=country,
            authority_name=f"{country} authority",
            registry_urls=("http://127.0.0.1:9",),
            registry_root=data_dir / "root.cbor",
            public_url=urls[country],
            max_request_bytes=64 * 1024,
        )
        app = create_app(
            config,
            signing_key=SigningKey.from_seed(example_seed(country)),
            registry_view=view,
            clock=lambda: NOW,
        )
        app[PULL_FROM_KEY] = (pull or {}).get(country, ())
        runner = web.AppRunner(app)
        await runner.setup()
        await web.SockSite(runner, sockets[country]).start()
        nodes.append(Node(country=country, app=app, runner=runner, url=urls[country]))
    return nodes


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[list[Node]]:
    started = await start_nodes(tmp_path, reachable={"DE", "IN"})
    yield started
    for node in started:
        await node.runner.cleanup()


async def issue_certificate(de: Node, **changes: Any) -> SignedDocument:
    """Store a signed DE -> IN certificate with its outbox row, as the lifecycle does."""
    document = example_import_certificate(**changes)
    signed = SignedDocument.sign(
        document, signing_key=example_seed("DE"), kid=SigningKey.from_seed(example_seed("DE")).kid
    )
    record = drafting.record_for(signed.raw, document, direction="outbound", state="active")
    async with de.store.transaction() as tx:
        await tx.insert_document(record, actor="test", outbox_peers=["IN"])
    return signed


async def delivered(node: Node, doc: SignedDocument) -> bool:
    async with node.store.read() as tx:
        rows = await tx.outbox_for_document(doc.id_hex)
    return bool(rows) and all(r.delivered_at is not None for r in rows)


async def held(node: Node, doc: SignedDocument) -> bool:
    async with node.store.read() as tx:
        return bool(await tx.has_document(doc.id_hex))


async def test_push_delivers_and_keeps_the_signed_receipt(nodes: list[Node]) -> None:
    de, india = nodes
    certificate = await issue_certificate(de)
    await wait_until(lambda: delivered(de, certificate))
    assert await held(india, certificate)
    async with de.store.read() as tx:
        (row,) = await tx.outbox_for_document(certificate.id_hex)
    assert row.receipt is not None
    verify = de.app[EXCHANGE_KEY].delivery._verify_receipt
    assert verify(row.receipt, certificate.id, "IN", NOW) == "accepted"


async def test_peer_down_then_pull_instead(tmp_path: Path) -> None:
    # IN accepts no inbound connections: the registry lists no endpoint for it, so DE cannot
    # push; IN pulls from DE and acknowledges with receipts.
    de, india = await start_nodes(tmp_path, reachable={"DE"}, pull={"IN": ("DE",)})
    try:
        first = await issue_certificate(de)
        second = await issue_certificate(de, number="DE-IC-2026-000124")
        puller = india.app[EXCHANGE_KEY].puller
        assert puller is not None
        puller.wake()
        await wait_until(lambda: delivered(de, first))
        await wait_until(lambda: delivered(de, second))
        assert await held(india, first)
        assert await held(india, second)
        # Nothing left to pull: a second round fetches nothing.
        assert await puller.pull_from("DE") == 0
    finally:
        await india.runner.cleanup()
        await de.runner.cleanup()


async def test_a_malformed_outbox_answer_passes_to_the_next_endpoint(tmp_path: Path) -> None:
    # The first endpoint the registry lists answers 200 with what is not an outbox map: the
    # puller goes on to the next one, as for an endpoint that is down.
    de, india = await start_nodes(tmp_path, reachable={"DE"}, pull={"IN": ("DE",)})

    async def garbage(_request: web.Request) -> web.Response:
        return web.Response(body=b"\xa1\x61x\x01", content_type="application/cbor")

    bogus = web.Application()
    bogus.router.add_get("/peer/v1/outbox", garbage)
    runner = web.AppRunner(bogus)
    await runner.setup()
    sock = _bound_socket()
    await web.SockSite(runner, sock).start()
    try:
        certificate = await issue_certificate(de)
        puller = india.app[EXCHANGE_KEY].puller
        assert puller is not None
        bogus_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        puller._endpoints = lambda country: [bogus_url, de.url]  # the registry lists two
        assert await puller.pull_from("DE") == 1
        assert await held(india, certificate)
    finally:
        await runner.cleanup()
        await india.runner.cleanup()
        await de.runner.cleanup()


@dataclass(frozen=True, kw_only=True)
class Call:
    method: str = "POST"
    path: str = PATH_DOCUMENTS
    signed_path: str | None = None
    body: bytes = b""
    content_type: str = "application/cbor"
    sender: str = "DE"
    audience: str = "IN"
    seed: bytes = example_seed("DE")
    #: The kid the request claims (default: the seed's own).
    kid: bytes | None = None
    signed_at: int = NOW
    sign: bool = True
    replay: bool = False


DE_KID = SigningKey.from_seed(example_seed("DE")).kid


def _body() -> bytes:
    return encode_byte_strings([b"not a document"])


REFUSED: list[tuple[str, Call, int, str]] = [
    ("unsigned", Call(body=_body(), sign=False), 401, "peer_auth_failed"),
    ("unknown key", Call(body=_body(), seed=ROGUE_SEED), 403, "unknown_peer_key"),
    ("addressed to another node", Call(body=_body(), audience="FR"), 401, "peer_auth_failed"),
    ("stale timestamp", Call(body=_body(), signed_at=NOW - 3600), 401, "replay"),
    ("replayed request", Call(body=_body(), replay=True), 401, "replay"),
    (
        "signed for another path",
        Call(body=_body(), signed_path="/peer/v1/receipts"),
        401,
        "peer_auth_failed",
    ),
    ("body over the limit", Call(body=b"\x00" * (65 * 1024)), 413, "bad_peer_body"),
    ("not cbor content type", Call(body=_body(), content_type="text/plain"), 415, "bad_peer_body"),
    ("malformed batch", Call(body=b"\xa0"), 400, "bad_peer_body"),
    ("malformed batch, unsigned", Call(body=b"\xa0", sign=False), 401, "peer_auth_failed"),
    (
        "forged signature under DE's key id",
        Call(body=_body(), seed=ROGUE_SEED, kid=DE_KID),
        401,
        "peer_auth_failed",
    ),
    (
        "malformed batch, forged signature",
        Call(body=b"\xa0", seed=ROGUE_SEED, kid=DE_KID),
        401,
        "peer_auth_failed",
    ),
    (
        "pulling another country's documents",
        Call(method="GET", path=f"{PATH_OUTBOX}?for=FR"),
        403,
        "forbidden",
    ),
    (
        "pull limit out of range",
        Call(method="GET", path=f"{PATH_OUTBOX}?for=DE&limit=0"),
        400,
        "bad_peer_body",
    ),
]


@pytest.mark.parametrize(
    ("call", "status", "code"), [pytest.param(*c[1:], id=c[0]) for c in REFUSED]
)
async def test_peer_endpoints_refuse_bad_requests(
    nodes: list[Node], call: Call, status: int, code: str
) -> None:
    _, india = nodes
    headers = {"Content-Type": call.content_type}
    if call.sign:
        headers["Authorization"] = sign_request(
            method=call.method,
            target=call.signed_path or call.path,
            body=call.body,
            sender=call.sender,
            audience=call.audience,
            signing_key=call.seed,
            kid=call.kid or SigningKey.from_seed(call.seed).kid,
            now=call.signed_at,
        )
    async with aiohttp.ClientSession() as session:
        for attempt in range(2 if call.replay else 1):
            async with session.request(
                call.method, india.url + call.path, data=call.body or None, headers=headers
            ) as response:
                if call.replay and attempt == 0:
                    assert response.status == 200
                    continue
                assert response.status == status
                error = (await response.json())["error"]
    assert error["code"] == code
    assert error["message"]


async def test_push_answers_each_document_with_a_result(nodes: list[Node]) -> None:
    de, india = nodes
    certificate = SignedDocument.sign(
        example_import_certificate(),
        signing_key=example_seed("DE"),
        kid=SigningKey.from_seed(example_seed("DE")).kid,
    )
    body = encode_byte_strings([certificate.raw, b"garbage"])
    headers = {
        "Content-Type": "application/cbor",
        "Authorization": sign_request(
            method="POST",
            target=PATH_DOCUMENTS,
            body=body,
            sender="DE",
            audience="IN",
            signing_key=example_seed("DE"),
            kid=SigningKey.from_seed(example_seed("DE")).kid,
            now=NOW,
        ),
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(india.url + PATH_DOCUMENTS, data=body, headers=headers) as r,
    ):
        assert r.status == 200
        answer = await r.read()
    results = decode_results(
        answer, expected=[certificate.id, document_id(b"garbage")], max_size=1 << 20
    )
    assert [r.outcome for r in results] == ["accepted", "rejected"]
    assert decode_cbor(results[0].receipt, max_size=4096, max_depth=4) is not None
    assert await held(india, certificate)
    del de


async def test_pushed_signatures_are_checked_in_the_signature_worker(nodes: list[Node]) -> None:
    de, india = nodes
    signatures = india.app[EXCHANGE_KEY].signatures
    assert isinstance(signatures, SignatureWorker)  # the default: [exchange] signature_worker
    numbers = iter(range(1, 1000))

    async def push_one() -> bool:
        certificate = await issue_certificate(de, number=f"DE-IC-2026-{next(numbers):06d}")
        await wait_until(lambda: delivered(de, certificate))
        return signatures.checked_in_child > 0

    # The first checks start the child and run in the event loop meanwhile.
    await wait_until(push_one, within=30)
    # The request's signature and the document's, in the child.
    assert signatures.checked_in_child >= 2
