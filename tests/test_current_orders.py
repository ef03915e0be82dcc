"""RULES.md v2 "Current orders", through the service: an order with status `active` counts only
while it is current, for the opioid total, a benzodiazepine present, naloxone on file and the
chart-hook muscle-relaxant rule.

Day arithmetic (medication_orders.py): authoredOn is the first supplied day; supplied days =
ceil(one fill's days x (1 + numberOfRepeatsAllowed)); the last supplied day is authoredOn +
supplied days - 1 and the order is current while that day is today or later. Without a days
supply: current when authoredOn is at most 90 days ago. No authoredOn: current.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests import medication_factories as mf
from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import (
    back_pain,
    chart_prefetch,
    days_ago,
    hook_request,
    order_prefetch,
)

OPIOID = "opioid-order"
DURATION = "muscle-relaxant-duration"


def _cards(client: TestClient, hook: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = call(client, f"lbp-{hook}", body)
    assert response.status_code == 200, response.text
    assert_response_contract(response.json(), hook)
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards


def opioid_card(
    client: TestClient, draft: dict[str, Any], active: list[dict[str, Any]]
) -> dict[str, Any]:
    body = hook_request(
        "order-sign",
        prefetch=order_prefetch([back_pain()], medication_requests=active),
        draft_orders=[draft],
    )
    [card] = [
        c for c in _cards(client, "order-sign", body) if c["source"]["topic"]["code"] == OPIOID
    ]
    return card


def relaxant_cards(client: TestClient, active: list[dict[str, Any]]) -> list[dict[str, Any]]:
    body = hook_request(
        "patient-view", prefetch=chart_prefetch([back_pain()], medication_requests=active)
    )
    return [
        c for c in _cards(client, "patient-view", body) if c["source"]["topic"]["code"] == DURATION
    ]


def draft_30_mme() -> dict[str, Any]:
    """Oxycodone 5 mg every 6 hours: 30 MME/day, 3-day supply (no other suggestion)."""
    return mf.medication_request(mf.OXYCODONE_5, quantity=12)


def active_hydrocodone_60(**kwargs: Any) -> dict[str, Any]:
    """Hydrocodone 7.5 mg x 2 every 6 hours: 60 MME/day; with the 30 MME/day draft, 90."""
    return mf.medication_request(mf.HYDROCODONE_APAP_7_5, status="active", dose=2, **kwargs)


def counted(card: dict[str, Any]) -> bool:
    """Whether the active hydrocodone is in the total (90, critical) or left out (30, warning)."""
    in_total = "total with the active opioid orders:** 90 MME/day" in card["detail"]
    assert (card["indicator"] == "critical") is in_total
    if not in_total:
        assert "the same: no active opioid order" in card["detail"]
    return in_total


def left_out_line(n: int) -> str:
    orders = "1 active order" if n == 1 else f"{n} active orders"
    return f"**Left out:** {orders} (opioid, benzodiazepine, muscle relaxant or naloxone)"


# --- without a computable days supply: authoredOn within 90 days


@pytest.mark.parametrize(("authored", "current"), [(89, True), (90, True), (91, False)])
def test_active_opioid_without_supply_is_current_for_90_days(
    client: TestClient, authored: int, current: bool
) -> None:
    active = active_hydrocodone_60(authored_days_ago=authored)
    assert "dispenseRequest" not in active  # no days supply can be computed
    card = opioid_card(client, draft_30_mme(), [active])
    assert counted(card) is current
    assert (left_out_line(1) in card["detail"]) is not current
    if not current:
        assert "written more than 90 days ago" in card["detail"]


def test_active_opioid_without_authored_on_is_current(client: TestClient) -> None:
    with_supply = active_hydrocodone_60(authored_days_ago=None, supply_days=30)
    without_supply = active_hydrocodone_60(authored_days_ago=None)
    for active in (with_supply, without_supply):
        assert "authoredOn" not in active
        card = opioid_card(client, draft_30_mme(), [active])
        assert counted(card)
        assert "**Left out:**" not in card["detail"]


# --- with a days supply: current while the last supplied day is today or later


@pytest.mark.parametrize(
    ("authored", "current"),
    [(28, True), (29, True), (30, False)],
    ids=["ends-tomorrow", "ends-today", "ended-yesterday"],
)
def test_active_opioid_current_while_its_supply_lasts(
    client: TestClient, authored: int, current: bool
) -> None:
    # A 30-day supply authored 29 days ago covers days -29 .. 0 (today is its last day).
    active = active_hydrocodone_60(authored_days_ago=authored, supply_days=30)
    assert counted(opioid_card(client, draft_30_mme(), [active])) is current


@pytest.mark.parametrize(("authored", "current"), [(29, True), (30, False)])
def test_refills_extend_the_supply(client: TestClient, authored: int, current: bool) -> None:
    # 10 days x (1 + 2 refills) = 30 days.
    active = active_hydrocodone_60(authored_days_ago=authored, supply_days=10, refills=2)
    assert counted(opioid_card(client, draft_30_mme(), [active])) is current


@pytest.mark.parametrize(("authored", "current"), [(11, True), (12, False)])
def test_a_part_day_of_supply_counts_as_a_supplied_day(
    client: TestClient, authored: int, current: bool
) -> None:
    # 90 tablets at 2 every 6 hours (8 a day) = 11.25 days: 12 supplied days, the last one
    # authoredOn + 11.
    active = active_hydrocodone_60(authored_days_ago=authored, quantity=90)
    assert counted(opioid_card(client, draft_30_mme(), [active])) is current


@pytest.mark.parametrize(
    ("authored", "supply_days", "validity", "current"),
    [
        (400, 30, (400, -365), False),  # validity covers today: still stale
        (10, 30, (400, 100), True),  # validity ended: still current
        (120, None, (120, -245), False),  # no supply, validity covers today: still stale
    ],
    ids=["covers-today-stale", "ended-current", "no-supply-covers-today"],
)
def test_validity_period_plays_no_part(
    client: TestClient,
    authored: int,
    supply_days: int | None,
    validity: tuple[int, int],
    current: bool,
) -> None:
    active = active_hydrocodone_60(authored_days_ago=authored, supply_days=supply_days)
    start, end = validity
    active.setdefault("dispenseRequest", {})["validityPeriod"] = {
        "start": days_ago(start),
        "end": days_ago(end),
    }
    assert counted(opioid_card(client, draft_30_mme(), [active])) is current


def test_issue_oxycodone_authored_400_days_ago_no_longer_makes_the_draft_critical(
    client: TestClient,
) -> None:
    # Oxycodone 5 mg x 2 every 6 hours (60 MME/day), a 30-day supply written 400 days ago.
    old = mf.medication_request(
        mf.OXYCODONE_5, status="active", dose=2, supply_days=30, authored_days_ago=400
    )
    card = opioid_card(client, draft_30_mme(), [old])
    assert card["indicator"] == "warning"
    assert "**MME/day, total:** the same: no active opioid order." in card["detail"]
    assert left_out_line(1) in card["detail"]
    assert "the supply ran out" in card["detail"]
    # The same order written 10 days ago is current: 90 MME/day, critical.
    recent = mf.medication_request(
        mf.OXYCODONE_5, status="active", dose=2, supply_days=30, authored_days_ago=10
    )
    card = opioid_card(client, draft_30_mme(), [recent])
    assert card["indicator"] == "critical"
    assert "**Left out:**" not in card["detail"]


# --- benzodiazepine present, naloxone on file


def test_a_stale_benzodiazepine_does_not_make_the_card_critical(client: TestClient) -> None:
    stale = mf.medication_request(mf.LORAZEPAM_1, status="active", authored_days_ago=200)
    card = opioid_card(client, draft_30_mme(), [stale])
    assert card["indicator"] == "warning"
    assert "lorazepam" not in card["detail"]
    assert left_out_line(1) in card["detail"]
    assert not naloxone_suggested(card)
    # Current (authored 30 days ago, no supply stated): critical, named, not left out.
    current = mf.medication_request(mf.LORAZEPAM_1, status="active", authored_days_ago=30)
    card = opioid_card(client, draft_30_mme(), [current])
    assert card["indicator"] == "critical"
    assert "lorazepam 1 MG Oral Tablet (active)" in card["detail"]
    assert "**Left out:**" not in card["detail"]


def test_stale_orders_of_every_class_are_counted_once(client: TestClient) -> None:
    stale = [
        mf.medication_request(mf.LORAZEPAM_1, status="active", authored_days_ago=200),
        active_hydrocodone_60(authored_days_ago=100, supply_days=30),
        mf.medication_request(mf.CYCLOBENZAPRINE_10, status="active", authored_days_ago=95),
        mf.medication_request(mf.NALOXONE_SPRAY, status="active", dose=None, authored_days_ago=300),
        # Not a class the card reads: never counted.
        mf.medication_request(mf.IBUPROFEN_400, status="active", authored_days_ago=300),
    ]
    card = opioid_card(client, draft_30_mme(), stale)
    assert card["indicator"] == "warning"
    assert left_out_line(4) in card["detail"]
    assert card["detail"].count("**Left out:**") == 1


def naloxone_suggested(card: dict[str, Any]) -> bool:
    return any(
        a["type"] == "create"
        and "naloxone" in a["resource"]["medicationCodeableConcept"]["text"].lower()
        for s in card.get("suggestions", [])
        for a in s.get("actions", [])
    )


def test_a_stale_naloxone_does_not_suppress_the_naloxone_suggestion(client: TestClient) -> None:
    # Morphine 15 mg every 6 hours: 60 MME/day, a 3-day supply: naloxone is suggested.
    draft = mf.medication_request(
        mf.MORPHINE_SOLUTION_2, dose=15, dose_unit="mg", every_hours=6, supply_days=3
    )
    stale = mf.medication_request(
        mf.NALOXONE_SPRAY, status="active", dose=None, authored_days_ago=400
    )
    card = opioid_card(client, draft, [stale])
    assert naloxone_suggested(card)
    assert "Naloxone is already ordered" not in card["detail"]
    assert left_out_line(1) in card["detail"]
    current = mf.medication_request(
        mf.NALOXONE_SPRAY, status="active", dose=None, authored_days_ago=60
    )
    card = opioid_card(client, draft, [current])
    assert not naloxone_suggested(card)
    assert "Naloxone is already ordered" in card["detail"]


# --- the chart-hook relaxant rule


def test_issue_relaxant_authored_380_days_ago_gives_no_chart_card(client: TestClient) -> None:
    old = mf.medication_request(mf.CYCLOBENZAPRINE_10, status="active", authored_days_ago=380)
    assert relaxant_cards(client, [old]) == []


@pytest.mark.parametrize(("authored", "fires"), [(90, True), (91, False)])
def test_relaxant_without_supply_is_current_for_90_days(
    client: TestClient, authored: int, fires: bool
) -> None:
    active = mf.medication_request(
        mf.CYCLOBENZAPRINE_10, status="active", authored_days_ago=authored
    )
    assert bool(relaxant_cards(client, [active])) is fires


@pytest.mark.parametrize(("authored", "fires"), [(29, True), (30, False)])
def test_relaxant_on_the_chart_while_its_supply_lasts(
    client: TestClient, authored: int, fires: bool
) -> None:
    active = mf.medication_request(
        mf.CYCLOBENZAPRINE_10, status="active", authored_days_ago=authored, supply_days=30
    )
    assert bool(relaxant_cards(client, [active])) is fires


def test_relaxant_chart_card_says_ordered_n_days_ago_and_still_active(client: TestClient) -> None:
    active = mf.medication_request(mf.CYCLOBENZAPRINE_10, status="active", authored_days_ago=30)
    [card] = relaxant_cards(client, [active])
    assert (
        f"**Course:** ordered 30 days ago and still active (from authoredOn {days_ago(30)}); "
        "the limit is 21 days."
    ) in card["detail"]
    assert "On it for" not in card["detail"]
    assert "taken for" not in card["detail"]
