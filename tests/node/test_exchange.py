"""The inbound pipeline on a real SQLite store: accept, duplicate, pending, reject, release."""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING, Any

import pytest

from permitnet.node import audit
from permitnet.node.errors import StoreError
from permitnet.node.exchange import ON_LOOP_DOCUMENTS, InboundPipeline, make_receipt_verifier
from permitnet.node.keystore import SigningKey
from permitnet.node.registry_holder import RegistryHolder
from permitnet.node.store import DocumentRecord, Store, Tx
from permitnet.protocol.cose import public_key_from_seed
from permitnet.protocol.doc_examples import (
    EXAMPLE_ISSUED_AT,
    example_delivery_receipt,
    example_import_certificate,
    example_message,
    example_seed,
)
from permitnet.protocol.errors import RuleViolation
from permitnet.protocol.registry_records import CountryRecord, KeyRecord
from permitnet.protocol.registry_view import RegistryView, fold
from permitnet.protocol.signed import SignedDocument, document_id

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

NOW = EXAMPLE_ISSUED_AT + 60 * 86_400  # after every example document was issued
COMPROMISED_AT = EXAMPLE_ISSUED_AT - 10
ROGUE_SEED = hashlib.sha256(b"not registered").digest()
REVOKED_SEED = hashlib.sha256(b"revoked DE key").digest()


def key_record(country: str, seed: bytes, **changes: Any) -> KeyRecord:
    public = public_key_from_seed(seed)
    fields: dict[str, Any] = {
        "country": country,
        "kid": SigningKey.from_seed(seed).kid,
        "public_key": public,
        "valid_from": EXAMPLE_ISSUED_AT - 86_400 * 365,
        "valid_until": None,
        "status": "active",
    }
    return KeyRecord(**(fields | changes))


def make_view(*, version: int = 1, expires_at: int = NOW + 86_400) -> RegistryView:
    records: list[Any] = [
        CountryRecord(
            code=c, name=c, authority=f"{c} authority", endpoints=(f"http://{c}.test",), contact=""
        )
        for c in ("DE", "IN", "FR")
    ]
    records += [key_record(c, example_seed(c)) for c in ("DE", "IN", "FR")]
    records.append(
        key_record(
            "DE",
            REVOKED_SEED,
            status="revoked",
            compromised_at=COMPROMISED_AT,
            reason="laptop stolen",
        )
    )
    return RegistryView(
        version=version,
        issued_at=NOW - 60,
        expires_at=expires_at,
        root_version=1,
        log_size=len(records),
        log_root=bytes(32),
        log_compact=(),
        state=fold(records),
    )


class StoringApplier:
    """Stands in for the lifecycle: stores the document, or breaks a rule when told to."""

    def __init__(self) -> None:
        self.violate: set[bytes] = set()
        self.explode: set[bytes] = set()

    @staticmethod
    def record(signed: SignedDocument) -> DocumentRecord:
        document = signed.document
        return DocumentRecord(
            id=signed.id_hex,
            raw=signed.raw,
            doc_type=document.DOCUMENT_TYPE,
            issuer=document.issuer,
            recipient=document.recipient,
            issued_at=document.issued_at,
            direction="inbound",
            state="received",
        )

    def plain_record(self, signed: SignedDocument) -> DocumentRecord | None:
        # Certificates take the bulk path unless a test wants their rule to fail. Like the
        # lifecycle's, it only answers: the pipeline may ask more than once.
        if signed.document.DOCUMENT_TYPE != "import_certificate" or signed.id in (
            self.violate | self.explode
        ):
            return None
        return self.record(signed)

    async def apply_received(
        self, tx: Tx, signed: SignedDocument, *, from_peer: str | None
    ) -> None:
        await tx.insert_document(self.record(signed), actor=f"peer:{from_peer}")
        if signed.id in self.explode:
            raise StoreError("disk I/O error")
        if signed.id in self.violate:
            raise RuleViolation("certificate-balance", "the quantity exceeds the certificate")


def sign(document: Any, seed: bytes | None = None) -> SignedDocument:
    seed = seed if seed is not None else example_seed(document.issuer)
    return SignedDocument.sign(document, signing_key=seed, kid=SigningKey.from_seed(seed).kid)


class World:
    def __init__(self, store: Store, holder: RegistryHolder, applier: StoringApplier) -> None:
        self.store = store
        self.holder = holder
        self.applier = applier
        self.now = NOW
        self.pipeline = InboundPipeline(
            store=store,
            country="IN",
            authority="IN authority",
            signing_key=SigningKey.from_seed(example_seed("IN")),
            registry=holder,
            applier=applier,
            clock=lambda: self.now,
            grace_seconds=3600,
        )
        de_holder = RegistryHolder()
        de_holder.replace(make_view(), NOW)
        self.de_checks_receipt: Callable[[bytes, bytes, str, int], str] = make_receipt_verifier(
            de_holder, "DE"
        )

    async def stored(self, doc_id: bytes) -> bool:
        async with self.store.read() as tx:
            return await tx.has_document(doc_id.hex())

    async def stored_in_order(self) -> list[bytes]:
        """The documents stored, in the order they were stored (their 'stored' events)."""
        async with self.store.read() as tx:
            rows = await tx.fetchall(
                "SELECT subject FROM events WHERE kind = 'document' ORDER BY seq"
            )
        return [bytes.fromhex(r[0]) for r in rows]

    async def quarantine_reasons(self, doc_id: bytes) -> list[str]:
        async with self.store.read() as tx:
            rows = await tx.fetchall(
                "SELECT reason FROM quarantine WHERE document_id = ?", (doc_id.hex(),)
            )
        return [r[0] for r in rows]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    holder = RegistryHolder()
    holder.replace(make_view(), NOW)
    store = await Store.open(tmp_path / "in.sqlite3", clock=lambda: NOW, synchronous="NORMAL")
    yield World(store, holder, StoringApplier())
    await store.close()


async def test_accepted_once_then_duplicate_changes_nothing(world: World) -> None:
    certificate = sign(example_import_certificate())
    (first,) = await world.pipeline.receive([certificate.raw], from_peer="DE")
    assert (first.outcome, first.reason) == ("accepted", "")
    assert world.de_checks_receipt(first.receipt, certificate.id, "IN", NOW) == "accepted"
    async with world.store.read() as tx:
        events_before = await tx.fetchall("SELECT count(*) FROM events")
    (again,) = await world.pipeline.receive([certificate.raw], from_peer="DE")
    assert again.outcome == "duplicate"
    assert world.de_checks_receipt(again.receipt, certificate.id, "IN", NOW) == "accepted"
    async with world.store.read() as tx:
        assert await tx.fetchall("SELECT count(*) FROM events") == events_before
    assert await world.stored_in_order() == [certificate.id]


def _flip_last_byte(raw: bytes) -> bytes:
    return raw[:-1] + bytes([raw[-1] ^ 1])


def _tamper_payload(raw: bytes) -> bytes:
    # Changes one letter of the certificate number inside the signed payload.
    return raw.replace(b"DE-IC-2026-000123", b"DE-IC-2026-000124")


REJECTED: list[tuple[str, Callable[[], bytes], str]] = [
    (
        "forged: signed by a key the registry does not list",
        lambda: sign(example_import_certificate(), ROGUE_SEED).raw,
        "UnknownKeyError",
    ),
    (
        "forged: DE's document signed with FR's key",
        lambda: sign(example_import_certificate(), example_seed("FR")).raw,
        "belongs to FR",
    ),
    (
        "tampered signature",
        lambda: _flip_last_byte(sign(example_import_certificate()).raw),
        "InvalidSignatureError",
    ),
    (
        "tampered payload",
        lambda: _tamper_payload(sign(example_import_certificate()).raw),
        "InvalidSignatureError",
    ),
    (
        "wrong country: addressed to FR",
        lambda: sign(example_import_certificate(recipient="FR", exporting_country="FR")).raw,
        "addressed to FR, this node is IN",
    ),
    (
        "revoked key, signed after the compromise",
        lambda: sign(example_import_certificate(), REVOKED_SEED).raw,
        "KeyRevokedError",
    ),
    ("not a document at all", lambda: b"\xa1\x61a\x01", "Error"),
    (
        "a delivery receipt pushed as a document",
        lambda: (
            sign(
                example_delivery_receipt(bytes(32), issuer="DE", recipient="IN", authority="DE")
            ).raw
        ),
        "not delivered as a document",
    ),
    (
        "issued in the future",
        lambda: sign(example_import_certificate(issued_at=NOW + 3600)).raw,
        "KeyNotValidError",
    ),
]


@pytest.mark.parametrize(("make_raw", "why"), [pytest.param(c[1], c[2], id=c[0]) for c in REJECTED])
async def test_inauthentic_or_misaddressed_documents_are_rejected_and_quarantined(
    world: World, make_raw: Callable[[], bytes], why: str
) -> None:
    raw = make_raw()
    (result,) = await world.pipeline.receive([raw], from_peer="DE")
    assert result.outcome == "rejected"
    assert why in result.reason
    assert not await world.stored(result.document_id)
    assert [why in r for r in await world.quarantine_reasons(result.document_id)] == [True]
    assert world.de_checks_receipt(result.receipt, result.document_id, "IN", NOW) == "rejected"


async def test_revoked_key_documents_signed_before_compromise_stay_valid(world: World) -> None:
    early = example_import_certificate(issued_at=COMPROMISED_AT - 100)
    (result,) = await world.pipeline.receive([sign(early, REVOKED_SEED).raw], from_peer="DE")
    assert result.outcome == "accepted"


async def test_rule_violation_is_rejected_and_leaves_no_partial_rows(world: World) -> None:
    certificate = sign(example_import_certificate())
    world.applier.violate.add(certificate.id)  # takes the savepoint path, whose rule fails
    (result,) = await world.pipeline.receive([certificate.raw], from_peer="DE")
    assert result.outcome == "rejected"
    assert "certificate-balance" in result.reason
    assert not await world.stored(certificate.id)
    async with world.store.read() as tx:
        assert await tx.fetchall(
            "SELECT count(*) FROM audit_log WHERE subject = ?", (certificate.id_hex,)
        ) == [(0,)]


async def test_one_bad_document_does_not_block_the_batch(world: World) -> None:
    good = sign(example_import_certificate())
    other = sign(example_import_certificate(number="DE-IC-2026-000999"))
    bad = _flip_last_byte(sign(example_import_certificate(number="DE-IC-2026-000777")).raw)
    results = await world.pipeline.receive([good.raw, bad, other.raw], from_peer="DE")
    assert [r.outcome for r in results] == ["accepted", "rejected", "accepted"]
    assert await world.stored(good.id)
    assert await world.stored(other.id)


async def test_document_before_its_dependency_waits_then_is_applied(world: World) -> None:
    certificate = sign(example_import_certificate())
    message = sign(example_message(certificate.id, issuer="DE", recipient="IN"))
    (early,) = await world.pipeline.receive([message.raw], from_peer="DE")
    assert early.outcome == "pending"
    assert early.receipt == b""
    assert certificate.id.hex() in early.reason
    assert not await world.stored(message.id)
    (again,) = await world.pipeline.receive([message.raw], from_peer="DE")
    assert again.outcome == "pending"
    (cert_result,) = await world.pipeline.receive([certificate.raw], from_peer="DE")
    assert cert_result.outcome == "accepted"
    assert await world.stored(message.id)
    assert await world.stored_in_order() == [certificate.id, message.id]
    async with world.store.read() as tx:
        assert await tx.pending() == []
    (late,) = await world.pipeline.receive([message.raw], from_peer="DE")
    assert late.outcome == "duplicate"


async def test_stale_registry_holds_documents_then_accepts_when_fresh(world: World) -> None:
    world.now = NOW + 86_400 + 3600  # past expiry (NOW + 1 day) and the 1 h grace
    certificate = sign(example_import_certificate())
    (held,) = await world.pipeline.receive([certificate.raw], from_peer="DE")
    assert held.outcome == "pending"
    assert "registry" in held.reason
    assert not await world.stored(certificate.id)
    assert await world.pipeline.retry_pending() == 0  # still stale: nothing decided
    world.holder.replace(make_view(version=2, expires_at=world.now + 86_400), world.now)
    assert await world.pipeline.retry_pending() == 1
    assert await world.stored(certificate.id)
    async with world.store.read() as tx:
        assert await tx.pending() == []


async def test_within_grace_documents_are_still_accepted(world: World) -> None:
    world.now = NOW + 86_400 + 1800  # expired half an hour ago, grace is one hour
    (result,) = await world.pipeline.receive(
        [sign(example_import_certificate()).raw], from_peer="DE"
    )
    assert result.outcome == "accepted"


RECEIPT_CASES: list[
    tuple[str, Callable[[World, SignedDocument], tuple[bytes, bytes, str]], str]
] = [
    (
        "receipt for another document",
        lambda w, c: (
            w.pipeline.sign_receipt(
                hashlib.sha256(b"x").digest(),
                status="accepted",
                reason="",
                counterpart="DE",
                now=NOW,
            ),
            c.id,
            "IN",
        ),
        "another document",
    ),
    (
        "receipt claimed from another peer",
        lambda w, c: (
            w.pipeline.sign_receipt(c.id, status="accepted", reason="", counterpart="DE", now=NOW),
            c.id,
            "FR",
        ),
        "expected from FR",
    ),
    (
        "receipt addressed to another country",
        lambda w, c: (
            w.pipeline.sign_receipt(c.id, status="accepted", reason="", counterpart="FR", now=NOW),
            c.id,
            "IN",
        ),
        "expected from IN to DE",
    ),
    (
        "not a receipt but a document",
        lambda w, c: (sign(example_message(c.id, issuer="IN", recipient="DE")).raw, c.id, "IN"),
        "expected a delivery receipt",
    ),
    ("garbage", lambda w, c: (b"\x00", c.id, "IN"), "does not verify"),
]


@pytest.mark.parametrize(
    ("make", "why"), [pytest.param(c[1], c[2], id=c[0]) for c in RECEIPT_CASES]
)
def test_receipts_that_prove_nothing_are_refused(
    world: World, make: Callable[[World, SignedDocument], tuple[bytes, bytes, str]], why: str
) -> None:
    from permitnet.node.exchange import ReceiptError

    certificate = sign(example_import_certificate())
    receipt, doc_id, peer = make(world, certificate)
    with pytest.raises(ReceiptError, match=why):
        world.de_checks_receipt(receipt, doc_id, peer, NOW)


def count_transactions(store: Store) -> list[str]:
    """Record each write transaction the store is asked for: general (multi-step) or whole."""
    calls: list[str] = []
    transaction = store.transaction

    def counting_transaction() -> Any:
        calls.append("general")
        return transaction()

    store.transaction = counting_transaction  # type: ignore[method-assign]  # counts, delegates
    for name in ("transact", "transact_here"):  # a whole transaction, either thread
        _record_calls(store, name, lambda _group: calls.append("whole"))
    return calls


def _record_calls(store: Store, name: str, record: Callable[[Any], object]) -> None:
    """Have ``store.<name>(fn, group)`` call ``record(group)``, then do what it did."""
    method = getattr(store, name)

    async def recording(fn: Any, *args: Any, **kwargs: Any) -> Any:
        record(args[0] if args else None)
        return await method(fn, *args, **kwargs)

    setattr(store, name, recording)


async def test_small_plain_groups_written_on_the_loop_large_ones_on_the_database_thread(
    world: World,
) -> None:
    where: list[tuple[str, int]] = []
    for name, place in (("transact", "database thread"), ("transact_here", "loop")):

        def record(group: Any, place: str = place) -> None:
            where.append((place, sum(len(r.raws) for r in group)))

        _record_calls(world.store, name, record)
    small = [sign(example_import_certificate(number=f"DE-IC-S-{i}")).raw for i in range(3)]
    large = [
        sign(example_import_certificate(number=f"DE-IC-L-{i}")).raw
        for i in range(ON_LOOP_DOCUMENTS + 1)
    ]
    for raws in (small, large):
        results = await world.pipeline.receive(raws, from_peer="DE")
        assert [r.outcome for r in results] == ["accepted"] * len(raws)
    assert where == [("loop", 3), ("database thread", ON_LOOP_DOCUMENTS + 1)]
    stored = await world.store.query("SELECT count(*) FROM documents")
    assert stored == [(len(small) + len(large),)]


async def test_concurrent_requests_share_one_transaction(world: World) -> None:
    calls = count_transactions(world.store)
    raws = [sign(example_import_certificate(number=f"DE-IC-C-{i}")).raw for i in range(12)]
    results = await asyncio.gather(*(world.pipeline.receive([raw], from_peer="DE") for raw in raws))
    assert [r.outcome for (r,) in results] == ["accepted"] * 12
    # Certificates only: plain groups, each written whole in one round trip.
    assert 1 <= len(calls) < 12
    assert set(calls) == {"whole"}
    for raw in raws:
        assert await world.stored(document_id(raw))


async def test_a_group_with_a_document_the_lifecycle_applies_takes_the_general_path(
    world: World,
) -> None:
    calls = count_transactions(world.store)
    certificate = sign(example_import_certificate())
    message = sign(example_message(certificate.id, issuer="DE", recipient="IN"))
    others = [sign(example_import_certificate(number=f"DE-IC-M-{i}")) for i in range(4)]
    results = await asyncio.gather(
        world.pipeline.receive([certificate.raw], from_peer="DE"),
        world.pipeline.receive([message.raw], from_peer="DE"),
        *(world.pipeline.receive([o.raw], from_peer="DE") for o in others),
    )
    assert [r.outcome for (r,) in results] == ["accepted"] * 6
    # One group (all six queued before its writer ran): the message made it a general one.
    assert calls == ["general"]
    for doc in [certificate, message, *others]:
        assert await world.stored(doc.id)


async def test_a_plain_document_pending_before_falls_back_and_is_accepted_once(
    world: World,
) -> None:
    certificate = sign(example_import_certificate())
    world.now = NOW + 86_400 + 3600  # stale registry: held in inbound_pending
    (held,) = await world.pipeline.receive([certificate.raw], from_peer="DE")
    assert held.outcome == "pending"
    world.holder.replace(make_view(version=2, expires_at=world.now + 86_400), world.now)
    calls = count_transactions(world.store)
    nonce = (b"k" * 16, b"n" * 16, world.now + 600)
    (again,) = await world.pipeline.receive([certificate.raw], from_peer="DE", nonce=nonce)
    # The whole-transaction path found it pending, rolled back, and the general path decided.
    assert calls == ["whole", "general"]
    assert again.outcome == "accepted"
    assert await world.stored_in_order() == [certificate.id]
    async with world.store.read() as tx:
        assert await tx.pending() == []
        # The rolled-back attempt left no nonce behind: recorded once, by the general path.
        assert await tx.fetchall("SELECT count(*) FROM nonces") == [(1,)]


async def test_a_sender_that_goes_away_does_not_undo_its_group(world: World) -> None:
    raws = [sign(example_import_certificate(number=f"DE-IC-X-{i}")).raw for i in range(6)]
    tasks = [asyncio.ensure_future(world.pipeline.receive([r], from_peer="DE")) for r in raws]
    await asyncio.sleep(0)
    tasks[0].cancel()
    done = await asyncio.gather(*tasks[1:])
    assert [r.outcome for (r,) in done] == ["accepted"] * 5
    # Its document was decided with the group all the same, and stored.
    await world.pipeline.close()
    for raw in raws:
        assert await world.stored(document_id(raw))
    assert await world.store.query("SELECT count(*) FROM documents") == [(6,)]


async def test_after_close_nothing_more_is_received(world: World) -> None:
    await world.pipeline.close()
    certificate = sign(example_import_certificate())
    with pytest.raises(StoreError, match="stopping"):
        await world.pipeline.receive([certificate.raw], from_peer="DE")
    assert not await world.stored(certificate.id)


async def test_bulk_insert_writes_the_same_rows_as_one_by_one(tmp_path: Path) -> None:
    records = [
        StoringApplier.record(sign(example_import_certificate(number=f"DE-IC-R-{i}")))
        for i in range(3)
    ]
    dumps = []
    for name, bulk in (("one", False), ("bulk", True)):
        store = await Store.open(tmp_path / f"{name}.sqlite3", clock=lambda: NOW)
        try:
            async with store.transaction() as tx:
                await tx.execute(
                    "INSERT INTO events (at, kind, subject, actor) VALUES (1,'x','y','z')"
                )
                if bulk:
                    await tx.insert_new_documents(records, actor="peer:DE")
                else:
                    for record in records:
                        await tx.insert_document(record, actor="peer:DE")
                new_events = list(tx.new_events)
            async with store.read() as tx:
                dumps.append(
                    (
                        await tx.fetchall("SELECT * FROM documents ORDER BY id"),
                        await tx.fetchall("SELECT * FROM document_items ORDER BY document_id"),
                        await tx.fetchall("SELECT * FROM events ORDER BY seq"),
                        await tx.fetchall("SELECT * FROM audit_log ORDER BY seq"),
                        new_events,
                    )
                )
            await audit.verify_chain(store)
        finally:
            await store.close()
    assert dumps[0] == dumps[1]


async def test_bulk_insert_of_more_rows_than_one_statement_takes(tmp_path: Path) -> None:
    records = [
        DocumentRecord(
            id=hashlib.sha256(b"%d" % i).hexdigest(),
            raw=b"%d" % i,
            doc_type="import_certificate",
            issuer="DE",
            recipient="IN",
            issued_at=NOW,
            direction="inbound",
            state="active",
        )
        for i in range(2100)
    ]
    store = await Store.open(tmp_path / "big.sqlite3", clock=lambda: NOW, synchronous="NORMAL")
    try:
        async with store.transaction() as tx:
            await tx.insert_new_documents(records, actor="peer:DE")
            seqs = list(tx.new_events)
        assert seqs == list(range(1, 2101))
        async with store.read() as tx:
            assert await tx.fetchall("SELECT count(*) FROM documents") == [(2100,)]
        assert await audit.verify_chain(store) == 2100
    finally:
        await store.close()


async def test_a_failing_transaction_stores_nothing_of_the_batch_and_says_so(world: World) -> None:
    good = sign(example_import_certificate(number="DE-IC-GOOD"))
    bad = sign(example_import_certificate(number="DE-IC-BAD"))
    world.applier.explode.add(bad.id)
    with pytest.raises(StoreError, match="disk I/O error"):
        await world.pipeline.receive([good.raw, bad.raw], from_peer="DE")
    assert not await world.stored(good.id)
    assert not await world.stored(bad.id)
    world.applier.explode.clear()
    results = await world.pipeline.receive([good.raw, bad.raw], from_peer="DE")
    assert [r.outcome for r in results] == ["accepted", "accepted"]


async def test_prepared_documents_need_one_answer_per_check(world: World) -> None:
    prepared = world.pipeline.prepare([sign(example_import_certificate()).raw, b"garbage"])
    assert len(prepared.checks) == 1  # the garbage is refused before any check
    with pytest.raises(ValueError, match="0 answers for 1 signature checks"):
        prepared.finish([])
    with pytest.raises(ValueError, match="2 answers for 1"):
        prepared.finish([True, True])
    signed, refused = prepared.finish([True])
    assert isinstance(signed, SignedDocument)
    assert isinstance(refused, str)
    # An answer that the check did not hold is the document's refusal, not an exception.
    (refused_too, _) = prepared.finish([False])
    assert refused_too == "InvalidSignatureError: the signature does not verify with this key"
