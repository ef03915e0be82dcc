"""The "Self-care plan for the patient" link (RULES.md v2): one `absolute` link on every
startback-screening card, on the low-risk startback-result card and on the imaging card; none on
a medium or high result (their matched care is a referral) or a result without a risk group."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import back_pain, chart_prefetch, hook_request, order_prefetch, service_request
from tests.startback_builders import CHART_SERVICES, RISK, TOTAL, observation

LABEL = "Self-care plan for the patient"


def cards(client: Any, service_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = call(client, service_id, body)
    assert response.status_code == 200, response.text
    assert_response_contract(response.json(), body["hook"])
    found: list[dict[str, Any]] = response.json()["cards"]
    return found


def self_care_links(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [link for link in card.get("links", []) if link["label"] == LABEL]


def chart_card(client: Any, service: tuple[str, str], observations: list[dict[str, Any]]) -> Any:
    service_id, hook = service
    prefetch = chart_prefetch([back_pain(onset_days_ago=20)], observations=observations)
    (card,) = cards(client, service_id, hook_request(hook, prefetch=prefetch))
    return card


@pytest.mark.parametrize("service", CHART_SERVICES)
def test_every_screening_card_links_the_plan_once(client_factory, service) -> None:
    client = client_factory(public_base_url="http://localhost:8123")
    card = chart_card(client, service, [])
    assert card["source"]["topic"]["code"] == "startback-screening"
    assert self_care_links(card) == [
        {"label": LABEL, "url": "http://localhost:8123/apps/self-care", "type": "absolute"}
    ]
    assert len(card["links"]) == 2  # the questionnaire app stays


@pytest.mark.parametrize("service", CHART_SERVICES)
def test_a_low_risk_result_links_the_plan(client, service) -> None:
    card = chart_card(client, service, [observation(RISK, risk="low")])
    assert card["summary"].startswith("STarT Back low risk")
    assert card["links"] == [
        {"label": LABEL, "url": "http://127.0.0.1:8000/apps/self-care", "type": "absolute"}
    ]


@pytest.mark.parametrize("risk", ["medium", "high"])
def test_a_medium_or_high_result_does_not(client, risk: str) -> None:
    card = chart_card(client, CHART_SERVICES[0], [observation(RISK, risk=risk)])
    assert card["summary"].startswith(f"STarT Back {risk} risk")
    assert self_care_links(card) == []


def test_a_result_without_a_risk_group_does_not(client) -> None:
    card = chart_card(client, CHART_SERVICES[0], [observation(TOTAL, value=6)])
    assert self_care_links(card) == []
    assert [link["type"] for link in card["links"]] == ["smart"]  # repeat the questionnaire


@pytest.mark.parametrize(
    ("service_id", "hook"), [("lbp-order-sign", "order-sign"), ("lbp-order-select", "order-select")]
)
def test_the_imaging_card_links_the_plan_once(client, service_id: str, hook: str) -> None:
    body = hook_request(
        hook,
        prefetch=order_prefetch([back_pain(onset_days_ago=10)]),
        draft_orders=[service_request(order_id="mri-1")],
    )
    (card,) = cards(client, service_id, body)
    assert card["source"]["topic"]["code"] == "imaging-without-red-flags"
    assert self_care_links(card) == [
        {"label": LABEL, "url": "http://127.0.0.1:8000/apps/self-care", "type": "absolute"}
    ]
