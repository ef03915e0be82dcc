"""muscle-relaxant-duration and muscle-relaxant-older-adult through the service, at their boundaries."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests import medication_factories as mf
from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import back_pain, chart_prefetch, hook_request, order_prefetch

DURATION = "muscle-relaxant-duration"
BEERS = "muscle-relaxant-older-adult"


def order_cards(
    client: TestClient,
    drafts: list[dict[str, Any]],
    *,
    age: int = 40,
    conditions: list[dict[str, Any]] | None = None,
    hook: str = "order-sign",
) -> list[dict[str, Any]]:
    body = hook_request(
        hook,
        prefetch=order_prefetch([back_pain()] if conditions is None else conditions, age=age),
        draft_orders=drafts,
    )
    response = call(client, f"lbp-{hook}", body)
    assert response.status_code == 200, response.text
    assert_response_contract(response.json(), hook)
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards


def chart_cards(
    client: TestClient,
    active: list[dict[str, Any]],
    *,
    hook: str = "patient-view",
    conditions: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    body = hook_request(
        hook,
        prefetch=chart_prefetch(
            [back_pain()] if conditions is None else conditions, medication_requests=active
        ),
    )
    response = call(client, f"lbp-{hook}", body)
    assert response.status_code == 200, response.text
    assert_response_contract(response.json(), hook)
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards


def of_topic(cards: list[dict[str, Any]], topic: str) -> list[dict[str, Any]]:
    return [c for c in cards if c["source"]["topic"]["code"] == topic]


def relaxant(
    product: tuple[str, str] | None = mf.CYCLOBENZAPRINE_10, **fields: Any
) -> dict[str, Any]:
    fields.setdefault("per_day", 3)
    fields.setdefault("every_hours", None)
    return mf.medication_request(product, **fields)


@pytest.mark.parametrize(("days", "fires"), [(21, False), (22, True)])
def test_drafted_course_over_21_days(client: TestClient, days: int, fires: bool) -> None:
    cards = of_topic(order_cards(client, [relaxant(supply_days=days)]), DURATION)
    assert bool(cards) is fires
    if fires:
        [card] = cards
        assert card["indicator"] == "warning"
        assert card["summary"] == (
            "Cyclobenzaprine for 22 days: muscle relaxants are for 2-3 weeks at most"
        )
        assert "22 days" in card["detail"]


@pytest.mark.parametrize(("tablets", "fires"), [(63, False), (66, True)])
def test_course_from_quantity_three_a_day(client: TestClient, tablets: int, fires: bool) -> None:
    # 63 tablets at 3 a day = 21 days; 66 = 22 days.
    cards = of_topic(order_cards(client, [relaxant(quantity=tablets)]), DURATION)
    assert bool(cards) is fires


def test_refills_count_in_the_course(client: TestClient) -> None:
    # 14 days x (1 + 1 refill) = 28 days.
    [card] = of_topic(order_cards(client, [relaxant(supply_days=14, refills=1)]), DURATION)
    assert "28 days (14 days per fill x 2 fills" in card["detail"]


def test_suggestion_updates_the_draft_to_14_days_without_refills(client: TestClient) -> None:
    draft = relaxant(quantity=90, refills=2, request_id="cyclo-1")
    [card] = of_topic(order_cards(client, [draft]), DURATION)
    [s] = card["suggestions"]
    [act] = s["actions"]
    assert act["type"] == "update"
    resource = act["resource"]
    assert resource["id"] == "cyclo-1"
    assert resource["dispenseRequest"]["expectedSupplyDuration"]["value"] == 14
    assert resource["dispenseRequest"]["quantity"]["value"] == 42  # 3 a day x 14 days
    assert resource["dispenseRequest"]["numberOfRepeatsAllowed"] == 0
    assert all(r["display"] for r in card["overrideReasons"])


@pytest.mark.parametrize(
    ("product", "text"),
    [
        (mf.METHOCARBAMOL_500, None),
        (mf.TIZANIDINE_4, None),  # by ingredient name in the display
        (None, "Baclofen 10 mg tablet"),  # free text only
        (None, "Flexeril 10 mg"),  # brand name
    ],
)
def test_each_relaxant_is_recognised(
    client: TestClient, product: tuple[str, str] | None, text: str | None
) -> None:
    draft = relaxant(product, text=text, supply_days=30)
    assert len(of_topic(order_cards(client, [draft]), DURATION)) == 1


def test_non_relaxant_long_course_gives_no_card(client: TestClient) -> None:
    draft = relaxant(mf.IBUPROFEN_400, supply_days=30)
    assert order_cards(client, [draft]) == []


def test_relaxant_named_by_a_referenced_medication(client: TestClient) -> None:
    med = mf.medication("cyclo-med", mf.CYCLOBENZAPRINE_10)
    med["id"] = "cyclo-med"
    draft = relaxant(None, medication_reference="#cyclo-med", contained=[med], supply_days=30)
    assert len(of_topic(order_cards(client, [draft]), DURATION)) == 1
    # v2 "One card per order": at 70 the Beers card alone.
    assert len(of_topic(order_cards(client, [draft], age=70), DURATION)) == 0
    assert len(of_topic(order_cards(client, [draft], age=70), BEERS)) == 1


def test_order_hooks_ignore_relaxants_already_active(client: TestClient) -> None:
    active = relaxant(status="active", authored_days_ago=60)
    body = hook_request(
        "order-sign",
        prefetch=order_prefetch([back_pain()], medication_requests=[active]),
        draft_orders=[mf.medication_request(mf.IBUPROFEN_400)],
    )
    response = call(client, "lbp-order-sign", body)
    assert of_topic(response.json()["cards"], DURATION) == []
    assert_response_contract(response.json(), "order-sign")


@pytest.mark.parametrize("hook", ["patient-view", "encounter-start"])
@pytest.mark.parametrize(("authored", "fires"), [(21, False), (22, True)])
def test_active_relaxant_authored_more_than_21_days_ago(
    client: TestClient, hook: str, authored: int, fires: bool
) -> None:
    active = relaxant(status="active", authored_days_ago=authored, supply_days=30)
    cards = of_topic(chart_cards(client, [active], hook=hook), DURATION)
    assert bool(cards) is fires
    if fires:
        [card] = cards
        assert card["summary"] == (
            "Cyclobenzaprine ordered 22 days ago: muscle relaxants are for 2-3 weeks at most"
        )
        assert "22 days" in card["detail"]
        assert "suggestions" not in card


def test_stopped_relaxant_does_not_fire_on_patient_view(client: TestClient) -> None:
    stopped = relaxant(status="stopped", authored_days_ago=90)
    assert of_topic(chart_cards(client, [stopped]), DURATION) == []


def test_no_relaxant_card_without_back_pain(client: TestClient) -> None:
    active = relaxant(status="active", authored_days_ago=90)
    assert chart_cards(client, [active], conditions=[]) == []
    assert order_cards(client, [relaxant(supply_days=30)], age=80, conditions=[]) == []


@pytest.mark.parametrize(("age", "fires"), [(64, False), (65, True)])
def test_beers_relaxant_from_age_65(client: TestClient, age: int, fires: bool) -> None:
    cards = of_topic(order_cards(client, [relaxant(supply_days=7)], age=age), BEERS)
    assert bool(cards) is fires
    if fires:
        [card] = cards
        assert card["indicator"] == "warning"
        assert "Beers" in card["summary"]
        assert "wiley.com" in card["source"]["url"]
        assert f"{age} years" in card["detail"]


@pytest.mark.parametrize("product", [mf.TIZANIDINE_4, mf.BACLOFEN_10])
def test_beers_does_not_list_tizanidine_or_baclofen(
    client: TestClient, product: tuple[str, str]
) -> None:
    assert of_topic(order_cards(client, [relaxant(product, supply_days=7)], age=80), BEERS) == []


def test_beers_on_order_select_only_for_the_selection(client: TestClient) -> None:
    chosen = mf.medication_request(mf.IBUPROFEN_400, request_id="ibu")
    other = relaxant(mf.METHOCARBAMOL_500, supply_days=7, request_id="metho")
    body = hook_request(
        "order-select",
        prefetch=order_prefetch([back_pain()], age=75),
        draft_orders=[chosen, other],
        selections=["MedicationRequest/ibu"],
    )
    response = call(client, "lbp-order-select", body)
    assert assert_response_contract(response.json(), "order-select") == []
