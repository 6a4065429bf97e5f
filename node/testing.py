"""Helpers to run nodes in tests: an in-process registry view with chosen keys and estimates.

Like python-tuf's ``RepositorySimulator``: where the registry is not the point, tests build the
verified view directly from registry records instead of fetching a signed snapshot; and where
the exchange is not the point, :func:`apply_received` hands a verified document straight to the
lifecycle's rules. Nothing in the node imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pycountry

from permitnet.node.receiving import apply_verified, dependency_of
from permitnet.protocol import Sign1Message, decode_cbor
from permitnet.protocol.documents import DeliveryReceipt, document_from_payload
from permitnet.protocol.errors import RuleViolation
from permitnet.protocol.registry_records import CountryRecord, Estimate, KeyRecord
from permitnet.protocol.registry_view import RegistryView, fold
from permitnet.protocol.signed import SignedDocument, document_id

if TYPE_CHECKING:
    from collections.abc import Sequence

    from permitnet.node.lifecycle import NodeServices
    from permitnet.node.store import Tx

__all__ = ["Outcome", "TestCountry", "apply_received", "estimate", "registry_view"]

#: What :func:`apply_received` did with a document.
Outcome = Literal["accepted", "duplicate", "pending"]
#: How many waiting documents one arrival may release in a chain.
_MAX_RELEASED = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class TestCountry:
    """A participating country for a test registry: its code, key and node URL."""

    __test__ = False  # not a pytest test class

    code: str
    public_key: bytes
    kid: bytes
    endpoint: str = "http://127.0.0.1:9"
    authority: str = ""


def estimate(
    country: str, substance: str, year: int, quantity_mg: int, *, supplementary: int = 0
) -> Estimate:
    """An annual estimate (``supplementary=0``) or the n-th supplementary estimate."""
    return Estimate(
        country=country,
        substance=substance,
        year=year,
        quantity_mg=quantity_mg,
        kind="supplementary" if supplementary else "estimate",
        effective=f"{year}-01-01",
        sequence=supplementary,
    )


def registry_view(
    countries: list[TestCountry],
    estimates: Sequence[Estimate] = (),
    *,
    without_node: Sequence[str] = (),
    version: int = 1,
    issued_at: int = 0,
    expires_at: int = 2**40,
) -> RegistryView:
    """Build a verified-looking registry view from records (no snapshot signature involved).

    ``without_node`` lists participating countries that have no node and no key (they trade on
    paper); their estimates may still be given.
    """
    records: list[CountryRecord | KeyRecord | Estimate] = []
    for c in countries:
        country = pycountry.countries.get(alpha_2=c.code)
        records.append(
            CountryRecord(
                code=c.code,
                name=country.name if country else c.code,
                authority=c.authority or f"Competent authority of {c.code}",
                endpoints=(c.endpoint,),
                contact="",
            )
        )
        records.append(
            KeyRecord(
                country=c.code,
                kid=c.kid,
                public_key=c.public_key,
                valid_from=0,
                valid_until=None,
                status="active",
            )
        )
    for code in without_node:
        country = pycountry.countries.get(alpha_2=code)
        records.append(
            CountryRecord(
                code=code,
                name=country.name if country else code,
                authority=f"Competent authority of {code}",
                endpoints=(),
                contact="",
            )
        )
    records.extend(estimates)
    return RegistryView(
        version=version,
        issued_at=issued_at,
        expires_at=expires_at,
        root_version=1,
        log_size=len(records),
        log_root=bytes(32),
        log_compact=(),
        state=fold(records),
    )


async def apply_received(
    services: NodeServices, signed: SignedDocument, *, from_peer: str | None
) -> Outcome:
    """Apply a verified document to a node directly, in a transaction of its own.

    For tests of the lifecycle's rules, where the exchange is not the point: a node receives
    only through ``permitnet.node.exchange.InboundPipeline``, which does the same around
    :func:`~permitnet.node.receiving.apply_verified` for whole groups and also quarantines what
    it refuses. Here a refused document raises and nothing is stored.

    Returns:
        ``accepted``, ``duplicate`` (already stored: nothing changes) or ``pending`` (what it
        refers to is not here yet; applied when that arrives through this function).

    Raises:
        RuleViolation: the document breaks a Convention rule or does not fit what it refers to.
    """
    document = signed.document
    if document.recipient != services.country:
        raise RuleViolation(
            "wrong-recipient", f"addressed to {document.recipient}, this node is {services.country}"
        )
    if isinstance(document, DeliveryReceipt):
        raise RuleViolation(
            "receipt-not-a-document",
            "delivery receipts answer deliveries; they are not applied as documents",
        )
    async with services.store.transaction() as tx:
        if await tx.has_document(signed.id_hex):
            await tx.remove_pending(signed.id_hex)
            return "duplicate"
        dependency = dependency_of(document)
        if dependency is not None and not await tx.has_document(dependency):
            await tx.add_pending(
                signed.id_hex,
                signed.raw,
                reason="dependency",
                waiting_for=dependency,
                from_peer=from_peer,
            )
            return "pending"
        await apply_verified(tx, services, signed)
        await tx.remove_pending(signed.id_hex)
        await _release_waiting(tx, services, signed.id_hex)
    return "accepted"


async def _release_waiting(tx: Tx, services: NodeServices, arrived: str) -> None:
    queue = [arrived]
    released = 0
    while queue and released < _MAX_RELEASED:
        for entry in await tx.pending(reason="dependency", waiting_for=queue.pop()):
            waiting = _stored_signed(entry.raw)
            try:
                await apply_verified(tx, services, waiting)
            except RuleViolation as e:
                await tx.add_quarantine(entry.raw, reason=str(e), from_peer=entry.from_peer)
            else:
                queue.append(entry.document_id)
            await tx.remove_pending(entry.document_id)
            released += 1


def _stored_signed(raw: bytes) -> SignedDocument:
    # Only verified documents are put into inbound_pending, so the bytes are read back
    # without the key; they are the exact bytes that were verified.
    message = Sign1Message.from_bytes(raw)
    assert message.kid is not None  # verified documents carry a protected kid
    document = document_from_payload(decode_cbor(message.payload))
    return SignedDocument(raw=raw, id=document_id(raw), kid=message.kid, document=document)
