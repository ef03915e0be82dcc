"""STarT Back v2 (RULES.md "startback-screening and startback-result", "Summaries (v2)").

- Screening only for a new episode: onset within the last 90 days (an onset exactly 90 days ago
  is "within the last 90 days" and still gets the card; 91 does not) or unknown.
- A result counts when dated within the last 180 days and not before the episode onset.
- An unscorable response is not a result; the screening card names its date and items.
- Summaries follow the v2 patterns and stay under 140 characters.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from cds_service.logic import startback
from cds_service.logic.fhir import QuestionnaireResponse
from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import TODAY, back_pain, chart_prefetch, hook_request
from tests.startback_builders import (
    CHART_SERVICES,
    RISK,
    SUBSCALE,
    TOTAL,
    answers_for,
    observation,
    questionnaire_response,
)

SUMMARY_MAX = 140


def cards_for(
    client: Any,
    *,
    onset_days_ago: int | None,
    observations: list[dict[str, Any]] | None = None,
    responses: list[dict[str, Any]] | None = None,
    service: tuple[str, str] = CHART_SERVICES[0],
) -> tuple[list[str], list[dict[str, Any]]]:
    service_id, hook = service
    prefetch = chart_prefetch(
        [back_pain(onset_days_ago=onset_days_ago)],
        observations=observations,
        questionnaire_responses=responses,
    )
    response = call(client, service_id, hook_request(hook, prefetch=prefetch))
    assert response.status_code == 200, response.text
    body = response.json()
    cards: list[dict[str, Any]] = body["cards"]
    for card in cards:
        assert len(card["summary"]) < SUMMARY_MAX, card["summary"]
    return assert_response_contract(body, hook), cards


def short(on: date) -> str:
    return f"{on.day} {on:%b}"


def ago(days: int) -> date:
    return date.fromordinal(TODAY.toordinal() - days)


# ---- screening only for a new episode ------------------------------------------------------


@pytest.mark.parametrize("service", CHART_SERVICES)
@pytest.mark.parametrize(
    ("onset_days_ago", "screens"),
    [(0, True), (89, True), (90, True), (91, False), (400, False), (None, True), (-3, True)],
)
def test_screening_only_for_a_new_episode(
    client: Any, service: tuple[str, str], onset_days_ago: int | None, screens: bool
) -> None:
    """A chronic episode (onset more than 90 days ago) with no result: no card on either chart
    hook. 90 days is on the "new" side ("within the last 90 days" includes day 90)."""
    topics, _ = cards_for(client, onset_days_ago=onset_days_ago, service=service)
    assert topics == (["startback-screening"] if screens else [])


def test_new_episode_days_is_a_setting(client_factory: Any) -> None:
    client = client_factory(rules={"startback_new_episode_days": 30})
    assert cards_for(client, onset_days_ago=30)[0] == ["startback-screening"]
    assert cards_for(client, onset_days_ago=31)[0] == []


@pytest.mark.parametrize("service", CHART_SERVICES)
def test_chronic_episode_with_a_counting_result_still_shows_the_result(
    client: Any, service: tuple[str, str]
) -> None:
    obs = [observation(RISK, risk="high", days=100)]
    topics, cards = cards_for(client, onset_days_ago=200, observations=obs, service=service)
    assert topics == ["startback-result"]
    assert cards[0]["summary"].startswith("STarT Back high risk")


# ---- a result counts from the episode onset on ---------------------------------------------


@pytest.mark.parametrize("service", CHART_SERVICES)
def test_result_before_the_onset_does_not_count(client: Any, service: tuple[str, str]) -> None:
    """A result from before the onset belongs to an earlier episode: this episode is new and
    unscreened, so the screening card fires and says why the old result does not count."""
    obs = [observation(RISK, risk="medium", days=40)]
    topics, cards = cards_for(client, onset_days_ago=30, observations=obs, service=service)
    assert topics == ["startback-screening"]
    first = cards[0]["detail"].split("\n\n")[0]
    assert "Last result: medium risk on" in first and "before this episode's onset" in first


def test_questionnaire_response_before_the_onset_does_not_count(client: Any) -> None:
    response = questionnaire_response(answers_for({1, 2, 3, 4}), authored_days_ago=31)
    topics, _ = cards_for(client, onset_days_ago=30, responses=[response])
    assert topics == ["startback-screening"]


def test_result_on_the_onset_day_counts(client: Any) -> None:
    obs = [observation(RISK, risk="low", days=30)]
    assert cards_for(client, onset_days_ago=30, observations=obs)[0] == ["startback-result"]


def test_result_before_the_onset_of_a_chronic_episode_gives_no_card(client: Any) -> None:
    obs = [observation(RISK, risk="low", days=150)]
    assert cards_for(client, onset_days_ago=120, observations=obs)[0] == []


def test_newest_counting_result_is_used(client: Any) -> None:
    obs = [
        observation(RISK, risk="high", days=2, status="entered-in-error"),
        observation(RISK, risk="low", days=20),
        observation(RISK, risk="medium", days=50),  # before the onset
    ]
    topics, cards = cards_for(client, onset_days_ago=30, observations=obs)
    assert topics == ["startback-result"]
    assert (
        cards[0]["summary"] == f"STarT Back low risk ({short(ago(20))}): advice and self-management"
    )


# ---- an unscorable response is named ---------------------------------------------------------


def test_unscorable_response_is_named_in_the_screening_card(client: Any) -> None:
    answers: dict[int, dict[str, Any] | None] = dict(answers_for({1, 2}))
    answers[3] = {"valueString": "perhaps"}  # unreadable
    answers[9] = None  # item present, no answer
    del answers[7]  # item absent
    response = questionnaire_response(answers, authored_days_ago=6)
    for service in CHART_SERVICES:
        topics, cards = cards_for(client, onset_days_ago=20, responses=[response], service=service)
        assert topics == ["startback-screening"]
        detail = cards[0]["detail"]
        assert f"A STarT Back response from {ago(6).isoformat()} could not be scored" in detail
        assert "items 7 and 9 not answered" in detail
        assert "item 3 with an unreadable answer" in detail


def test_unscorable_response_is_not_a_result_and_a_chronic_episode_stays_silent(
    client: Any,
) -> None:
    answers: dict[int, dict[str, Any] | None] = dict(answers_for({1}))
    del answers[5]
    response = questionnaire_response(answers, authored_days_ago=6)
    assert cards_for(client, onset_days_ago=200, responses=[response])[0] == []


def test_unscorable_response_beside_a_counting_result_gives_the_result(client: Any) -> None:
    answers: dict[int, dict[str, Any] | None] = dict(answers_for({1}))
    del answers[5]
    broken = questionnaire_response(answers, authored_days_ago=2)
    good = questionnaire_response(answers_for({1, 2, 3, 4}), authored_days_ago=8)
    topics, cards = cards_for(client, onset_days_ago=20, responses=[broken, good])
    assert topics == ["startback-result"]
    assert "medium risk" in cards[0]["summary"]


def test_unscorable_response_before_the_onset_is_not_mentioned(client: Any) -> None:
    answers: dict[int, dict[str, Any] | None] = dict(answers_for({1}))
    del answers[5]
    response = questionnaire_response(answers, authored_days_ago=40)
    topics, cards = cards_for(client, onset_days_ago=20, responses=[response])
    assert topics == ["startback-screening"]
    assert "could not be scored" not in cards[0]["detail"]


# ---- summaries (v2) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("onset_days_ago", "summary"),
    [
        (12, "Screen with STarT Back: day 12 of this back pain episode"),
        (None, "Screen with STarT Back: new back pain episode, onset unknown"),
        (-3, "Screen with STarT Back: new back pain episode, onset dated after today"),
    ],
)
def test_screening_summary(client: Any, onset_days_ago: int | None, summary: str) -> None:
    _, cards = cards_for(client, onset_days_ago=onset_days_ago)
    assert cards[0]["summary"] == summary


@pytest.mark.parametrize(
    ("risk", "care"),
    [
        ("low", "advice and self-management"),
        ("medium", "physiotherapy"),
        ("high", "psychologically informed physiotherapy"),
    ],
)
def test_result_summary(client: Any, risk: str, care: str) -> None:
    obs = [observation(RISK, risk=risk, days=10)]
    _, cards = cards_for(client, onset_days_ago=30, observations=obs)
    assert cards[0]["summary"] == f"STarT Back {risk} risk ({short(ago(10))}): {care}"
    assert (
        cards[0]["summary"]
        == {
            "low": "STarT Back low risk (12 Nov): advice and self-management",
            "medium": "STarT Back medium risk (12 Nov): physiotherapy",
            "high": "STarT Back high risk (12 Nov): psychologically informed physiotherapy",
        }[risk]
    )


def test_total_without_subscale_summary(client: Any) -> None:
    obs = [observation(TOTAL, value=7, days=10)]
    _, cards = cards_for(client, onset_days_ago=30, observations=obs)
    assert cards[0]["summary"] == (
        "STarT Back total 7/9 (12 Nov): psychosocial subscale needed for a risk group"
    )


def test_result_detail_still_leads_with_the_figures(client: Any) -> None:
    obs = [observation(TOTAL, value=6, days=10), observation(SUBSCALE, value=2, days=10)]
    _, cards = cards_for(client, onset_days_ago=30, observations=obs)
    assert cards[0]["detail"].startswith("**Medium risk** on 2026-11-12, 10 days ago: total 6/9")


# ---- logic ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result_days_ago", "onset_days_ago", "expected"),
    [
        (180, None, True),
        (181, None, False),
        (-1, None, True),  # one day ahead (a timezone ahead of the service)
        (-2, None, False),
        (30, 30, True),  # on the onset day
        (31, 30, False),  # before the onset: an earlier episode
        (0, -3, True),  # an onset dated after today is read as today
    ],
)
def test_counts(result_days_ago: int, onset_days_ago: int | None, expected: bool) -> None:
    onset = None if onset_days_ago is None else ago(onset_days_ago)
    assert startback.counts(ago(result_days_ago), TODAY, 180, onset) is expected


def test_read_items_names_missing_and_unreadable_items() -> None:
    answers: dict[int, dict[str, Any] | None] = dict(answers_for({1}))
    answers[2] = {"valueInteger": 7}
    answers[4] = None
    del answers[8]
    response = QuestionnaireResponse.model_validate(questionnaire_response(answers))
    items = startback.read_items(response)
    assert (items.missing, items.unreadable) == ((4, 8), (2,))
    assert startback.score_response(response) is None
