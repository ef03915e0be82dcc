"""STarT Back scoring and reading results from the record (pure logic, boundaries in/out)."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.logic.fhir import Observation, QuestionnaireResponse
from cds_service.logic.startback import (
    ResultSource,
    RiskGroup,
    is_startback_response,
    latest_result,
    risk_group,
    score_items,
    score_response,
)
from tests.factories import LOINC, TODAY
from tests.startback_builders import (
    ANSWER_SYSTEM,
    ITEM_CODES,
    RISK,
    SUBSCALE,
    TOTAL,
    answers_for,
    observation,
    questionnaire_response,
)

LOOKBACK = 180


def qr(raw: dict[str, Any]) -> QuestionnaireResponse:
    return QuestionnaireResponse.model_validate(raw)


def latest(
    observations: list[dict[str, Any]] | None = None,
    responses: list[dict[str, Any]] | None = None,
):
    return latest_result(
        [Observation.model_validate(o) for o in observations or []],
        [qr(r) for r in responses or []],
        TODAY,
        LOOKBACK,
    )


@pytest.mark.parametrize(
    ("total", "subscale", "expected"),
    [
        (3, 3, RiskGroup.LOW),  # total 3: low
        (4, 3, RiskGroup.MEDIUM),  # total 4, subscale 3: medium
        (4, 4, RiskGroup.HIGH),  # subscale 4: high
        (9, 3, RiskGroup.MEDIUM),
        (0, 0, RiskGroup.LOW),
        (9, 5, RiskGroup.HIGH),
        (3, None, RiskGroup.LOW),  # a total <= 3 needs no subscale
        (4, None, None),  # total >= 4 without subscale: undecided
        (None, 4, RiskGroup.HIGH),
        (None, 3, None),
    ],
)
def test_risk_group_boundaries(total, subscale, expected) -> None:
    assert risk_group(total, subscale) is expected


@pytest.mark.parametrize(
    ("agree", "item9", "total", "subscale", "risk"),
    [
        ({1, 2, 3}, "Not at all", 3, 0, RiskGroup.LOW),  # total 3 in
        ({1, 2, 3, 4}, "Not at all", 4, 0, RiskGroup.MEDIUM),  # total 4 out of low
        ({1, 5, 6, 7}, "Not at all", 4, 3, RiskGroup.MEDIUM),  # subscale 3: not high
        ({5, 6, 7, 8}, "Not at all", 4, 4, RiskGroup.HIGH),  # subscale 4: high
        ({5, 6, 7}, "Very much", 4, 4, RiskGroup.HIGH),  # item 9 "Very much" scores 1
        ({5, 6, 7}, "Extremely", 4, 4, RiskGroup.HIGH),
        ({5, 6, 7}, "Moderately", 3, 3, RiskGroup.LOW),  # "Moderately" scores 0
        ({5, 6, 7}, "Slightly", 3, 3, RiskGroup.LOW),
        (set(range(1, 9)), "Extremely", 9, 5, RiskGroup.HIGH),
        (set(), "Not at all", 0, 0, RiskGroup.LOW),
    ],
)
def test_questionnaire_response_scores(agree, item9, total, subscale, risk) -> None:
    score = score_response(qr(questionnaire_response(answers_for(agree, item9))))
    assert score is not None
    assert (score.total, score.subscale, score.risk) == (total, subscale, risk)


def test_score_items_needs_all_nine_items_scored_0_or_1() -> None:
    scores = dict.fromkeys(ITEM_CODES, 1)
    assert score_items(scores).total == 9
    with pytest.raises(ValueError, match="all 9 items"):
        score_items(dict.fromkeys(ITEM_CODES[:8], 1))
    with pytest.raises(ValueError, match="0 or 1"):
        score_items({**scores, ITEM_CODES[0]: 2})


@pytest.mark.parametrize(
    ("answer", "scores_one"),
    [
        ({"valueCoding": {"display": "AGREE"}}, True),  # display, any case, no system
        ({"valueCoding": {"code": "disagree"}}, False),  # code text
        ({"valueCoding": {"system": LOINC, "code": "LA33-6"}}, True),  # LOINC Yes by code
        ({"valueCoding": {"system": LOINC, "code": "LA32-8"}}, False),  # LOINC No by code
        ({"valueCoding": {"display": "yes"}}, True),
        ({"valueBoolean": True}, True),
        ({"valueBoolean": False}, False),
        ({"valueInteger": 1}, True),
        ({"valueInteger": 0}, False),
    ],
)
def test_answer_forms(answer, scores_one: bool) -> None:
    answers = answers_for(set())
    answers[1] = answer
    score = score_response(qr(questionnaire_response(answers)))
    assert score is not None
    assert score.total == (1 if scores_one else 0)


@pytest.mark.parametrize(
    "answer",
    [
        {"valueInteger": 2},  # not an item score
        {"valueCoding": {"system": ANSWER_SYSTEM, "code": "maybe"}},
        {"valueString": "perhaps"},
        None,  # unanswered
    ],
)
def test_an_unreadable_or_missing_item_leaves_the_response_unscored(answer) -> None:
    answers: dict[int, Any] = answers_for({1, 2})
    answers[4] = answer
    assert score_response(qr(questionnaire_response(answers))) is None


def test_item_9_five_point_words_in_code_form() -> None:
    answers = answers_for({5, 6, 7})
    answers[9] = {"valueCoding": {"code": "very_much"}}
    score = score_response(qr(questionnaire_response(answers)))
    assert score is not None and score.subscale == 4


@pytest.mark.parametrize(
    ("questionnaire", "link_ids", "expected"),
    [
        ("http://loinc.org/q/91349-1", [f"/{c}" for c in ITEM_CODES], True),
        ("https://cds.example.org/fhir/Questionnaire/startback|1.0.0", ITEM_CODES, True),
        (None, ITEM_CODES, True),  # linkIds are the item codes
        ("http://loinc.org/q/91349-1", [f"q{n}" for n in range(1, 10)], True),
        ("http://loinc.org/q/44249-1", [f"q{n}" for n in range(1, 10)], False),  # PHQ-9
        (None, [f"q{n}" for n in range(1, 10)], False),
    ],
)
def test_which_responses_are_startback(questionnaire, link_ids, expected: bool) -> None:
    raw = questionnaire_response(answers_for({1}), questionnaire=questionnaire, link_ids=link_ids)
    assert is_startback_response(qr(raw)) is expected


def test_item_definition_names_the_item_when_link_ids_are_local() -> None:
    raw = questionnaire_response(
        answers_for({5, 6, 7, 8}), questionnaire=None, link_ids=[f"q{n}" for n in range(1, 10)]
    )
    for item, code in zip(raw["item"], ITEM_CODES, strict=True):
        item["definition"] = f"http://loinc.org#{code}"
    score = score_response(qr(raw))
    assert score is not None and score.risk is RiskGroup.HIGH


def test_nested_group_items_are_read() -> None:
    raw = questionnaire_response(answers_for({1, 2, 3, 4}))
    raw["item"] = [{"linkId": "/91349-1", "item": raw["item"]}]
    score = score_response(qr(raw))
    assert score is not None and score.total == 4


# ---- the 180-day window ------------------------------------------------------------------


@pytest.mark.parametrize(("days", "found"), [(179, True), (180, True), (181, False), (0, True)])
def test_questionnaire_response_window(days: int, found: bool) -> None:
    raw = questionnaire_response(answers_for({1, 2, 3, 4}), authored_days_ago=days)
    result = latest(responses=[raw])
    assert (result is not None) is found
    if result:
        assert result.source is ResultSource.QUESTIONNAIRE_RESPONSE
        assert result.risk is RiskGroup.MEDIUM


@pytest.mark.parametrize(("days", "found"), [(179, True), (180, True), (181, False)])
def test_observation_window(days: int, found: bool) -> None:
    result = latest(observations=[observation(RISK, days=days, risk="low")])
    assert (result is not None) is found


@pytest.mark.parametrize(("days", "found"), [(-1, True), (-2, False)])
def test_a_result_dated_tomorrow_counts_for_timezones_but_not_later(days: int, found) -> None:
    result = latest(observations=[observation(RISK, days=days, risk="high")])
    assert (result is not None) is found


@pytest.mark.parametrize(
    ("status", "counted"),
    [
        ("completed", True),
        ("amended", True),
        ("in-progress", False),
        ("stopped", False),
        ("entered-in-error", False),
    ],
)
def test_only_completed_or_amended_responses_count(status: str, counted: bool) -> None:
    raw = questionnaire_response(answers_for({1}), status=status)
    assert (latest(responses=[raw]) is not None) is counted


# ---- Observations ------------------------------------------------------------------------


@pytest.mark.parametrize("group", ["low", "medium", "high"])
def test_risk_observation_by_answer_code(group: str) -> None:
    result = latest(observations=[observation(RISK, risk=group)])
    assert result is not None and result.risk == RiskGroup(group)
    assert result.total is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("High risk", RiskGroup.HIGH), ("low", RiskGroup.LOW), ("Medium", RiskGroup.MEDIUM)],
)
def test_risk_observation_by_text(text: str, expected: RiskGroup) -> None:
    result = latest(observations=[observation(RISK, text=text)])
    assert result is not None and result.risk is expected


def test_total_and_subscale_observations_of_one_day_are_one_result() -> None:
    result = latest(
        observations=[observation(TOTAL, days=3, value=5), observation(SUBSCALE, days=3, value=4)]
    )
    assert result is not None
    assert (result.total, result.subscale, result.risk) == (5, 4, RiskGroup.HIGH)


@pytest.mark.parametrize(("total", "risk"), [(3, RiskGroup.LOW), (4, None)])
def test_total_alone_decides_only_low_risk(total: int, risk) -> None:
    result = latest(observations=[observation(TOTAL, value=total)])
    assert result is not None
    assert result.total == total and result.subscale is None and result.risk is risk


def test_a_subscale_alone_is_not_a_result() -> None:
    assert latest(observations=[observation(SUBSCALE, value=2)]) is None


def test_panel_observation_with_components() -> None:
    components = [
        {"code": {"coding": [{"system": LOINC, "code": TOTAL}]}, "valueInteger": 6},
        {"code": {"coding": [{"system": LOINC, "code": SUBSCALE}]}, "valueInteger": 2},
    ]
    result = latest(observations=[observation("91349-1", components=components)])
    assert result is not None
    assert (result.total, result.subscale, result.risk) == (6, 2, RiskGroup.MEDIUM)


@pytest.mark.parametrize(
    ("status", "counted"),
    [("final", True), ("amended", True), ("entered-in-error", False), ("cancelled", False)],
)
def test_observation_status(status: str, counted: bool) -> None:
    assert (
        latest(observations=[observation(RISK, risk="low", status=status)]) is not None
    ) is counted


@pytest.mark.parametrize(
    "value",
    [{"valueInteger": 10}, {"valueInteger": -1}, {"valueQuantity": {"value": 2.5}}]
    + [{"valueQuantity": {"value": v}} for v in ("nan", "inf", "-inf", "x")]
    + [{"valueString": v} for v in ("NaN", "1e400", "seven")],
)
def test_unusable_scores_are_ignored(value: dict[str, Any]) -> None:
    obs = observation(TOTAL)
    obs.update(value)
    assert latest(observations=[obs]) is None


@pytest.mark.parametrize(
    "value", [{"valueQuantity": {"value": 5, "unit": "{score}"}}, {"valueString": " 5 "}]
)
def test_scores_as_quantity_or_text(value: dict[str, Any]) -> None:
    obs = observation(TOTAL)
    obs.update(value)
    result = latest(observations=[obs])
    assert result is not None and result.total == 5


def test_an_observation_without_a_date_cannot_be_placed_in_the_window() -> None:
    assert latest(observations=[observation(RISK, days=None, risk="high")]) is None


def test_the_most_recent_result_wins() -> None:
    result = latest(
        observations=[observation(RISK, days=100, risk="high")],
        responses=[questionnaire_response(answers_for({1}), authored_days_ago=10)],
    )
    assert result is not None and result.risk is RiskGroup.LOW
    older_response = latest(
        observations=[observation(RISK, days=10, risk="high")],
        responses=[questionnaire_response(answers_for({1}), authored_days_ago=100)],
    )
    assert older_response is not None and older_response.risk is RiskGroup.HIGH
