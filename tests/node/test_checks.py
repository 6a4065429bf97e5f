"""The pure checks behind the lifecycle: estimate arithmetic and endorsement discrepancies."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from permitnet.node.checks import Balance, describe_discrepancies, estimate_shortfalls
from permitnet.node.drafting import build_endorsement
from permitnet.node.events import EventBus
from permitnet.protocol import rules
from permitnet.protocol.documents import (
    CertificateReference,
    ExportAuthorization,
    Item,
    Party,
)
from permitnet.protocol.quantities import format_mg

MG = st.integers(min_value=0, max_value=10**12)
SUBSTANCES = st.sampled_from(["morphine", "codeine", "fentanyl", "oxycodone"])


@given(
    st.dictionaries(
        SUBSTANCES,
        st.tuples(st.one_of(st.none(), MG), MG, MG, st.integers(min_value=1, max_value=10**12)),
        min_size=1,
    )
)
def test_shortfall_exactly_when_request_exceeds_balance(
    figures: dict[str, tuple[int | None, int, int, int]],
) -> None:
    balances = {
        s: Balance(
            substance=s,
            year=2026,
            estimate_mg=e,
            supplementary_mg=sup,
            authorized_mg=a,
            country="DE",
        )
        for s, (e, sup, a, _) in figures.items()
    }
    requested = {s: r for s, (_, _, _, r) in figures.items()}
    reasons = estimate_shortfalls(requested, balances)
    expected = sorted(s for s, (e, sup, a, r) in figures.items() if e is None or a + r > e + sup)
    assert [r.split(" ")[2] for r in reasons] == expected
    for s, (e, sup, a, r) in figures.items():
        b = balances[s]
        assert b.remaining_mg == (None if e is None else e + sup - a)
        if e is not None and a + r > e + sup:
            (line,) = [x for x in reasons if f" DE {s} 2026:" in x]
            remaining = max(0, e + sup - a)
            assert line.startswith("estimate-exceeded: ")
            assert f"{format_mg(r - remaining)} over the remaining {format_mg(remaining)}" in line
            assert f"already authorized {format_mg(a)}, requested {format_mg(r)}" in line


def _authorization(quantities: list[int]) -> ExportAuthorization:
    import datetime as dt

    party = Party(name="P", address="A", licence="L")
    return ExportAuthorization(
        issuer="FR",
        recipient="DE",
        issued_at=0,
        authority="FR authority",
        number="EA-1",
        date_of_issue=dt.date(2026, 3, 1),
        importer=party,
        exporter=party,
        importing_country="DE",
        items=tuple(Item.create("morphine", q, "bulk") for q in quantities),
        import_certificate=CertificateReference(
            id=bytes(32), number="IC-1", date_of_issue=dt.date(2026, 3, 1), authority="DE"
        ),
        valid_from=dt.date(2026, 3, 1),
        valid_until=dt.date(2026, 6, 1),
        route="",
        transport_mode="air",
        transit_countries=(),
    )


@given(
    st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=5).flatmap(
        lambda qs: st.tuples(
            st.just(qs),
            st.lists(st.integers(min_value=0, max_value=10**9), min_size=len(qs), max_size=len(qs)),
        )
    )
)
def test_discrepancy_lines_are_exactly_the_differing_lines(
    case: tuple[list[int], list[int]],
) -> None:
    authorized, received = case
    ea = _authorization(authorized)
    endorsement = build_endorsement(
        {
            "export_authorization": "00" * 32,
            "date_received": "2026-03-09",
            "received": [{"line": i, "quantity_mg": q} for i, q in enumerate(received)],
        },
        issuer="DE",
        authority="DE authority",
        issued_at=0,
        authorization=ea,
        authorization_id="00" * 32,
    )
    problems = describe_discrepancies(
        rules.check_endorsement(endorsement, ea, authorization_id=bytes(32))
    )
    differing = [i for i, (a, r) in enumerate(zip(authorized, received, strict=True)) if a != r]
    assert [int(p.split()[1]) - 1 for p in problems] == differing
    for p, i in zip(problems, differing, strict=True):
        word = "less" if received[i] < authorized[i] else "more"
        assert f"({format_mg(abs(authorized[i] - received[i]))} {word})" in p


async def test_event_bus_wakes_waiters_and_releases_them_on_close() -> None:
    bus = EventBus()
    waiter = asyncio.create_task(bus.wait_beyond(0))
    await asyncio.sleep(0)  # let the waiter start waiting (one scheduling step, no timing)
    assert not waiter.done()
    bus.notify([3])
    async with asyncio.timeout(5):
        await waiter
    assert bus.latest == 3
    await bus.wait_beyond(2)  # already beyond: returns at once
    late = asyncio.create_task(bus.wait_beyond(3))
    await asyncio.sleep(0)
    bus.close()
    async with asyncio.timeout(5):
        await late
    assert bus.closed
