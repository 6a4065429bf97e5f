"""Property tests of the quantity rules: exceeded exactly when the numbers say so."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from permitnet.protocol import RuleViolation
from permitnet.protocol.doc_examples import (
    example_export_authorization,
    example_import_certificate,
)
from permitnet.protocol.documents import Item
from permitnet.protocol.rules import Balance, check_balances, check_export_authorization

IC_ID = bytes([7]) * 32
ALLOWED = 500_000  # oxycodone hydrochloride on the example certificate
CERTIFICATE = dataclasses.replace(example_import_certificate(), several_consignments=True)


@given(
    already=st.integers(min_value=0, max_value=2 * ALLOWED),
    requested=st.integers(min_value=1, max_value=2 * ALLOWED),
)
def test_certificate_quantity_exceeded_iff_sum_is_over(already: int, requested: int) -> None:
    authorization = example_export_authorization(
        IC_ID, items=(Item.create("oxycodone-hydrochloride", requested, "bulk powder"),)
    )

    def check() -> None:
        check_export_authorization(
            authorization,
            CERTIFICATE,
            certificate_id=IC_ID,
            today=dt.date(2026, 1, 20),
            authorized_mg={"oxycodone-hydrochloride": already},
            prior_authorizations=1,
        )

    if already + requested <= ALLOWED:
        check()
    else:
        with pytest.raises(RuleViolation) as caught:
            check()
        assert caught.value.rule == "quantity-exceeds-certificate"
        # Beyond what remains (nothing, when earlier authorizations already overdrew it).
        too_much = requested - max(0, ALLOWED - already)
        assert f": {too_much} mg too much" in str(caught.value)


@given(
    estimate=st.integers(min_value=0, max_value=10**9),
    supplementary=st.integers(min_value=0, max_value=10**9),
    authorized=st.integers(min_value=0, max_value=3 * 10**9),
    quantity=st.integers(min_value=1, max_value=10**9),
)
def test_balance_exceeded_iff_over(
    estimate: int, supplementary: int, authorized: int, quantity: int
) -> None:
    item = Item.create("oxycodone-hydrochloride", quantity, "bulk powder")
    balance = Balance(
        country="DE",
        substance="oxycodone",
        year=2026,
        kind="estimate",
        estimate_mg=estimate,
        supplementary_mg=supplementary,
        authorized_mg=authorized,
    )
    fits = item.base_mg == 0 or item.base_mg <= estimate + supplementary - authorized
    if fits:
        check_balances([item], {"oxycodone": balance})
    else:
        with pytest.raises(RuleViolation, match="estimate-exceeded"):
            check_balances([item], {"oxycodone": balance})
