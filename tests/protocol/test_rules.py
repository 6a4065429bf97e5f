"""Convention rules: one named case per rule, good and bad, with the numbers in the message."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from permitnet.protocol import DocumentError, RuleViolation
from permitnet.protocol.doc_examples import (
    example_cancellation,
    example_delivery_receipt,
    example_endorsement,
    example_export_authorization,
    example_export_declaration,
    example_import_certificate,
    example_message,
)
from permitnet.protocol.documents import Item, Party, ReceivedItem
from permitnet.protocol.rules import (
    RULES,
    Balance,
    Discrepancy,
    base_totals,
    certificate_usage,
    check_balances,
    check_cancellation,
    check_certificate_usable,
    check_delivery_receipt,
    check_endorsement,
    check_export_authorization,
    check_export_declaration,
    check_import_certificate,
    check_message,
    discrepancies,
    remaining_on_certificate,
    substance_totals,
)

IC_ID = bytes([1]) * 32
EA_ID = bytes([2]) * 32
TODAY = dt.date(2026, 1, 20)
IC = example_import_certificate()
EA = example_export_authorization(IC_ID)
MORPHINE_BASE = 752_100  # 1 kg morphine sulfate pentahydrate x 0.7521
OXYCODONE_BASE = 448_200  # 500 g oxycodone hydrochloride x 0.8964


def test_example_numbers() -> None:
    assert base_totals(IC.items) == {"morphine": MORPHINE_BASE, "oxycodone": OXYCODONE_BASE}
    assert substance_totals(IC.items) == {
        "morphine-sulfate-pentahydrate": 1_000_000,
        "oxycodone-hydrochloride": 500_000,
    }
    assert remaining_on_certificate(IC, {"morphine-sulfate-pentahydrate": 100}) == {
        "morphine-sulfate-pentahydrate": 999_900,
        "oxycodone-hydrochloride": 500_000,
    }
    assert remaining_on_certificate(IC, {"oxycodone-hydrochloride": 10**9}) == {
        "morphine-sulfate-pentahydrate": 1_000_000,
        "oxycodone-hydrochloride": 0,
    }


# (name, changes to the certificate, changes to the authorization, check kwargs, rule or None)
EA_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], str | None]] = [
    ("valid", {}, {}, {}, None),
    ("valid-on-last-day", {}, {}, {"today": dt.date(2026, 4, 15)}, None),
    ("valid-partial-quantity", {}, {"items": IC.items[:1]}, {}, None),
    (
        "valid-second-consignment-allowed",
        {"several_consignments": True},
        {"items": (Item.create("oxycodone-hydrochloride", 100_000, "bulk powder"),)},
        {"prior_authorizations": 1, "authorized_mg": {"oxycodone-hydrochloride": 400_000}},
        None,
    ),
    (
        "valid-two-lines-of-one-substance",
        {},
        {
            "items": (
                Item.create("morphine-sulfate-pentahydrate", 600_000, "bulk powder"),
                Item.create("morphine-sulfate-pentahydrate", 400_000, "bulk powder, second lot"),
            )
        },
        {},
        None,
    ),
    ("wrong-certificate-id", {}, {}, {"certificate_id": bytes(32)}, "certificate-reference"),
    ("wrong-certificate-number", {"number": "DE-IC-OTHER"}, {}, {}, "certificate-reference"),
    (
        "wrong-certificate-date",
        {"date_of_issue": dt.date(2026, 1, 4)},
        {},
        {},
        "certificate-reference",
    ),
    ("wrong-certificate-authority", {"authority": "Other"}, {}, {}, "certificate-reference"),
    (
        "certificate-not-from-importing-country",
        {"issuer": "FR"},
        {},
        {},
        "certificate-from-importing-country",
    ),
    (
        "certificate-addressed-elsewhere",
        {"recipient": "CH", "exporting_country": "CH"},
        {},
        {},
        "certificate-addressed-to-exporting-country",
    ),
    (
        "other-importer",
        {},
        {"importer": Party(name="Other GmbH", address="X", licence="1")},
        {},
        "parties-match",
    ),
    (
        "other-exporter-licence",
        {},
        {"exporter": dataclasses.replace(EA.exporter, licence="NDPS-OTHER")},
        {},
        "parties-match",
    ),
    ("certificate-cancelled", {}, {}, {"cancelled": True}, "certificate-cancelled"),
    (
        "certificate-not-yet-valid",
        {},
        {},
        {"today": dt.date(2026, 1, 4)},
        "certificate-not-yet-valid",
    ),
    ("certificate-expired", {}, {}, {"today": dt.date(2026, 7, 5)}, "certificate-expired"),
    ("authorization-dated-tomorrow", {}, {}, {"today": dt.date(2026, 1, 14)}, "dated-in-future"),
    (
        "authorization-before-certificate",
        {},
        {"date_of_issue": dt.date(2026, 1, 4)},
        {},
        "authorization-before-certificate",
    ),
    (
        "validity-ends-after-certificate",
        {},
        {"valid_until": dt.date(2026, 7, 5)},
        {},
        "validity-within-certificate",
    ),
    (
        "validity-starts-before-certificate",
        {},
        {"valid_from": dt.date(2026, 1, 4)},
        {},
        "validity-within-certificate",
    ),
    (
        "authorization-already-expired",
        {},
        {},
        {"today": dt.date(2026, 4, 16)},
        "authorization-expired",
    ),
    (
        "second-consignment-not-allowed",
        {},
        {"items": IC.items[:1]},
        {"prior_authorizations": 1},
        "single-consignment",
    ),
    (
        "substance-not-on-certificate",
        {},
        {"items": (Item.create("fentanyl-citrate", 1_000, "bulk powder"),)},
        {},
        "substance-not-on-certificate",
    ),
    (
        "other-salt-of-a-base-on-the-certificate",
        {},
        {"items": (Item.create("morphine-sulfate", 800_000, "bulk powder"),)},
        {},
        "substance-not-on-certificate",
    ),
    (
        "one-mg-too-much",
        {},
        {"items": (Item.create("oxycodone-hydrochloride", 500_001, "bulk powder"),)},
        {},
        "quantity-exceeds-certificate",
    ),
    (
        "two-lines-together-too-much",
        {},
        {
            "items": (
                Item.create("morphine-sulfate-pentahydrate", 600_000, "bulk powder"),
                Item.create("morphine-sulfate-pentahydrate", 400_001, "bulk powder"),
            )
        },
        {},
        "quantity-exceeds-certificate",
    ),
    (
        "exceeds-after-earlier-authorizations",
        {"several_consignments": True},
        {"items": (Item.create("oxycodone-hydrochloride", 100_000, "bulk powder"),)},
        {"prior_authorizations": 1, "authorized_mg": {"oxycodone-hydrochloride": 400_001}},
        "quantity-exceeds-certificate",
    ),
]


@pytest.mark.parametrize(
    ("ic_changes", "ea_changes", "kwargs", "rule"),
    [pytest.param(a, b, c, d, id=name) for name, a, b, c, d in EA_CASES],
)
def test_export_authorization_rules(
    ic_changes: dict[str, Any], ea_changes: dict[str, Any], kwargs: dict[str, Any], rule: str | None
) -> None:
    certificate = dataclasses.replace(IC, **ic_changes)
    authorization = dataclasses.replace(EA, **ea_changes)
    arguments: dict[str, Any] = {"certificate_id": IC_ID, "today": TODAY} | kwargs
    if rule is None:
        check_export_authorization(authorization, certificate, **arguments)
        return
    with pytest.raises(RuleViolation) as caught:
        check_export_authorization(authorization, certificate, **arguments)
    assert caught.value.rule == rule
    assert str(caught.value).startswith(f"{rule}: ")


def test_quantity_message_names_the_numbers() -> None:
    authorization = dataclasses.replace(
        EA, items=(Item.create("morphine-sulfate-pentahydrate", 999_995, "bulk powder"),)
    )
    with pytest.raises(RuleViolation) as caught:
        check_export_authorization(
            authorization,
            dataclasses.replace(IC, several_consignments=True),
            certificate_id=IC_ID,
            today=TODAY,
            authorized_mg={"morphine-sulfate-pentahydrate": 10},
            prior_authorizations=1,
        )
    message = str(caught.value)
    for part in ("allows 1 kg (1000000 mg)", "10 mg already", "999995 mg requested"):
        assert part in message
    assert "5 mg too much" in message


@pytest.mark.parametrize(
    ("today", "cancelled", "rule"),
    [
        pytest.param(dt.date(2026, 1, 5), False, None, id="first-day"),
        pytest.param(dt.date(2026, 7, 4), False, None, id="last-day"),
        pytest.param(dt.date(2026, 1, 4), False, "certificate-not-yet-valid", id="day-before"),
        pytest.param(dt.date(2026, 7, 5), False, "certificate-expired", id="day-after"),
        pytest.param(dt.date(2026, 2, 1), True, "certificate-cancelled", id="cancelled"),
    ],
)
def test_certificate_usable(today: dt.date, cancelled: bool, rule: str | None) -> None:
    if rule is None:
        check_certificate_usable(IC, today=today, cancelled=cancelled)
        return
    with pytest.raises(RuleViolation) as caught:
        check_certificate_usable(IC, today=today, cancelled=cancelled)
    assert caught.value.rule == rule


@pytest.mark.parametrize(
    ("today", "rule"),
    [
        pytest.param(dt.date(2026, 1, 5), None, id="issued-today"),
        pytest.param(dt.date(2026, 1, 4), "dated-in-future", id="dated-tomorrow"),
        pytest.param(dt.date(2026, 7, 5), "certificate-expired", id="already-expired"),
    ],
)
def test_import_certificate_today(today: dt.date, rule: str | None) -> None:
    if rule is None:
        check_import_certificate(IC, today=today)
        return
    with pytest.raises(RuleViolation) as caught:
        check_import_certificate(IC, today=today)
    assert caught.value.rule == rule


def _balance(**changes: Any) -> Balance:
    fields: dict[str, Any] = {
        "country": "DE",
        "substance": "morphine",
        "year": 2026,
        "kind": "estimate",
        "estimate_mg": 1_000_000,
        "supplementary_mg": 0,
        "authorized_mg": 0,
    }
    return Balance(**(fields | changes))


@pytest.mark.parametrize(
    ("balance", "requested", "rule"),
    [
        pytest.param(_balance(), 1_000_000, None, id="exactly-the-estimate"),
        pytest.param(_balance(), 1_000_001, "estimate-exceeded", id="one-mg-over"),
        pytest.param(_balance(supplementary_mg=5), 1_000_005, None, id="supplementary-counts"),
        pytest.param(_balance(authorized_mg=999_999), 2, "estimate-exceeded", id="authorized"),
        pytest.param(_balance(kind="assessment"), 2_000_000, "assessment-exceeded", id="assess"),
        pytest.param(_balance(authorized_mg=2_000_000), 0, None, id="over-but-nothing-asked"),
        pytest.param(_balance(authorized_mg=2_000_000), 1, "estimate-exceeded", id="overdrawn"),
    ],
)
def test_balance(balance: Balance, requested: int, rule: str | None) -> None:
    if rule is None:
        balance.check(requested)
        return
    with pytest.raises(RuleViolation) as caught:
        balance.check(requested)
    assert caught.value.rule == rule


def test_overdrawn_balance_message_says_nothing_remains() -> None:
    with pytest.raises(RuleViolation, match="1 mg over the remaining 0 mg"):
        _balance(authorized_mg=2_000_000).check(1)


def test_balance_message_names_everything() -> None:
    with pytest.raises(RuleViolation) as caught:
        _balance(supplementary_mg=200_000, authorized_mg=900_000).check(400_000)
    message = str(caught.value)
    for part in (
        "DE morphine 2026",
        "estimate 1 kg",
        "supplementary 200 g",
        "already authorized 900 g",
        "requested 400 g",
        "100 g over the remaining 300 g",
    ):
        assert part in message


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"kind": "quota"}, id="unknown-kind"),
        pytest.param({"estimate_mg": -1}, id="negative-estimate"),
        pytest.param({"authorized_mg": 1.5}, id="float"),
    ],
)
def test_bad_balance_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(DocumentError):
        _balance(**changes)


def test_check_balances_per_base() -> None:
    balances = {
        "morphine": _balance(estimate_mg=MORPHINE_BASE),
        "oxycodone": _balance(substance="oxycodone", estimate_mg=OXYCODONE_BASE),
    }
    check_balances(IC.items, balances)
    with pytest.raises(RuleViolation) as caught:
        check_balances(IC.items, {"morphine": balances["morphine"]})
    assert caught.value.rule == "no-estimate"
    assert "oxycodone" in str(caught.value)
    balances["oxycodone"] = _balance(substance="oxycodone", estimate_mg=OXYCODONE_BASE - 1)
    with pytest.raises(RuleViolation) as caught:
        check_balances(IC.items, balances)
    assert caught.value.rule == "estimate-exceeded"


def test_discrepancies_have_signed_differences() -> None:
    endorsement = example_endorsement(EA_ID)
    assert check_endorsement(endorsement, EA, authorization_id=EA_ID) == [
        Discrepancy(
            line=1,
            substance="oxycodone-hydrochloride",
            authorized_mg=500_000,
            received_mg=499_000,
            difference_mg=-1_000,
        )
    ]
    more = dataclasses.replace(
        endorsement,
        received=(
            ReceivedItem(line=0, substance="morphine-sulfate-pentahydrate", quantity_mg=1_000_010),
        ),
    )
    assert [(d.line, d.difference_mg) for d in discrepancies(EA, more)] == [
        (0, 10),
        (1, -500_000),  # a line not endorsed counts as nothing received
    ]
    exact = dataclasses.replace(
        endorsement,
        received=tuple(
            ReceivedItem(line=i, substance=item.substance, quantity_mg=item.quantity_mg)
            for i, item in enumerate(EA.items)
        ),
    )
    assert discrepancies(EA, exact) == []


ENDORSEMENT_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("other-authorization-id", {"export_authorization": bytes(32)}, "endorsement-reference"),
    ("other-number", {"export_authorization_number": "X-1"}, "endorsement-reference"),
    (
        "from-exporting-country",
        {"issuer": "IN", "recipient": "DE"},
        "endorsement-by-importing-country",
    ),
    ("from-third-country", {"issuer": "FR"}, "endorsement-by-importing-country"),
    (
        "received-too-early",
        {"date_received": dt.date(2026, 1, 14)},
        "received-before-authorization",
    ),
    (
        "line-beyond-authorization",
        {"received": (ReceivedItem(line=2, substance="morphine", quantity_mg=1),)},
        "endorsement-line",
    ),
    (
        "line-with-other-substance",
        {"received": (ReceivedItem(line=0, substance="codeine", quantity_mg=1),)},
        "endorsement-line",
    ),
]


@pytest.mark.parametrize(
    ("changes", "rule"), [pytest.param(c, r, id=name) for name, c, r in ENDORSEMENT_CASES]
)
def test_bad_endorsements(changes: dict[str, Any], rule: str) -> None:
    endorsement = dataclasses.replace(example_endorsement(EA_ID), **changes)
    with pytest.raises(RuleViolation) as caught:
        check_endorsement(endorsement, EA, authorization_id=EA_ID)
    assert caught.value.rule == rule


def test_endorsement_received_in_the_future() -> None:
    endorsement = example_endorsement(EA_ID)
    check_endorsement(endorsement, EA, authorization_id=EA_ID, today=dt.date(2026, 2, 12))
    with pytest.raises(RuleViolation) as caught:
        check_endorsement(endorsement, EA, authorization_id=EA_ID, today=dt.date(2026, 2, 11))
    assert caught.value.rule == "dated-in-future"


def test_cancellation_only_by_issuer() -> None:
    check_cancellation(example_cancellation(IC_ID), IC, target_id=IC_ID)
    with pytest.raises(RuleViolation) as caught:
        check_cancellation(example_cancellation(IC_ID), IC, target_id=EA_ID)
    assert caught.value.rule == "cancellation-reference"
    by_exporter = example_cancellation(IC_ID, issuer="IN", recipient="DE")
    with pytest.raises(RuleViolation) as caught:
        check_cancellation(by_exporter, IC, target_id=IC_ID)
    assert caught.value.rule == "cancellation-by-issuer"


def test_declaration_only_for_declaration_substances() -> None:
    check_export_declaration(example_export_declaration())
    narcotic = example_export_declaration(items=(Item.create("codeine", 1_000, "bulk powder"),))
    with pytest.raises(RuleViolation) as caught:
        check_export_declaration(narcotic)
    assert caught.value.rule == "declaration-not-allowed"
    assert "1961 Schedule II" in str(caught.value)


def test_message_between_the_documents_countries() -> None:
    check_message(example_message(IC_ID), IC, about_id=IC_ID)
    check_message(example_message(IC_ID, issuer="DE", recipient="IN"), IC, about_id=IC_ID)
    with pytest.raises(RuleViolation) as caught:
        check_message(example_message(EA_ID), IC, about_id=IC_ID)
    assert caught.value.rule == "message-reference"
    with pytest.raises(RuleViolation) as caught:
        check_message(example_message(IC_ID, issuer="FR"), IC, about_id=IC_ID)
    assert caught.value.rule == "message-parties"


def test_receipt_from_the_documents_recipient() -> None:
    check_delivery_receipt(example_delivery_receipt(IC_ID), IC, document_id=IC_ID)
    with pytest.raises(RuleViolation) as caught:
        check_delivery_receipt(example_delivery_receipt(EA_ID), IC, document_id=IC_ID)
    assert caught.value.rule == "receipt-reference"
    backwards = example_delivery_receipt(IC_ID, issuer="DE", recipient="IN")
    with pytest.raises(RuleViolation) as caught:
        check_delivery_receipt(backwards, IC, document_id=IC_ID)
    assert caught.value.rule == "receipt-by-recipient"


def test_every_rule_is_documented_and_tested() -> None:
    tested = {case[-1] for case in EA_CASES} | {case[-1] for case in ENDORSEMENT_CASES}
    tested |= {
        "no-estimate",
        "estimate-exceeded",
        "assessment-exceeded",
        "cancellation-by-issuer",
        "cancellation-reference",
        "declaration-not-allowed",
        "message-reference",
        "message-parties",
        "receipt-reference",
        "receipt-by-recipient",
        "estimate-year",
    }
    assert set(RULES) == tested - {None}


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        pytest.param({}, None, id="same-year"),
        pytest.param(
            {"valid_until": dt.date(2027, 2, 1), "estimate_year": 2027}, None, id="next-year"
        ),
        pytest.param({"estimate_year": 2025}, "estimate-year", id="year-before"),
        pytest.param({"estimate_year": 2027}, "estimate-year", id="year-after"),
    ],
)
def test_estimate_year_within_validity(changes: dict[str, Any], rule: str | None) -> None:
    certificate = dataclasses.replace(IC, **changes)
    if rule is None:
        check_import_certificate(certificate, today=dt.date(2026, 1, 5))
        return
    with pytest.raises(RuleViolation) as caught:
        check_import_certificate(certificate, today=dt.date(2026, 1, 5))
    assert caught.value.rule == rule


def test_certificate_usage_counts_only_this_certificate() -> None:
    other = example_export_authorization(EA_ID)
    second = example_export_authorization(
        IC_ID, items=(Item.create("oxycodone-hydrochloride", 1_000, "bulk powder"),)
    )
    authorized, count = certificate_usage(IC_ID, [EA, other, second])
    assert count == 2
    assert authorized == {
        "morphine-sulfate-pentahydrate": 1_000_000,
        "oxycodone-hydrochloride": 501_000,
    }
    assert certificate_usage(bytes(32), [EA]) == ({}, 0)
