"""The inbound pipeline: what a node does with each document a peer pushes, or it pulls.

For every document, in this order (``docs/exchange.md`` section 4):

1. already held -> ``duplicate`` (nothing changes; a fresh signed receipt is returned);
2. the registry data is past its grace period -> kept in ``inbound_pending`` (``registry``);
3. the signature, with the key the registry lists for the issuing country, valid at
   ``issued_at``; the schema; that it is addressed to this node's country -> else ``rejected``
   and kept in quarantine;
4. what it refers to is held -> else kept in ``inbound_pending`` (``dependency``), and applied
   as soon as that document is accepted;
5. the lifecycle applies it (Convention rules; storing the exact bytes) -> ``accepted``, or
   ``rejected`` and quarantined when a rule fails.

The Ed25519 checks of a request go to the signature worker together (``node/signature_worker
.py``); the rest of the verification is done here, before joining a transaction.

Group commit: requests that arrive while a transaction is being written wait, and the next
transaction decides all of them together, so concurrent one-document requests share one
commit (one fsync). One task writes the groups, one after the other, while requests arrive.
A group whose documents are all plain (certificates, declarations: stored as received) is
decided and written whole in one transaction (``node/exchange_plain.py``): a small group's
statements run on the event loop's thread and only its COMMIT on the database thread, a large
group's all on the database thread (``Store.transact_here``, ADR 0016). Any other group takes
the general path (``node/exchange_general.py``), where such documents are written together and
every other document is applied inside its own savepoint, so that one failing document never
undoes the others.
Receipts are signed after the commit: a peer never holds a receipt
for something this node could still lose.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from permitnet.node.config import DEFAULT_REGISTRY_GRACE_SECONDS
from permitnet.node.errors import StoreError
from permitnet.node.exchange_checks import (
    LifecycleApplier,
    ReceiptError,
    ReceiptSigner,
    ReceivedApplier,
    make_receipt_verifier,
    verify_received,
)
from permitnet.node.exchange_general import GeneralPathMixin
from permitnet.node.exchange_plain import (
    Decision,
    NotPlainError,
    PlainDocument,
    Request,
    known_on,
    write_plain_on,
)
from permitnet.node.peer_wire import DocumentResult
from permitnet.node.registry_fetch import Freshness, classify
from permitnet.node.signature_worker import IN_THREAD
from permitnet.protocol.documents import refers_to
from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.registry_verify import UncheckedDocument, prepare_document
from permitnet.protocol.signed import SignedDocument, document_id

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from permitnet.node.keystore import SigningKey
    from permitnet.node.registry_holder import RegistryHolder
    from permitnet.node.signature_worker import SignatureChecks
    from permitnet.node.store import Store
    from permitnet.protocol.cose import Ed25519Check
    from permitnet.protocol.registry_view import RegistryView

__all__ = [
    "InboundPipeline",
    "LifecycleApplier",
    "PreparedDocuments",
    "ReceiptError",
    "ReceivedApplier",
    "make_receipt_verifier",
    "verify_received",
]

#: Most documents in a plain group written on the event loop's thread (about 60 us each).
ON_LOOP_DOCUMENTS: Final = 32


@dataclass(frozen=True, slots=True)
class PreparedDocuments:
    """A received batch parsed, each document matched to its key; see ``InboundPipeline.prepare``.

    Each item is a document awaiting its signature check, or why it is refused already.
    """

    raws: Sequence[bytes]
    now: int
    usable: bool
    view: RegistryView | None
    items: list[UncheckedDocument | str]

    @property
    def checks(self) -> list[Ed25519Check]:
        """The Ed25519 checks to run, in order: one per document not refused already."""
        return [item.check for item in self.items if not isinstance(item, str)]

    def finish(self, holds: Sequence[bool]) -> list[SignedDocument | str]:
        """Each document verified, or why not, given what each of :attr:`checks` answered.

        Raises:
            ValueError: not one answer per check.
        """
        if len(holds) != sum(not isinstance(item, str) for item in self.items):
            raise ValueError(f"{len(holds)} answers for {len(self.checks)} signature checks")
        answers = iter(holds)
        checks: list[SignedDocument | str] = []
        for item in self.items:
            if isinstance(item, str):
                checks.append(item)
                continue
            assert self.view is not None  # only prepared when a view was usable
            try:
                checks.append(item.finish(holds=next(answers), view=self.view, now=self.now))
            except ProtocolError as e:
                checks.append(f"{type(e).__name__}: {e}")
        return checks


class InboundPipeline(GeneralPathMixin):
    """Decides, stores and acknowledges received documents (push and pull share it)."""

    def __init__(
        self,
        *,
        store: Store,
        country: str,
        authority: str,
        signing_key: SigningKey,
        registry: RegistryHolder,
        applier: ReceivedApplier,
        clock: Callable[[], int],
        grace_seconds: int = DEFAULT_REGISTRY_GRACE_SECONDS,
        signatures: SignatureChecks = IN_THREAD,
    ) -> None:
        self._store = store
        self._signatures = signatures
        self._country = country
        self._receipts = ReceiptSigner(country=country, authority=authority, key=signing_key)
        self._registry = registry
        self._applier = applier
        self._clock = clock
        self._grace = grace_seconds
        # Requests waiting for the next group, and the task writing the groups.
        self._waiting: list[Request] = []
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

    def registry_usable(self, now: int) -> bool:
        """Whether the registry data may be used to accept documents (within grace)."""
        view = self._registry.view
        return (
            view is not None
            and classify(view.expires_at, self._grace, now) is not Freshness.EXPIRED
        )

    async def receive(
        self,
        raws: Sequence[bytes],
        *,
        from_peer: str | None,
        nonce: tuple[bytes, bytes, int] | None = None,
    ) -> list[DocumentResult]:
        """Decide every document of a batch, durably; return the signed results in order.

        Args:
            raws: the exact signed bytes of each document, in the order received.
            from_peer: the authenticated sending country (None for local imports).
            nonce: the request's (kid, nonce, expires_at), persisted in the same transaction
                so that a replay is refused even after a restart.

        Raises:
            StoreError: the database refused the transaction; nothing of it was stored.
        """
        prepared = self.prepare(raws)
        holds = await self._signatures.holds(prepared.checks)
        return await self.receive_prepared(prepared, holds, from_peer=from_peer, nonce=nonce)

    def prepare(self, raws: Sequence[bytes]) -> PreparedDocuments:
        """Parse a batch and find each document's registered key: the first step of receiving.

        :meth:`receive` is this, the Ed25519 checks of :attr:`PreparedDocuments.checks` (in
        the signature worker, with the request's own check when the caller has one), then
        :meth:`receive_prepared`.
        """
        now = self._clock()
        usable = self.registry_usable(now)
        view = self._registry.view
        items: list[UncheckedDocument | str] = []
        for raw in raws:
            if not usable or view is None:
                items.append("registry data is past its grace period")
                continue
            try:
                items.append(prepare_document(raw, view))
            except ProtocolError as e:
                items.append(f"{type(e).__name__}: {e}")
        return PreparedDocuments(raws=raws, now=now, usable=usable, view=view, items=items)

    async def receive_prepared(
        self,
        prepared: PreparedDocuments,
        holds: Sequence[bool],
        *,
        from_peer: str | None,
        nonce: tuple[bytes, bytes, int] | None = None,
    ) -> list[DocumentResult]:
        """:meth:`receive`, given what the Ed25519 checks of ``prepared.checks`` answered."""
        request = Request(
            raws=prepared.raws,
            checks=prepared.finish(holds),
            from_peer=from_peer,
            nonce=nonce,
            usable=prepared.usable,
            answer=asyncio.get_running_loop().create_future(),
        )
        if self._closing:
            raise StoreError("the node is stopping; send again")
        request.plain = self._plain(request)
        self._waiting.append(request)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(
                self._write_waiting(), name="permitnet-receive-groups"
            )
        # Shielded: a request whose sender went away must not cancel its group's answer.
        decisions = await asyncio.shield(request.answer)
        return [self._result(d, prepared.now) for d in decisions]

    def _plain(self, request: Request) -> list[PlainDocument] | None:
        """The request's documents as plain ones (verified certificates, declarations).

        None when any is not: a refusal, a rule broken, a document the lifecycle applies,
        stale registry data; the general path decides those.
        """
        if not request.usable:
            return None
        plain = []
        for raw, check in zip(request.raws, request.checks, strict=True):
            if isinstance(check, str) or self._refusal(check) is not None:
                return None
            try:
                record = self._applier.plain_record(check)
            except ProtocolError:
                return None
            if record is None:
                return None
            plain.append(PlainDocument(raw, check.id, record))
        return plain

    async def close(self) -> None:
        """Let the transactions under way finish; refuse what arrives from now on."""
        self._closing = True
        while self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer})

    async def _write_waiting(self) -> None:
        # Every request waiting when a group starts is in it; the next group forms from
        # those that arrive meanwhile. One task writes them all, so no request waits for a
        # turn behind requests already answered.
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                answers = await self._write_group(group)
            except Exception as e:  # noqa: BLE001 - handed to every request of the group
                # Each request re-raises it in its own handler (a 5xx to its sender, who
                # retries); nothing of the group was committed.
                for request in group:
                    request.answer.set_exception(e)
                continue
            except BaseException:
                # Cancelled (the event loop is stopping): the transaction may still commit, so
                # tell the senders to send again (receiving is idempotent by document id).
                for request in group + self._waiting:
                    request.answer.set_exception(
                        StoreError("the node stopped while storing these documents; send again")
                    )
                self._waiting = []
                raise
            for request, decisions in zip(group, answers, strict=True):
                request.answer.set_result(decisions)

    async def _write_group(self, group: list[Request]) -> list[list[Decision]]:
        if all(request.plain is not None for request in group):
            # A small group is written on this thread, its COMMIT on the database thread; a
            # large one whole on the database thread, not to hold up the loop (ADR 0016).
            small = sum(len(request.raws) for request in group) <= ON_LOOP_DOCUMENTS
            write = self._store.transact_here if small else self._store.transact
            try:
                return await write(write_plain_on, group)
            except NotPlainError:
                pass  # rolled back: the general path below decides the group
        ids = [document_id(raw).hex() for request in group for raw in request.raws]
        needed = [
            ref.hex()
            for request in group
            for check in request.checks
            if isinstance(check, SignedDocument) and (ref := refers_to(check.document)) is not None
        ]
        async with self._store.transaction() as tx:
            nonces = [
                (kid.hex(), n.hex(), tx.now, exp)
                for kid, n, exp in (r.nonce for r in group if r.nonce is not None)
            ]
            state = await tx.run(known_on, ids, needed, nonces)
            answers = []
            for request in group:
                decisions = []
                for raw, check in zip(request.raws, request.checks, strict=True):
                    decision = await self._decide(
                        tx, state, raw, check, request.from_peer, usable=request.usable
                    )
                    decisions.append(decision)
                answers.append(decisions)
            await self._flush(tx, state)
            await self._release_dependents(tx, state)
        return answers

    async def retry_pending(self) -> int:
        """Re-decide documents held for stale registry data, now that it may be fresh.

        Returns:
            How many documents were decided (accepted, rejected, or held for a dependency).
        """
        now = self._clock()
        if not self.registry_usable(now):
            return 0
        async with self._store.read() as tx:
            waiting = await tx.pending(reason="registry")
        if not waiting:
            return 0
        by_peer: dict[str | None, list[bytes]] = {}
        for entry in waiting:
            by_peer.setdefault(entry.from_peer, []).append(entry.raw)
        decided = 0
        for peer, raws in by_peer.items():
            decided += len(await self.receive(raws, from_peer=peer))
        return decided

    def _result(self, decision: Decision, now: int) -> DocumentResult:
        receipt = b""
        if decision.outcome != "pending" and decision.counterpart not in {None, self._country}:
            status = "rejected" if decision.outcome == "rejected" else "accepted"
            receipt = self.sign_receipt(
                decision.id,
                status=status,
                reason=decision.reason if status == "rejected" else "",
                counterpart=decision.counterpart or "",
                now=now,
            )
        return DocumentResult(
            document_id=decision.id,
            outcome=decision.outcome,
            reason=decision.reason,
            receipt=receipt,
        )

    def sign_receipt(
        self, doc_id: bytes, *, status: str, reason: str, counterpart: str, now: int
    ) -> bytes:
        """Sign this node's delivery receipt for a document, addressed to ``counterpart``."""
        return self._receipts.sign(
            doc_id, status=status, reason=reason, counterpart=counterpart, now=now
        )
