"""startback-screening and startback-result through the hook endpoints (CONTRACT.md cards)."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.task import Task

from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import (
    ICD10CM,
    back_pain,
    chart_prefetch,
    condition,
    hook_request,
)
from tests.startback_builders import (
    CHART_SERVICES,
    RISK,
    SUBSCALE,
    TOTAL,
    answers_for,
    observation,
    questionnaire_response,
)


def cards_for(
    client,
    *,
    conditions: list[dict[str, Any]] | None = None,
    observations: list[dict[str, Any]] | None = None,
    responses: list[dict[str, Any]] | None = None,
    service: tuple[str, str] = CHART_SERVICES[0],
) -> tuple[list[str], list[dict[str, Any]]]:
    service_id, hook = service
    prefetch = chart_prefetch(
        [back_pain()] if conditions is None else conditions,
        observations=observations,
        questionnaire_responses=responses,
    )
    response = call(client, service_id, hook_request(hook, prefetch=prefetch))
    assert response.status_code == 200, response.text
    body = response.json()
    return assert_response_contract(body, hook), body["cards"]


@pytest.mark.parametrize("service", CHART_SERVICES)
def test_screening_card_for_back_pain_without_a_result(client, service) -> None:
    topics, cards = cards_for(client, service=service)
    assert topics == ["startback-screening"]
    card = cards[0]
    assert card["indicator"] == "info"
    assert card["summary"].startswith("Screen with STarT Back")
    assert card["source"]["url"] == "https://www.nice.org.uk/guidance/ng59"
    assert "Keele" in card["detail"] and "non-commercial" in card["detail"]
    app, self_care = card["links"]
    assert app == {
        "label": "Open the STarT Back questionnaire",
        "url": "http://127.0.0.1:8000/apps/startback",
        "type": "smart",
    }
    assert self_care == {
        "label": "Self-care plan for the patient",
        "url": "http://127.0.0.1:8000/apps/self-care",
        "type": "absolute",
    }


def test_screening_task_asks_the_patient_to_complete_the_questionnaire(client_factory) -> None:
    client = client_factory(public_base_url="http://localhost:8123")
    _, cards = cards_for(client, service=CHART_SERVICES[1])
    (suggestion,) = cards[0]["suggestions"]
    (action,) = suggestion["actions"]
    assert action["type"] == "create"
    task = action["resource"]
    Task.model_validate(task)
    canonical = "http://localhost:8123/fhir/Questionnaire/startback"
    assert (task["status"], task["intent"]) == ("requested", "order")
    assert task["focus"]["reference"] == canonical
    assert task["for"] == {"reference": "Patient/pt-1"}
    assert task["owner"] == {"reference": "Patient/pt-1"}
    assert task["encounter"] == {"reference": "Encounter/enc-1"}
    assert task["input"][0]["valueCanonical"] == canonical
    assert task["description"]
    assert {r["code"] for r in cards[0]["overrideReasons"]} >= {"patient-declined"}


@pytest.mark.parametrize(
    ("days", "topic"),
    [(179, "startback-result"), (180, "startback-result"), (181, "startback-screening")],
)
def test_result_window_decides_between_the_two_cards(client, days: int, topic: str) -> None:
    # v2: onset unknown, so only the 180-day window decides (not before the onset: see
    # test_startback_episode.py).
    response = questionnaire_response(answers_for({1, 2, 3, 4}), authored_days_ago=days)
    conditions = [back_pain(onset_days_ago=None)]
    topics, cards = cards_for(client, conditions=conditions, responses=[response])
    assert topics == [topic]  # never both
    if topic == "startback-screening":
        assert "medium risk on" in cards[0]["detail"] and "181 days ago" in cards[0]["detail"]


@pytest.mark.parametrize(
    ("agree", "item9", "risk", "care"),
    [
        ({1, 2, 3}, "Not at all", "low", "advice and self-management"),
        ({1, 2, 3, 4}, "Not at all", "medium", "physiotherapy"),
        ({5, 6, 7}, "Very much", "high", "psychologically informed physiotherapy"),
    ],
)
@pytest.mark.parametrize("service", CHART_SERVICES)
def test_result_card_names_the_risk_group_and_its_matched_care(
    client, service, agree, item9, risk: str, care: str
) -> None:
    response = questionnaire_response(answers_for(agree, item9), authored_days_ago=12)
    # v2: a result counts only from the episode onset on.
    conditions = [back_pain(onset_days_ago=20)]
    topics, cards = cards_for(client, conditions=conditions, responses=[response], service=service)
    assert topics == ["startback-result"]
    card = cards[0]
    # RULES.md "Summaries (v2)": `STarT Back medium risk (12 Nov): physiotherapy` (TODAY - 12).
    assert card["summary"] == f"STarT Back {risk} risk (10 Nov): {care}"
    assert card["source"]["url"] == "https://www.keele.ac.uk/sbst/"
    assert "12 days ago" in card["detail"]
    # v2: medium and high suggest their referral (test_stratified_care.py); low risk gets the
    # self-care plan instead.
    assert ("suggestions" in card) is (risk != "low")


def test_high_risk_detail_describes_combined_physical_and_psychological_care(client) -> None:
    _, cards = cards_for(client, observations=[observation(RISK, risk="high")])
    assert "combined physical and psychological care" in cards[0]["detail"]


def test_total_without_subscale_shows_the_total_and_asks_for_the_subscale(client) -> None:
    topics, cards = cards_for(client, observations=[observation(TOTAL, value=6)])
    assert topics == ["startback-result"]
    card = cards[0]
    assert "6/9" in card["summary"] and "subscale needed" in card["summary"]
    assert not any(f"{g} risk" in card["summary"] for g in ("low", "medium", "high"))
    assert card["links"][0]["type"] == "smart"


def test_total_and_subscale_observations_give_the_risk_group(client) -> None:
    topics, cards = cards_for(
        client, observations=[observation(TOTAL, value=6), observation(SUBSCALE, value=2)]
    )
    assert topics == ["startback-result"]
    # v2 summary: risk, date, care; the figures lead the detail.
    assert cards[0]["summary"] == "STarT Back medium risk (17 Nov): physiotherapy"
    assert "total 6/9, psychosocial 2/5" in cards[0]["detail"]


@pytest.mark.parametrize(
    "conditions",
    [
        [],  # no conditions at all
        [condition(ICD10CM, "J45.909", text="Asthma")],  # not back pain
        [back_pain(verification_status="refuted")],
        [back_pain(clinical_status="resolved")],
    ],
)
def test_no_card_without_back_pain_context(client, conditions) -> None:
    for observations in ([], [observation(RISK, risk="high")]):
        topics, _ = cards_for(client, conditions=conditions, observations=observations)
        assert topics == []


def test_an_in_progress_response_does_not_count_as_screened(client) -> None:
    response = questionnaire_response(answers_for({1}), status="in-progress")
    topics, _ = cards_for(client, responses=[response])
    assert topics == ["startback-screening"]


def test_the_lookback_window_is_a_setting(client_factory) -> None:
    client = client_factory(rules={"startback_lookback_days": 30})
    response = questionnaire_response(answers_for({1}), authored_days_ago=31)
    topics, _ = cards_for(client, responses=[response])
    assert topics == ["startback-screening"]


@pytest.mark.parametrize(
    ("onset_days_ago", "text"),
    [
        (12, "Episode started 12 days ago."),
        (None, "Episode onset unknown: counted as a new episode."),
        (-3, "Episode onset is dated after today: counted as a new episode."),
    ],
)
def test_screening_detail_gives_the_episode_first(client, onset_days_ago, text: str) -> None:
    _, cards = cards_for(client, conditions=[back_pain(onset_days_ago=onset_days_ago)])
    first_paragraph = cards[0]["detail"].split("\n\n")[0]
    assert text in first_paragraph
