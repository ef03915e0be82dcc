"""Audit scenarios for the chart hooks and the external contract.

Written from /work/shared/design/RULES.md and CONTRACT.md only (black box): STarT Back screening
and result cards, muscle-relaxant-duration on the chart hooks, back-pain context, the error table,
feedback, discovery, CORS and the card contract across the four services.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import call
from tests.contract import assert_no_empty_values, assert_response_contract
from tests.factories import (
    CPT,
    FHIR_BASE,
    ICD10CM,
    LOINC,
    PATIENT_ID,
    RXNORM,
    SNOMED,
    TODAY,
    back_pain,
    bundle,
    condition,
    days_ago,
    hook_request,
    next_id,
    patient,
    service_request,
)
from tests.jwt_helpers import UNREAD_ISSUERS

CHART_HOOKS = [
    ("patient-view", "lbp-patient-view"),
    ("encounter-start", "lbp-encounter-start"),
]
ORDER_HOOKS = [
    ("order-select", "lbp-order-select"),
    ("order-sign", "lbp-order-sign"),
]
ALL_HOOKS = CHART_HOOKS + ORDER_HOOKS
UCUM = "http://unitsofmeasure.org"
LOINC_Q = "http://loinc.org/q/91349-1"
ITEM_CODES = [
    "91340-0",
    "91341-8",
    "91342-6",
    "91343-4",
    "91344-2",
    "91345-9",
    "91346-7",
    "91347-5",
    "91348-3",
]
RISK_CODES = {"low": "LA9194-7", "medium": "LA8982-6", "high": "LA9193-9"}
RISK_DISPLAY = {"low": "Low", "medium": "Medium", "high": "High"}
ANSWER_SYSTEM = "http://example-ehr.org/fhir/CodeSystem/startback-answers"


# ---------------------------------------------------------------------------------------------
# Builders (as an EHR would send them)
# ---------------------------------------------------------------------------------------------


def chart_prefetch(
    conditions: list[dict[str, Any]] | None = None,
    *,
    age: int = 45,
    observations: list[dict[str, Any]] | None = None,
    medication_requests: list[dict[str, Any]] | None = None,
    questionnaire_responses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "patient": patient(age),
        "conditions": bundle(conditions or []),
        "startbackObservations": bundle(observations or []),
        "medicationRequests": bundle(medication_requests or []),
        "questionnaireResponses": bundle(questionnaire_responses or []),
        "encounters": bundle([]),
    }


def order_prefetch(
    conditions: list[dict[str, Any]] | None = None,
    *,
    age: int = 45,
    medication_requests: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "patient": patient(age),
        "conditions": bundle(conditions or []),
        "temperatureObservations": bundle([]),
        "medicationRequests": bundle(medication_requests or []),
        "procedures": bundle([]),
        "questionnaireResponses": bundle([]),
        "encounters": bundle([]),
    }


def icd_condition(code: str, display: str | None = None, **kwargs: Any) -> dict[str, Any]:
    out = condition(ICD10CM, code, **kwargs)
    if display:
        out["code"]["coding"][0]["display"] = display
        out["code"]["text"] = display
    return out


def _obs_base(code: str, display: str, days: int | None, status: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Observation",
        "id": next_id("obs"),
        "status": status,
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                        "display": "Survey",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }
    if days is not None:
        out["effectiveDateTime"] = days_ago(days)
    return out


def risk_obs(level: str, days: int | None = 10, status: str = "final") -> dict[str, Any]:
    out = _obs_base("91352-5", "STarT Back Screening Tool risk level", days, status)
    out["valueCodeableConcept"] = {
        "coding": [{"system": LOINC, "code": RISK_CODES[level], "display": RISK_DISPLAY[level]}],
        "text": RISK_DISPLAY[level],
    }
    return out


def score_obs(code: str, value: int, days: int = 10, *, quantity: bool = False) -> dict[str, Any]:
    display = "Total score [STarT Back]" if code == "91351-7" else "Distress subscore [STarT Back]"
    out = _obs_base(code, display, days, "final")
    if quantity:
        out["valueQuantity"] = {
            "value": value,
            "unit": "{score}",
            "system": UCUM,
            "code": "{score}",
        }
    else:
        out["valueInteger"] = value
    return out


def agree(yes: bool) -> dict[str, Any]:
    text = "Agree" if yes else "Disagree"
    return {"valueCoding": {"system": ANSWER_SYSTEM, "code": text.lower(), "display": text}}


def bother(text: str) -> dict[str, Any]:
    return {
        "valueCoding": {
            "system": ANSWER_SYSTEM,
            "code": text.lower().replace(" ", "-"),
            "display": text,
        }
    }


def answers_for(agreed: set[int], item9: str = "Not at all") -> dict[int, dict[str, Any]]:
    """Items 1-8 Agree when their number is in `agreed`, Disagree otherwise; item 9 as given."""
    out = {n: agree(n in agreed) for n in range(1, 9)}
    out[9] = bother(item9)
    return out


def questionnaire_response(
    answers: dict[int, dict[str, Any]],
    *,
    days: int = 10,
    status: str = "completed",
    questionnaire: str | None = LOINC_Q,
    link_ids: list[str] | None = None,
    definitions: bool = False,
    nested: bool = False,
) -> dict[str, Any]:
    items = []
    for n in range(1, 10):
        if n not in answers:
            continue
        item: dict[str, Any] = {
            "linkId": (link_ids or ITEM_CODES)[n - 1],
            "text": f"STarT Back item {n}",
            "answer": [answers[n]],
        }
        if definitions:
            item["definition"] = f"http://loinc.org/{ITEM_CODES[n - 1]}"
        items.append(item)
    out: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": next_id("qr"),
        "status": status,
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authored": days_ago(days) + "T09:30:00Z",
        "item": [{"linkId": "91349-1", "text": "STarT Back", "item": items}] if nested else items,
    }
    if questionnaire:
        out["questionnaire"] = questionnaire
    return out


def med_request(
    code: str | None,
    display: str,
    *,
    status: str = "active",
    authored_days_ago: int | None = 30,
    authored_on: str | None = None,
    intent: str = "order",
    supply_days: int = 30,
    repeats: int = 0,
    per_day: int = 3,
    dose: float = 1,
    system: str = RXNORM,
    text: str | None = None,
    order_id: str | None = None,
) -> dict[str, Any]:
    concept: dict[str, Any] = {"text": text or display}
    if code:
        concept["coding"] = [{"system": system, "code": code, "display": display}]
    out: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": order_id or next_id("mr"),
        "status": status,
        "intent": intent,
        "medicationCodeableConcept": concept,
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "requester": {"reference": "Practitioner/dr-1"},
        "dosageInstruction": [
            {
                "text": f"{dose:g} tablet by mouth {per_day} times a day",
                "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                "route": {
                    "coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}]
                },
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": dose,
                            "unit": "tablet",
                            "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
                            "code": "TAB",
                        }
                    }
                ],
            }
        ],
        "dispenseRequest": {
            "numberOfRepeatsAllowed": repeats,
            "quantity": {"value": supply_days * per_day * dose, "unit": "tablet"},
            "expectedSupplyDuration": {
                "value": supply_days,
                "unit": "days",
                "system": UCUM,
                "code": "d",
            },
        },
    }
    if authored_on:
        out["authoredOn"] = authored_on
    elif authored_days_ago is not None:
        out["authoredOn"] = days_ago(authored_days_ago)
    return out


def cyclobenzaprine(**kwargs: Any) -> dict[str, Any]:
    return med_request("828348", "cyclobenzaprine hydrochloride 10 MG Oral Tablet", **kwargs)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def run(
    client: TestClient, hook: str, service: str, prefetch: dict[str, Any], **kw: Any
) -> tuple[list[str], dict[str, Any]]:
    resp = call(client, service, hook_request(hook, prefetch=prefetch, **kw))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    topics = assert_response_contract(body, hook)
    return topics, body


def card_of(body: dict[str, Any], topic: str) -> dict[str, Any]:
    cards = [c for c in body["cards"] if c["source"]["topic"]["code"] == topic]
    assert len(cards) == 1, [c["source"]["topic"]["code"] for c in body["cards"]]
    return cards[0]


def text_of(card: dict[str, Any]) -> str:
    return (card["summary"] + "\n" + card.get("detail", "")).lower()


def assert_risk(card: dict[str, Any], level: str) -> None:
    summary = card["summary"].lower()
    assert f"{level} risk" in summary, card["summary"]
    others = {"low", "medium", "high"} - {level}
    for other in others:
        assert f"{other} risk" not in summary, card["summary"]
    text = text_of(card)
    if level == "low":
        assert "self-management" in text and "reassurance" in text and "advice" in text
    elif level == "medium":
        assert "physiotherapy" in text
    else:
        assert "psychologically informed" in text or "psychological" in text


def assert_keele_notice(card: dict[str, Any]) -> None:
    text = text_of(card)
    assert "keele" in text
    assert "non-commercial" in text
    assert "licence" in text or "license" in text


def assert_operation_outcome(resp: httpx.Response, status: int, field: str | None = None) -> None:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"], body
    for issue in body["issue"]:
        assert issue["severity"] and issue["code"]
    assert_no_empty_values(body)
    if field:
        blob = json.dumps(body["issue"])
        assert re.search(rf"(?<![A-Za-z]){re.escape(field)}(?![A-Za-z])", blob), (field, blob)


def service_canonical(client: TestClient) -> str:
    """The service's own STarT Back Questionnaire canonical, as the screening card's Task names it."""
    _, body = run(client, "patient-view", "lbp-patient-view", chart_prefetch([back_pain()]))
    task = card_of(body, "startback-screening")["suggestions"][0]["actions"][0]["resource"]
    return task["input"][0]["valueCanonical"]


# ---------------------------------------------------------------------------------------------
# startback-screening
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("hook", "service"), CHART_HOOKS)
def test_screening_card_typical(client: TestClient, hook: str, service: str) -> None:
    topics, body = run(client, hook, service, chart_prefetch([back_pain(onset_days_ago=10)]))
    assert topics == ["startback-screening"]
    card = card_of(body, "startback-screening")
    assert card["indicator"] == "info"
    assert "Screen with STarT Back" in card["summary"]
    assert card["source"]["url"].startswith("https://")
    assert card["source"]["topic"] == {
        "system": "urn:lbp-cds:card-topic",
        "code": "startback-screening",
    }
    # link to the questionnaire app
    assert card["links"], card
    assert any(
        "start" in (lk["label"] + lk["url"]).lower() and lk["url"].startswith("http")
        for lk in card["links"]
    )
    # suggestion that creates a Task to complete it
    creates = [
        a
        for s in card["suggestions"]
        for a in s.get("actions", [])
        if a["type"] == "create" and a["resource"]["resourceType"] == "Task"
    ]
    assert len(creates) == 1
    task = creates[0]["resource"]
    assert task["status"] and task["intent"]
    assert task["for"]["reference"] == f"Patient/{PATIENT_ID}"
    assert card["selectionBehavior"] in ("at-most-one", "any")
    assert card["overrideReasons"]
    assert all(r["display"] for r in card["overrideReasons"])
    assert_keele_notice(card)


def test_screening_card_when_only_other_questionnaires_exist(client: TestClient) -> None:
    phq = {
        "resourceType": "QuestionnaireResponse",
        "id": "qr-phq9",
        "status": "completed",
        "questionnaire": "http://loinc.org/q/44249-1",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authored": days_ago(5),
        "item": [
            {"linkId": "44250-9", "answer": [{"valueCoding": {"code": "LA6568-5"}}]},
            {"linkId": "44255-8", "answer": [{"valueCoding": {"code": "LA6568-5"}}]},
        ],
    }
    bp = {
        **_obs_base("85354-9", "Blood pressure panel", 3, "final"),
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
    }
    topics, _ = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain()], questionnaire_responses=[phq], observations=[bp]),
    )
    assert topics == ["startback-screening"]


def test_no_back_pain_no_cards_even_without_startback(client: TestClient) -> None:
    prefetch = chart_prefetch(
        [icd_condition("I10", "Essential (primary) hypertension", onset_days_ago=400)],
        medication_requests=[cyclobenzaprine(authored_days_ago=60)],
    )
    for hook, service in CHART_HOOKS:
        resp = call(client, service, hook_request(hook, prefetch=prefetch))
        assert resp.status_code == 200
        assert resp.json() == {"cards": []}


def test_no_conditions_at_all_returns_empty_cards(client: TestClient) -> None:
    resp = call(client, "lbp-patient-view", hook_request("patient-view", prefetch=chart_prefetch()))
    assert resp.json() == {"cards": []}


# ---------------------------------------------------------------------------------------------
# startback-result from Observations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("hook", "service"), CHART_HOOKS)
@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_result_card_from_risk_observation(
    client: TestClient, hook: str, service: str, level: str
) -> None:
    topics, body = run(
        client, hook, service, chart_prefetch([back_pain()], observations=[risk_obs(level)])
    )
    assert topics == ["startback-result"]
    card = card_of(body, "startback-result")
    assert card["indicator"] == "info"
    assert card["source"]["topic"]["system"] == "urn:lbp-cds:card-topic"
    assert_risk(card, level)
    assert_keele_notice(card)


@pytest.mark.parametrize(
    ("total", "subscale", "level"),
    [
        (3, 0, "low"),
        (3, 3, "low"),  # subscale 3 with total 3: low
        (4, 3, "medium"),  # total boundary 4, subscale 3
        (4, 0, "medium"),
        (4, 4, "high"),  # subscale boundary 4
        (5, 4, "high"),
        (9, 5, "high"),
        (0, 0, "low"),
    ],
)
def test_result_from_total_and_subscale_observations(
    client: TestClient, total: int, subscale: int, level: str
) -> None:
    obs = [score_obs("91351-7", total), score_obs("91350-9", subscale)]
    topics, body = run(
        client, "patient-view", "lbp-patient-view", chart_prefetch([back_pain()], observations=obs)
    )
    assert topics == ["startback-result"]
    assert_risk(card_of(body, "startback-result"), level)


def test_result_from_total_and_subscale_as_value_quantity(client: TestClient) -> None:
    obs = [score_obs("91351-7", 6, quantity=True), score_obs("91350-9", 4, quantity=True)]
    topics, body = run(
        client, "patient-view", "lbp-patient-view", chart_prefetch([back_pain()], observations=obs)
    )
    assert topics == ["startback-result"]
    assert_risk(card_of(body, "startback-result"), "high")


@pytest.mark.parametrize("total", [0, 3])
def test_total_at_most_3_without_subscale_is_low(client: TestClient, total: int) -> None:
    topics, body = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain()], observations=[score_obs("91351-7", total)]),
    )
    assert topics == ["startback-result"]
    assert_risk(card_of(body, "startback-result"), "low")


@pytest.mark.parametrize("total", [4, 7])
def test_total_4_or_more_without_subscale_asks_for_subscale(client: TestClient, total: int) -> None:
    topics, body = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain()], observations=[score_obs("91351-7", total)]),
    )
    assert topics == ["startback-result"]
    card = card_of(body, "startback-result")
    assert card["indicator"] == "info"
    text = text_of(card)
    assert str(total) in card["summary"] + card.get("detail", "")
    assert "subscale" in text
    summary = card["summary"].lower()
    assert "medium risk" not in summary and "high risk" not in summary and "low risk" not in summary


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (0, "startback-result"),
        (179, "startback-result"),
        (180, "startback-result"),
        (181, "startback-screening"),
        (400, "startback-screening"),
    ],
)
def test_observation_result_window_180_days(client: TestClient, days: int, expected: str) -> None:
    # v2: onset unknown, so only the 180-day window decides (a result before a known onset
    # does not count; see test_result_before_onset_does_not_count).
    topics, _ = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch(
            [back_pain(onset_days_ago=None)], observations=[risk_obs("medium", days=days)]
        ),
    )
    assert topics == [expected]


def test_observation_effective_period_start_is_used(client: TestClient) -> None:
    old = risk_obs("low", days=None)
    old["effectivePeriod"] = {"start": days_ago(200), "end": days_ago(200)}
    recent = risk_obs("low", days=None)
    recent["effectivePeriod"] = {"start": days_ago(20)}
    topics, _ = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain(onset_days_ago=None)], observations=[old]),
    )
    assert topics == ["startback-screening"]
    topics, _ = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain(onset_days_ago=30)], observations=[recent]),
    )
    assert topics == ["startback-result"]


def test_observation_entered_in_error_is_not_a_result(client: TestClient) -> None:
    topics, _ = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain()], observations=[risk_obs("high", status="entered-in-error")]),
    )
    assert topics == ["startback-screening"]


def test_amended_observation_counts(client: TestClient) -> None:
    topics, body = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain()], observations=[risk_obs("high", status="amended")]),
    )
    assert topics == ["startback-result"]
    assert_risk(card_of(body, "startback-result"), "high")


def test_most_recent_result_wins_and_one_card_only(client: TestClient) -> None:
    obs = [risk_obs("high", days=120), risk_obs("low", days=5), risk_obs("medium", days=60)]
    topics, body = run(
        client, "patient-view", "lbp-patient-view", chart_prefetch([back_pain()], observations=obs)
    )
    assert topics == ["startback-result"]
    assert_risk(card_of(body, "startback-result"), "low")


def test_old_result_outside_window_and_recent_result(client: TestClient) -> None:
    obs = [risk_obs("high", days=300), risk_obs("medium", days=30)]
    prefetch = chart_prefetch([back_pain(onset_days_ago=40)], observations=obs)
    topics, body = run(client, "patient-view", "lbp-patient-view", prefetch)
    assert topics == ["startback-result"]
    assert_risk(card_of(body, "startback-result"), "medium")


def test_result_without_back_pain_context_gives_no_card(client: TestClient) -> None:
    resp = call(
        client,
        "lbp-patient-view",
        hook_request(
            "patient-view",
            prefetch=chart_prefetch(
                [icd_condition("M54.2", "Cervicalgia")], observations=[risk_obs("high")]
            ),
        ),
    )
    assert resp.json() == {"cards": []}


# ---------------------------------------------------------------------------------------------
# startback-result from QuestionnaireResponses scored by the service
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agreed", "item9", "level"),
    [
        ({1, 2, 3}, "Moderately", "low"),  # total 3, subscale 0
        ({5, 6, 7}, "Moderately", "low"),  # total 3, subscale 3
        ({1, 2, 3, 4}, "Not at all", "medium"),  # total 4, subscale 0
        ({4, 5, 6, 7}, "Slightly", "medium"),  # total 4, subscale 3
        ({5, 6, 7}, "Very much", "high"),  # total 4, subscale 4
        ({5, 6, 7, 8}, "Not at all", "high"),  # total 4, subscale 4
        ({1, 5, 6, 7}, "Extremely", "high"),  # total 5, subscale 4
        ({1, 2, 3, 4, 5, 6, 7, 8}, "Extremely", "high"),  # 9 / 5
        (set(), "Not at all", "low"),  # 0 / 0
    ],
)
def test_questionnaire_response_scoring(
    client: TestClient, agreed: set[int], item9: str, level: str
) -> None:
    qr = questionnaire_response(answers_for(agreed, item9))
    topics, body = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain()], questionnaire_responses=[qr]),
    )
    assert topics == ["startback-result"]
    card = card_of(body, "startback-result")
    assert_risk(card, level)
    assert_keele_notice(card)


@pytest.mark.parametrize(("hook", "service"), CHART_HOOKS)
def test_questionnaire_response_with_service_canonical(
    client: TestClient, hook: str, service: str
) -> None:
    canonical = service_canonical(client)
    qr = questionnaire_response(answers_for({5, 6, 7}, "Very much"), questionnaire=canonical)
    topics, body = run(
        client, hook, service, chart_prefetch([back_pain()], questionnaire_responses=[qr])
    )
    assert topics == ["startback-result"]
    assert_risk(card_of(body, "startback-result"), "high")


def test_questionnaire_response_identified_by_link_ids_only(client: TestClient) -> None:
    qr = questionnaire_response(answers_for({1, 2, 3, 4}), questionnaire=None)
    topics, body = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain()], questionnaire_responses=[qr]),
    )
    assert topics == ["startback-result"]
    assert_risk(card_of(body, "startback-result"), "medium")


def test_questionnaire_response_items_in_a_group(client: TestClient) -> None:
    qr = questionnaire_response(answers_for({5, 6, 7, 8}), nested=True)
    topics, body = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain()], questionnaire_responses=[qr]),
    )
    assert topics == ["startback-result"]
    assert_risk(card_of(body, "startback-result"), "high")


def test_questionnaire_response_identified_by_item_definition(client: TestClient) -> None:
    qr = questionnaire_response(
        answers_for({5, 6, 7, 8}),
        questionnaire=None,
        link_ids=[f"q{n}" for n in range(1, 10)],
        definitions=True,
    )
    topics, body = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain()], questionnaire_responses=[qr]),
    )
    assert topics == ["startback-result"]
    assert_risk(card_of(body, "startback-result"), "high")


def test_answers_as_value_boolean(client: TestClient) -> None:
    answers = {n: {"valueBoolean": n in {5, 6, 7, 8}} for n in range(1, 10)}
    qr = questionnaire_response(answers)
    topics, body = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain()], questionnaire_responses=[qr]),
    )
    assert topics == ["startback-result"]
    assert_risk(card_of(body, "startback-result"), "high")


def test_answers_as_value_integer(client: TestClient) -> None:
    # total 4 (items 1, 2, 3, 9), subscale 1 -> medium
    answers = {n: {"valueInteger": 1 if n in {1, 2, 3, 9} else 0} for n in range(1, 10)}
    qr = questionnaire_response(answers)
    topics, body = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain()], questionnaire_responses=[qr]),
    )
    assert topics == ["startback-result"]
    assert_risk(card_of(body, "startback-result"), "medium")


def test_answers_by_loinc_yes_no_answer_codes(client: TestClient) -> None:
    yes = {"valueCoding": {"system": LOINC, "code": "LA33-6"}}
    no = {"valueCoding": {"system": LOINC, "code": "LA32-8"}}
    answers = {n: (yes if n in {1, 2, 3, 4} else no) for n in range(1, 9)}
    answers[9] = bother("Not at all")
    qr = questionnaire_response(answers)
    topics, body = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain()], questionnaire_responses=[qr]),
    )
    assert topics == ["startback-result"]
    assert_risk(card_of(body, "startback-result"), "medium")


def test_answers_by_text_case_insensitive(client: TestClient) -> None:
    answers: dict[int, dict[str, Any]] = {
        n: {"valueCoding": {"display": "AGREE" if n in {5, 6, 7} else "disagree"}}
        for n in range(1, 9)
    }
    answers[9] = {"valueCoding": {"code": "very much"}}
    answers[1] = {"valueCoding": {"code": "yes"}}
    qr = questionnaire_response(answers)
    topics, body = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain()], questionnaire_responses=[qr]),
    )
    assert topics == ["startback-result"]
    assert_risk(card_of(body, "startback-result"), "high")


@pytest.mark.parametrize(
    ("status", "counts"),
    [
        ("completed", True),
        ("amended", True),
        ("in-progress", False),
        ("stopped", False),
        ("entered-in-error", False),
    ],
)
def test_questionnaire_response_status(client: TestClient, status: str, counts: bool) -> None:
    qr = questionnaire_response(answers_for({5, 6, 7, 8}), status=status)
    topics, _ = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain()], questionnaire_responses=[qr]),
    )
    assert topics == (["startback-result"] if counts else ["startback-screening"])


@pytest.mark.parametrize(
    ("days", "expected"),
    [(179, "startback-result"), (180, "startback-result"), (181, "startback-screening")],
)
def test_questionnaire_response_window(client: TestClient, days: int, expected: str) -> None:
    qr = questionnaire_response(answers_for({1}), days=days)
    topics, _ = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain(onset_days_ago=None)], questionnaire_responses=[qr]),
    )
    assert topics == [expected]


def test_observation_and_questionnaire_response_give_one_result_card(client: TestClient) -> None:
    qr = questionnaire_response(answers_for({5, 6, 7, 8}), days=3)
    obs = [risk_obs("high", days=3)]
    for hook, service in CHART_HOOKS:
        topics, _ = run(
            client,
            hook,
            service,
            chart_prefetch([back_pain()], observations=obs, questionnaire_responses=[qr]),
        )
        assert topics == ["startback-result"]


def test_newer_questionnaire_response_beats_older_observation(client: TestClient) -> None:
    qr = questionnaire_response(answers_for({1, 2}), days=5)  # low
    topics, body = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch(
            [back_pain()], observations=[risk_obs("high", days=90)], questionnaire_responses=[qr]
        ),
    )
    assert topics == ["startback-result"]
    assert_risk(card_of(body, "startback-result"), "low")


def test_incomplete_questionnaire_response_does_not_count(client: TestClient) -> None:
    qr = questionnaire_response(answers_for({5, 6, 7}), status="in-progress", days=1)
    topics, _ = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain()], questionnaire_responses=[qr]),
    )
    assert topics == ["startback-screening"]


# ---------------------------------------------------------------------------------------------
# muscle-relaxant-duration on the chart hooks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("hook", "service"), CHART_HOOKS)
@pytest.mark.parametrize(("days", "fires"), [(21, False), (22, True), (20, False), (90, True)])
def test_active_relaxant_authored_boundary(
    client: TestClient, hook: str, service: str, days: int, fires: bool
) -> None:
    prefetch = chart_prefetch(
        [back_pain(onset_days_ago=60)],
        observations=[risk_obs("low", days=30)],
        # v2 "Current orders": 30 days x 4 fills, so the order is still current at 90 days.
        medication_requests=[cyclobenzaprine(authored_days_ago=days, repeats=3)],
    )
    topics, body = run(client, hook, service, prefetch)
    if fires:
        assert topics == ["muscle-relaxant-duration", "startback-result"]
        card = card_of(body, "muscle-relaxant-duration")
        assert card["indicator"] == "warning"
        # RULES.md "Summaries (v2)": `Cyclobenzaprine for 30 days: muscle relaxants are for ...`.
        assert "muscle relaxants are for 2-3 weeks at most" in card["summary"]
        assert card["source"]["url"].startswith("https://")
        for reason in card.get("overrideReasons", []):
            assert reason["display"]
    else:
        assert topics == ["startback-result"]


def test_active_relaxant_authored_on_as_datetime(client: TestClient) -> None:
    when = (TODAY - timedelta(days=22)).isoformat() + "T16:45:00-05:00"
    prefetch = chart_prefetch(
        [back_pain(onset_days_ago=60)],
        observations=[risk_obs("low", days=30)],
        medication_requests=[cyclobenzaprine(authored_on=when)],
    )
    topics, _ = run(client, "patient-view", "lbp-patient-view", prefetch)
    assert topics == ["muscle-relaxant-duration", "startback-result"]


def test_active_relaxant_with_short_supply_but_old_authored_on(client: TestClient) -> None:
    """RULES v2 "Current orders": a 7-day supply authored 40 days ago ran out 33 days ago, so
    the order is a stale record, not a course the patient is on (v1 gave a card)."""
    prefetch = chart_prefetch(
        [back_pain(onset_days_ago=60)],
        medication_requests=[cyclobenzaprine(authored_days_ago=40, supply_days=7)],
    )
    topics, _ = run(client, "patient-view", "lbp-patient-view", prefetch)
    assert topics == ["startback-screening"]


@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("197943", "methocarbamol 500 MG Oral Tablet"),
        ("197446", "carisoprodol 350 MG Oral Tablet"),
        ("197935", "metaxalone 400 MG Oral Tablet"),
        ("1088936", "chlorzoxazone 750 MG Oral Tablet"),
        ("994521", "12 HR orphenadrine citrate 100 MG Extended Release Oral Tablet"),
        ("57258", "tizanidine"),
        ("1292", "baclofen"),
        ("21949", "cyclobenzaprine"),
        (None, "Dantrolene sodium 25 mg capsule"),
        (None, "Tizanidine 4 mg tablet"),
        (None, "Baclofen 10 mg tablet"),
    ],
)
def test_each_relaxant_is_recognised_on_patient_view(
    client: TestClient, code: str | None, display: str
) -> None:
    prefetch = chart_prefetch(
        [back_pain(onset_days_ago=60)],
        observations=[risk_obs("low", days=30)],
        medication_requests=[med_request(code, display, authored_days_ago=25)],
    )
    topics, _ = run(client, "patient-view", "lbp-patient-view", prefetch)
    assert topics == ["muscle-relaxant-duration", "startback-result"]


def test_relaxant_by_contained_medication_reference(client: TestClient) -> None:
    mr = cyclobenzaprine(authored_days_ago=25)
    del mr["medicationCodeableConcept"]
    mr["contained"] = [
        {
            "resourceType": "Medication",
            "id": "med1",
            "code": {
                "coding": [
                    {
                        "system": RXNORM,
                        "code": "197944",
                        "display": "methocarbamol 750 MG Oral Tablet",
                    }
                ]
            },
        }
    ]
    mr["medicationReference"] = {"reference": "#med1"}
    prefetch = chart_prefetch(
        [back_pain(onset_days_ago=60)],
        observations=[risk_obs("low", days=30)],
        medication_requests=[mr],
    )
    topics, _ = run(client, "patient-view", "lbp-patient-view", prefetch)
    assert topics == ["muscle-relaxant-duration", "startback-result"]


@pytest.mark.parametrize(
    "status", ["completed", "stopped", "on-hold", "cancelled", "entered-in-error", "draft"]
)
def test_non_active_relaxant_does_not_fire_on_chart(client: TestClient, status: str) -> None:
    prefetch = chart_prefetch(
        [back_pain(onset_days_ago=90)],
        observations=[risk_obs("low", days=30)],
        medication_requests=[cyclobenzaprine(authored_days_ago=60, status=status)],
    )
    topics, _ = run(client, "patient-view", "lbp-patient-view", prefetch)
    assert topics == ["startback-result"]


@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("197806", "ibuprofen 600 MG Oral Tablet"),
        ("197591", "diazepam 5 MG Oral Tablet"),
        ("310965", "ibuprofen 200 MG Oral Tablet"),
    ],
)
def test_non_relaxant_long_active_does_not_fire(
    client: TestClient, code: str, display: str
) -> None:
    prefetch = chart_prefetch(
        [back_pain(onset_days_ago=90)],
        observations=[risk_obs("low", days=30)],
        medication_requests=[med_request(code, display, authored_days_ago=60)],
    )
    topics, _ = run(client, "patient-view", "lbp-patient-view", prefetch)
    assert topics == ["startback-result"]


def test_relaxant_without_back_pain_context_no_card(client: TestClient) -> None:
    prefetch = chart_prefetch(
        [icd_condition("G35", "Multiple sclerosis", onset_days_ago=2000)],
        medication_requests=[med_request("1292", "baclofen", authored_days_ago=300)],
    )
    resp = call(client, "lbp-patient-view", hook_request("patient-view", prefetch=prefetch))
    assert resp.json() == {"cards": []}


def test_two_long_active_relaxants(client: TestClient) -> None:
    prefetch = chart_prefetch(
        [back_pain(onset_days_ago=90)],
        medication_requests=[
            cyclobenzaprine(authored_days_ago=40, repeats=1),
            med_request(
                "197943", "methocarbamol 500 MG Oral Tablet", authored_days_ago=30, repeats=1
            ),
            med_request("197943", "methocarbamol 500 MG Oral Tablet", authored_days_ago=5),
        ],
    )
    topics, body = run(client, "patient-view", "lbp-patient-view", prefetch)
    relax = [c for c in body["cards"] if c["source"]["topic"]["code"] == "muscle-relaxant-duration"]
    assert 1 <= len(relax) <= 2
    blob = " ".join(text_of(c) for c in relax)
    assert "cyclobenzaprine" in blob and "methocarbamol" in blob
    # most urgent first: warnings before the info card
    assert topics[-1] == "startback-screening"
    assert set(topics[:-1]) == {"muscle-relaxant-duration"}


@pytest.mark.parametrize(("hook", "service"), ORDER_HOOKS)
def test_order_hooks_ignore_long_active_relaxant(
    client: TestClient, hook: str, service: str
) -> None:
    """Order hooks judge drafted orders only: an active relaxant from 60 days ago gives no card."""
    active = cyclobenzaprine(authored_days_ago=60)
    draft = cyclobenzaprine(status="draft", authored_days_ago=0, supply_days=10, order_id="mr-d1")
    topics, _ = run(
        client,
        hook,
        service,
        order_prefetch([back_pain(onset_days_ago=90)], medication_requests=[active]),
        draft_orders=[draft],
    )
    assert "muscle-relaxant-duration" not in topics


@pytest.mark.parametrize(("hook", "service"), ORDER_HOOKS)
def test_order_hooks_long_active_relaxant_with_imaging_draft(
    client: TestClient, hook: str, service: str
) -> None:
    active = cyclobenzaprine(authored_days_ago=60)
    sr = service_request(order_id="sr-mri")
    topics, _ = run(
        client,
        hook,
        service,
        order_prefetch([back_pain(onset_days_ago=10)], medication_requests=[active]),
        draft_orders=[sr],
    )
    assert topics == ["imaging-without-red-flags"]


# ---------------------------------------------------------------------------------------------
# Back-pain context
# ---------------------------------------------------------------------------------------------

ICD_IN = [
    ("M54.50", "Low back pain, unspecified"),
    ("M54.51", "Vertebrogenic low back pain"),
    ("M54.59", "Other low back pain"),
    ("M54.40", "Lumbago with sciatica, unspecified side"),
    ("M54.41", "Lumbago with sciatica, right side"),
    ("M54.42", "Lumbago with sciatica, left side"),
    ("M54.30", "Sciatica, unspecified side"),
    ("M54.32", "Sciatica, left side"),
    ("M54.16", "Radiculopathy, lumbar region"),
    ("M54.17", "Radiculopathy, lumbosacral region"),
    ("M54.18", "Radiculopathy, sacral and sacrococcygeal region"),
    ("M54.89", "Other dorsalgia"),
    ("M54.9", "Dorsalgia, unspecified"),
    ("M51.16", "Intervertebral disc disorders with radiculopathy, lumbar region"),
    ("M51.17", "Intervertebral disc disorders with radiculopathy, lumbosacral region"),
    ("M51.26", "Other intervertebral disc displacement, lumbar region"),
    ("M51.27", "Other intervertebral disc displacement, lumbosacral region"),
    ("M51.360", "Other intervertebral disc degeneration, lumbar region with discogenic pain"),
    ("M51.369", "Other intervertebral disc degeneration, lumbar region"),
    ("M51.372", "Other intervertebral disc degeneration, lumbosacral region"),
    ("M51.379", "Other intervertebral disc degeneration, lumbosacral region"),
    ("M51.46", "Schmorl's nodes, lumbar region"),
    ("M51.47", "Schmorl's nodes, lumbosacral region"),
    ("M51.86", "Other intervertebral disc disorders, lumbar region"),
    ("M51.87", "Other intervertebral disc disorders, lumbosacral region"),
    ("M51.9", "Unspecified thoracic, thoracolumbar and lumbosacral disc disorder"),
    ("M51.A0", "Intervertebral annulus fibrosus defect, lumbar region, unspecified size"),
    ("M51.A5", "Intervertebral annulus fibrosus defect, large, lumbosacral region"),
    ("M47.816", "Spondylosis without myelopathy or radiculopathy, lumbar region"),
    ("M47.817", "Spondylosis without myelopathy or radiculopathy, lumbosacral region"),
    ("M47.818", "Spondylosis without myelopathy or radiculopathy, sacral region"),
    ("M47.26", "Other spondylosis with radiculopathy, lumbar region"),
    ("M47.27", "Other spondylosis with radiculopathy, lumbosacral region"),
    ("M47.28", "Other spondylosis with radiculopathy, sacral region"),
    ("M47.896", "Other spondylosis, lumbar region"),
    ("M47.898", "Other spondylosis, sacral region"),
    ("M48.061", "Spinal stenosis, lumbar region without neurogenic claudication"),
    ("M48.062", "Spinal stenosis, lumbar region with neurogenic claudication"),
    ("M48.07", "Spinal stenosis, lumbosacral region"),
    ("M48.08", "Spinal stenosis, sacral and sacrococcygeal region"),
    ("M43.06", "Spondylolysis, lumbar region"),
    ("M43.07", "Spondylolysis, lumbosacral region"),
    ("M43.16", "Spondylolisthesis, lumbar region"),
    ("M43.17", "Spondylolisthesis, lumbosacral region"),
    ("M43.26", "Fusion of spine, lumbar region"),
    ("M43.27", "Fusion of spine, lumbosacral region"),
    ("M53.2X6", "Spinal instabilities, lumbar region"),
    ("M53.2X7", "Spinal instabilities, lumbosacral region"),
    ("M53.2X8", "Spinal instabilities, sacral and sacrococcygeal region"),
    ("M53.3", "Sacrococcygeal disorders, not elsewhere classified"),
    ("M53.86", "Other specified dorsopathies, lumbar region"),
    ("M53.88", "Other specified dorsopathies, sacral and sacrococcygeal region"),
    ("M46.1", "Sacroiliitis, not elsewhere classified"),
    ("M99.03", "Segmental and somatic dysfunction of lumbar region"),
    ("M99.04", "Segmental and somatic dysfunction of sacral region"),
    ("S33.5XXA", "Sprain of ligaments of lumbar spine, initial encounter"),
    ("S33.6XXA", "Sprain of sacroiliac joint, initial encounter"),
    ("S33.8XXA", "Sprain of other parts of lumbar spine and pelvis, initial encounter"),
    ("S33.9XXA", "Sprain of unspecified parts of lumbar spine and pelvis, initial encounter"),
    ("S39.012A", "Strain of muscle, fascia and tendon of lower back, initial encounter"),
]


@pytest.mark.parametrize(("code", "display"), ICD_IN)
def test_icd10cm_family_gives_context(client: TestClient, code: str, display: str) -> None:
    topics, _ = run(
        client, "patient-view", "lbp-patient-view", chart_prefetch([icd_condition(code, display)])
    )
    assert topics == ["startback-screening"]


@pytest.mark.parametrize(
    "code",
    [
        "M5450",  # without the dot
        "M5416",
        "M51369",
        "M4806",
        "S335XXA",
        "M54.5",  # header code (non-billable since FY2022)
        "M545",  # header without the dot
        "M51.36",  # header since FY2025
        "M51.37",
        "M54.4",
        "M54.3",
    ],
)
def test_icd10cm_without_dots_or_header_codes(client: TestClient, code: str) -> None:
    topics, _ = run(
        client, "patient-view", "lbp-patient-view", chart_prefetch([icd_condition(code)])
    )
    assert topics == ["startback-screening"]


@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("M54.2", "Cervicalgia"),
        ("M54.6", "Pain in thoracic spine"),
        ("M54.12", "Radiculopathy, cervical region"),
        ("M51.14", "Intervertebral disc disorders with radiculopathy, thoracic region"),
        ("M47.812", "Spondylosis without myelopathy or radiculopathy, cervical region"),
        ("M47.814", "Spondylosis without myelopathy or radiculopathy, thoracic region"),
        ("M47.892", "Other spondylosis, cervical region"),
        ("M48.02", "Spinal stenosis, cervical region"),
        ("M48.04", "Spinal stenosis, thoracic region"),
        ("M51.34", "Other intervertebral disc degeneration, thoracic region"),
        ("M47.22", "Other spondylosis with radiculopathy, cervical region"),
        ("M43.12", "Spondylolisthesis, cervical region"),
        ("M99.01", "Segmental and somatic dysfunction of cervical region"),
        ("M53.2X2", "Spinal instabilities, cervical region"),
        ("M25.551", "Pain in right hip"),
        ("R10.30", "Lower abdominal pain, unspecified"),
        ("M542", "Cervicalgia (no dot)"),
        (
            "M47.811",
            "Spondylosis without myelopathy or radiculopathy, occipito-atlanto-axial region",
        ),
        ("M48.00", "Spinal stenosis, site unspecified"),
        ("M51.3", "Other thoracic, thoracolumbar and lumbosacral intervertebral disc degeneration"),
    ],
)
def test_non_lbp_icd_gives_no_context(client: TestClient, code: str, display: str) -> None:
    resp = call(
        client,
        "lbp-patient-view",
        hook_request("patient-view", prefetch=chart_prefetch([icd_condition(code, display)])),
    )
    assert resp.json() == {"cards": []}


@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("279039007", "Low back pain (finding)"),
        ("278860009", "Chronic low back pain (finding)"),
        ("161891005", "Backache (finding)"),
        ("134407002", "Chronic back pain (finding)"),
        ("161894002", "Complaining of low back pain (finding)"),
        ("9121000119106", "Low back pain in pregnancy (finding)"),
    ],
)
def test_snomed_codes_give_context(client: TestClient, code: str, display: str) -> None:
    cond = condition(SNOMED, code, text=display)
    cond["code"]["coding"][0]["display"] = display
    for hook, service in CHART_HOOKS:
        topics, _ = run(client, hook, service, chart_prefetch([cond]))
        assert topics == ["startback-screening"]


@pytest.mark.parametrize(
    ("code", "display"),
    [("81680005", "Neck pain (finding)"), ("22253000", "Pain (finding)")],
)
def test_other_snomed_codes_give_no_context(client: TestClient, code: str, display: str) -> None:
    cond = condition(SNOMED, code, text=display)
    resp = call(
        client, "lbp-patient-view", hook_request("patient-view", prefetch=chart_prefetch([cond]))
    )
    assert resp.json() == {"cards": []}


@pytest.mark.parametrize(
    ("text", "context"),
    [
        ("Low back pain", True),
        ("low back pain", True),
        ("Chronic low back pain", True),
        ("Backache", True),
        ("Neck pain", False),
        ("Chest pain", False),
    ],
)
def test_text_only_conditions(client: TestClient, text: str, context: bool) -> None:
    cond = condition(None, None, text=text)
    topics, _ = run(client, "patient-view", "lbp-patient-view", chart_prefetch([cond]))
    assert topics == (["startback-screening"] if context else [])


@pytest.mark.parametrize(
    ("clinical", "context"),
    [
        ("active", True),
        ("recurrence", True),
        ("relapse", True),
        ("inactive", False),
        ("remission", False),
        ("resolved", False),
    ],
)
def test_clinical_status(client: TestClient, clinical: str, context: bool) -> None:
    for hook, service in CHART_HOOKS:
        topics, _ = run(
            client, hook, service, chart_prefetch([back_pain(clinical_status=clinical)])
        )
        assert topics == (["startback-screening"] if context else [])


@pytest.mark.parametrize(
    ("verification", "context"),
    [
        ("confirmed", True),
        ("provisional", True),
        ("unconfirmed", True),
        ("differential", True),
        (None, True),
        ("refuted", False),
        ("entered-in-error", False),
    ],
)
def test_verification_status(client: TestClient, verification: str | None, context: bool) -> None:
    topics, _ = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain(verification_status=verification)]),
    )
    assert topics == (["startback-screening"] if context else [])


def test_refuted_icd_condition_with_observation_and_relaxant_no_cards(client: TestClient) -> None:
    prefetch = chart_prefetch(
        [icd_condition("M54.50", "Low back pain, unspecified", verification_status="refuted")],
        observations=[risk_obs("high")],
        medication_requests=[cyclobenzaprine(authored_days_ago=60)],
    )
    resp = call(client, "lbp-patient-view", hook_request("patient-view", prefetch=prefetch))
    assert resp.json() == {"cards": []}


def test_entered_in_error_without_clinical_status(client: TestClient) -> None:
    cond = back_pain(clinical_status=None, verification_status="entered-in-error")
    resp = call(
        client, "lbp-patient-view", hook_request("patient-view", prefetch=chart_prefetch([cond]))
    )
    assert resp.json() == {"cards": []}


def test_one_refuted_and_one_active_condition_keep_context(client: TestClient) -> None:
    prefetch = chart_prefetch(
        [
            back_pain(verification_status="refuted"),
            icd_condition("M54.41", "Lumbago with sciatica, right side"),
        ]
    )
    topics, _ = run(client, "patient-view", "lbp-patient-view", prefetch)
    assert topics == ["startback-screening"]


def test_lbp_among_several_codings(client: TestClient) -> None:
    cond = condition(SNOMED, "22253000", text="Back pain")
    cond["code"]["coding"] = [
        {"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.696871", "code": "12345"},
        {"system": ICD10CM, "code": "M54.50", "display": "Low back pain, unspecified"},
    ]
    topics, _ = run(client, "patient-view", "lbp-patient-view", chart_prefetch([cond]))
    assert topics == ["startback-screening"]


def test_resolved_back_pain_with_long_relaxant_no_cards(client: TestClient) -> None:
    prefetch = chart_prefetch(
        [back_pain(clinical_status="resolved", onset_days_ago=300)],
        medication_requests=[cyclobenzaprine(authored_days_ago=60)],
    )
    resp = call(client, "lbp-encounter-start", hook_request("encounter-start", prefetch=prefetch))
    assert resp.json() == {"cards": []}


def test_unknown_onset_counts_as_new_episode_and_card_says_so(client: TestClient) -> None:
    _, body = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain(onset_days_ago=None)]),
    )
    text = text_of(card_of(body, "startback-screening"))
    assert "unknown" in text or "not recorded" in text
    assert "new episode" in text


def test_episode_onset_from_period_recorded_date_and_earliest(client: TestClient) -> None:
    by_period = back_pain(onset_days_ago=None)
    by_period["onsetPeriod"] = {"start": days_ago(30)}
    by_recorded = back_pain(onset_days_ago=None, recorded_days_ago=50)
    cases = [
        ([by_period], "30 days"),
        ([by_recorded], "50 days"),
        (
            [
                back_pain(onset_days_ago=5),
                icd_condition("M54.41", "Lumbago with sciatica, right side", onset_days_ago=70),
                back_pain(onset_days_ago=200, clinical_status="resolved"),
            ],
            "70 days",
        ),
    ]
    for conditions, wanted in cases:
        _, body = run(client, "patient-view", "lbp-patient-view", chart_prefetch(conditions))
        assert wanted in card_of(body, "startback-screening").get("detail", "")


def test_observation_issued_is_the_last_date_fallback(client: TestClient) -> None:
    obs = risk_obs("high", days=None)
    obs["issued"] = days_ago(20) + "T10:00:00Z"
    topics, body = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain(onset_days_ago=30)], observations=[obs]),
    )
    assert topics == ["startback-result"]
    assert_risk(card_of(body, "startback-result"), "high")
    obs["issued"] = days_ago(220) + "T10:00:00Z"
    topics, _ = run(
        client,
        "patient-view",
        "lbp-patient-view",
        chart_prefetch([back_pain()], observations=[obs]),
    )
    assert topics == ["startback-screening"]


def test_operation_outcome_entries_in_search_bundles_are_ignored(client: TestClient) -> None:
    prefetch = chart_prefetch()
    conditions = bundle([back_pain()])
    conditions["entry"].append(
        {
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [
                    {"severity": "warning", "code": "informational", "diagnostics": "suppressed"}
                ],
            },
            "search": {"mode": "outcome"},
        }
    )
    prefetch["conditions"] = conditions
    topics, _ = run(client, "patient-view", "lbp-patient-view", prefetch)
    assert topics == ["startback-screening"]


def test_older_adult_card_never_on_chart_hooks(client: TestClient) -> None:
    prefetch = chart_prefetch(
        [back_pain(onset_days_ago=60)],
        age=80,
        observations=[risk_obs("medium", days=20)],
        medication_requests=[cyclobenzaprine(authored_days_ago=40, repeats=1)],
    )
    for hook, service in CHART_HOOKS:
        topics, _ = run(client, hook, service, prefetch)
        assert topics == ["muscle-relaxant-duration", "startback-result"]


def test_patient_view_with_encounter_and_extension_is_accepted(client: TestClient) -> None:
    body = hook_request(
        "patient-view", prefetch=chart_prefetch([back_pain()]), encounter_id="enc-77"
    )
    body["extension"] = {"com.example.ehr.session": {"tab": "summary"}}
    resp = call(client, "lbp-patient-view", body)
    assert resp.status_code == 200
    assert assert_response_contract(resp.json(), "patient-view") == ["startback-screening"]


# ---------------------------------------------------------------------------------------------
# Order hooks: card contract, suggestions, ordering
# ---------------------------------------------------------------------------------------------


def opioid_draft(order_id: str = "mr-oxy") -> dict[str, Any]:
    # oxycodone 5 mg, 1 tablet every 6 h = 30 MME/day; 10 days supply
    mr = med_request(
        "1049621",
        "oxycodone hydrochloride 5 MG Oral Tablet",
        status="draft",
        authored_days_ago=0,
        supply_days=10,
        per_day=4,
        order_id=order_id,
    )
    return mr


def test_order_cards_contract_and_ordering(client: TestClient) -> None:
    benzo = med_request("197591", "diazepam 5 MG Oral Tablet", authored_days_ago=20)
    sr = service_request(CPT, "72148", order_id="sr-1")
    for hook, service in ORDER_HOOKS:
        topics, body = run(
            client,
            hook,
            service,
            order_prefetch([back_pain(onset_days_ago=10)], medication_requests=[benzo]),
            draft_orders=[sr, opioid_draft()],
        )
        assert topics == ["opioid-order", "imaging-without-red-flags"]
        assert [c["indicator"] for c in body["cards"]] == ["critical", "warning"]
        imaging = card_of(body, "imaging-without-red-flags")
        assert (
            # RULES.md "Summaries (v2)": `Lumbar MRI on day 10 of back pain, no red flags: ...`.
            "imaging not advised before 6 weeks" in imaging["summary"]
        )
        deletes = [
            a for s in imaging["suggestions"] for a in s.get("actions", []) if a["type"] == "delete"
        ]
        assert deletes and deletes[0]["resourceId"] in ("ServiceRequest/sr-1", "sr-1")
        displays = {r["display"] for r in imaging["overrideReasons"]}
        for wanted in (
            "Red flag present but not coded",
            "Failed 6 weeks of conservative care",
            "Surgery or intervention candidate",
        ):
            assert wanted in displays
        opioid = card_of(body, "opioid-order")
        assert opioid["overrideReasons"]
        creates = [
            a["resource"]
            for s in opioid.get("suggestions", [])
            for a in s.get("actions", [])
            if a["type"] == "create"
        ]
        assert any(r["resourceType"] == "MedicationRequest" for r in creates)  # naloxone
        for r in creates:
            assert r["subject"]["reference"] == f"Patient/{PATIENT_ID}"


def test_order_hooks_no_context_no_cards(client: TestClient) -> None:
    sr = service_request(CPT, "72148", order_id="sr-2")
    for hook, service in ORDER_HOOKS:
        resp = call(
            client,
            service,
            hook_request(
                hook,
                prefetch=order_prefetch([icd_condition("I10", "Essential hypertension")]),
                draft_orders=[sr],
            ),
        )
        assert resp.json() == {"cards": []}


def test_chart_ordering_warning_before_info(client: TestClient) -> None:
    prefetch = chart_prefetch(
        [back_pain(onset_days_ago=40)],
        questionnaire_responses=[questionnaire_response(answers_for({5, 6, 7, 8}))],
        medication_requests=[cyclobenzaprine(authored_days_ago=25)],
    )
    for hook, service in CHART_HOOKS:
        topics, _ = run(client, hook, service, prefetch)
        assert topics == ["muscle-relaxant-duration", "startback-result"]


def test_card_uuids_are_unique(client: TestClient) -> None:
    prefetch = chart_prefetch(
        [back_pain()], medication_requests=[cyclobenzaprine(authored_days_ago=30)]
    )
    _, body = run(client, "patient-view", "lbp-patient-view", prefetch)
    ids = [c["uuid"] for c in body["cards"]]
    ids += [s["uuid"] for c in body["cards"] for s in c.get("suggestions", [])]
    assert len(ids) == len(set(ids))


# ---------------------------------------------------------------------------------------------
# Errors (CONTRACT.md error table)
# ---------------------------------------------------------------------------------------------


def full_request(hook: str) -> dict[str, Any]:
    if hook in ("patient-view", "encounter-start"):
        return hook_request(hook, prefetch=chart_prefetch([back_pain()]))
    return hook_request(
        hook,
        prefetch=order_prefetch([back_pain()]),
        draft_orders=[service_request(order_id="sr-e")],
    )


@pytest.mark.parametrize(("hook", "service"), ALL_HOOKS)
def test_complete_request_is_accepted(client: TestClient, hook: str, service: str) -> None:
    resp = call(client, service, full_request(hook))
    assert resp.status_code == 200
    assert_response_contract(resp.json(), hook)


@pytest.mark.parametrize(("hook", "service"), ALL_HOOKS)
def test_body_not_json(client: TestClient, hook: str, service: str) -> None:
    resp = client.post(
        f"/cds-services/{service}",
        content=b'{"hook": "' + hook.encode() + b'", ',
        headers={"Content-Type": "application/json"},
    )
    assert_operation_outcome(resp, 400)


@pytest.mark.parametrize("payload", [[], "hello", 42, None])
def test_body_json_but_not_an_object(client: TestClient, payload: Any) -> None:
    resp = client.post(
        "/cds-services/lbp-patient-view",
        content=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert_operation_outcome(resp, 400)


@pytest.mark.parametrize(("hook", "service"), ALL_HOOKS)
@pytest.mark.parametrize("field", ["hook", "hookInstance", "context"])
def test_missing_top_level_field(client: TestClient, hook: str, service: str, field: str) -> None:
    body = full_request(hook)
    del body[field]
    assert_operation_outcome(call(client, service, body), 400, field)


@pytest.mark.parametrize(
    ("field", "value"),
    [("hook", 7), ("hookInstance", 12), ("context", "pt-1"), ("context", [])],
)
def test_wrong_type_top_level_field(client: TestClient, field: str, value: Any) -> None:
    body = full_request("patient-view")
    body[field] = value
    assert_operation_outcome(call(client, "lbp-patient-view", body), 400, field)


@pytest.mark.parametrize(("hook", "service"), ALL_HOOKS)
def test_wrong_hook_for_service(client: TestClient, hook: str, service: str) -> None:
    other = "order-sign" if hook != "order-sign" else "patient-view"
    body = full_request(hook)
    body["hook"] = other
    assert_operation_outcome(call(client, service, body), 400, "hook")


REQUIRED_CONTEXT = [
    ("patient-view", "lbp-patient-view", "userId"),
    ("patient-view", "lbp-patient-view", "patientId"),
    ("encounter-start", "lbp-encounter-start", "userId"),
    ("encounter-start", "lbp-encounter-start", "patientId"),
    ("encounter-start", "lbp-encounter-start", "encounterId"),
    ("order-select", "lbp-order-select", "userId"),
    ("order-select", "lbp-order-select", "patientId"),
    ("order-select", "lbp-order-select", "selections"),
    ("order-select", "lbp-order-select", "draftOrders"),
    ("order-sign", "lbp-order-sign", "userId"),
    ("order-sign", "lbp-order-sign", "patientId"),
    ("order-sign", "lbp-order-sign", "draftOrders"),
]


@pytest.mark.parametrize(("hook", "service", "field"), REQUIRED_CONTEXT)
def test_missing_required_context(client: TestClient, hook: str, service: str, field: str) -> None:
    body = full_request(hook)
    del body["context"][field]
    assert_operation_outcome(call(client, service, body), 400, field)


@pytest.mark.parametrize(
    ("hook", "service", "field", "value"),
    [
        ("order-select", "lbp-order-select", "selections", "ServiceRequest/sr-e"),
        ("order-select", "lbp-order-select", "draftOrders", [{"resourceType": "ServiceRequest"}]),
        ("order-sign", "lbp-order-sign", "draftOrders", "not a bundle"),
        ("patient-view", "lbp-patient-view", "patientId", 17),
    ],
)
def test_malformed_context_field(
    client: TestClient, hook: str, service: str, field: str, value: Any
) -> None:
    body = full_request(hook)
    body["context"][field] = value
    assert_operation_outcome(call(client, service, body), 400, field)


def test_prefetch_not_an_object(client: TestClient) -> None:
    body = full_request("patient-view")
    body["prefetch"] = ["Patient/pt-1"]
    assert_operation_outcome(call(client, "lbp-patient-view", body), 400, "prefetch")


def test_unknown_service_404(client: TestClient) -> None:
    resp = call(client, "lbp-nonexistent", full_request("patient-view"))
    assert resp.status_code == 404
    resp = client.post(
        "/cds-services/lbp-nonexistent/feedback",
        json={"feedback": []},
    )
    assert resp.status_code == 404


@pytest.mark.parametrize(("hook", "service"), ALL_HOOKS)
def test_prefetch_absent_without_fhir_server_412(
    client: TestClient, hook: str, service: str
) -> None:
    body = full_request(hook)
    del body["prefetch"]
    assert_operation_outcome(call(client, service, body), 412)


@pytest.mark.parametrize(("hook", "service"), ALL_HOOKS)
def test_one_prefetch_key_missing_412(client: TestClient, hook: str, service: str) -> None:
    body = full_request(hook)
    body["prefetch"].pop("conditions")
    assert_operation_outcome(call(client, service, body), 412)


@pytest.mark.parametrize(("hook", "service"), ALL_HOOKS)
def test_each_discovered_prefetch_key_absent_412(
    client: TestClient, hook: str, service: str
) -> None:
    discovery = {s["id"]: s for s in client.get("/cds-services").json()["services"]}
    keys = list(discovery[service]["prefetch"])
    full = full_request(hook)
    assert set(keys) == set(full["prefetch"])
    for key in keys:
        body = full_request(hook)
        body["prefetch"].pop(key)
        if key == "encounters" or (key == "questionnaireResponses" and hook.startswith("order")):
            # v2: Encounters only silence cards (hospice discharges), as the red-flag screen does
            # on the order hooks; without them and without FHIR access the call goes on rather
            # than failing every client on an older prefetch.
            assert call(client, service, body).status_code == 200
            continue
        assert_operation_outcome(call(client, service, body), 412)


def test_fhir_authorization_without_fhir_server_400(client: TestClient) -> None:
    body = full_request("order-sign")
    body["fhirAuthorization"] = {
        "access_token": "tok",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/*.read",
        "subject": "lbp-cds",
    }
    assert_operation_outcome(call(client, "lbp-order-sign", body), 400, "fhirServer")


def test_prefetch_key_operation_outcome_412(client: TestClient) -> None:
    body = full_request("patient-view")
    body["prefetch"]["questionnaireResponses"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "forbidden", "diagnostics": "denied"}],
    }
    assert_operation_outcome(call(client, "lbp-patient-view", body), 412)


def test_prefetch_null_values_mean_no_data(client: TestClient) -> None:
    body = hook_request(
        "patient-view",
        prefetch={
            "patient": patient(),
            "conditions": bundle([back_pain()]),
            "startbackObservations": None,
            "medicationRequests": None,
            "questionnaireResponses": None,
        },
    )
    resp = call(client, "lbp-patient-view", body)
    assert resp.status_code == 200
    assert assert_response_contract(resp.json(), "patient-view") == ["startback-screening"]


def test_all_prefetch_null_is_no_card(client: TestClient) -> None:
    keys = ["patient", "conditions", "startbackObservations", "medicationRequests"]
    body = hook_request(
        "encounter-start", prefetch=dict.fromkeys([*keys, "questionnaireResponses"])
    )
    resp = call(client, "lbp-encounter-start", body)
    assert resp.status_code == 200
    assert resp.json() == {"cards": []}


def test_fhir_server_not_on_allow_list_is_412_and_never_called(
    settings_factory: Callable[..., Any], started_clients: Any
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=bundle([back_pain()]))

    client = started_clients.start(settings_factory(), transport=httpx.MockTransport(handler))
    body = hook_request(
        "patient-view", fhir_server="https://fhir.attacker.example/r4", token="secret-token"
    )
    assert_operation_outcome(call(client, "lbp-patient-view", body), 412)
    assert seen == []


def test_fhir_server_without_authorization_412(client: TestClient) -> None:
    body = hook_request("patient-view", fhir_server=FHIR_BASE)
    assert_operation_outcome(call(client, "lbp-patient-view", body), 412)


@pytest.mark.parametrize("failure", ["500", "timeout", "connect"])
def test_fhir_server_failure_never_500(client: TestClient, fhir_mock: Any, failure: str) -> None:
    route = fhir_mock.route()
    if failure == "500":
        route.respond(500, text="boom")
    elif failure == "timeout":
        route.side_effect = httpx.ReadTimeout("slow")
    else:
        route.side_effect = httpx.ConnectError("down")
    body = hook_request("patient-view", fhir_server=FHIR_BASE, token="tok")
    resp = call(client, "lbp-patient-view", body)
    assert resp.status_code in (200, 412), resp.text
    if resp.status_code == 412:
        assert resp.json()["resourceType"] == "OperationOutcome"


def test_fhir_server_fallback_when_prefetch_absent(client: TestClient, fhir_mock: Any) -> None:
    fhir_mock.get(f"/Patient/{PATIENT_ID}").respond(200, json=patient())
    fhir_mock.get("/Condition").respond(200, json=bundle([back_pain()]))
    fhir_mock.get("/Observation").respond(200, json=bundle([risk_obs("medium")]))
    fhir_mock.get("/MedicationRequest").respond(200, json=bundle([]))
    fhir_mock.get("/QuestionnaireResponse").respond(200, json=bundle([]))
    fhir_mock.get("/Encounter").respond(200, json=bundle([]))
    body = hook_request("patient-view", fhir_server=FHIR_BASE, token="tok")
    resp = call(client, "lbp-patient-view", body)
    assert resp.status_code == 200, resp.text
    topics = assert_response_contract(resp.json(), "patient-view")
    assert topics == ["startback-result"]


def test_body_over_size_limit_413(client: TestClient) -> None:
    body = full_request("patient-view")
    body["prefetch"]["patient"]["text"] = {"status": "generated", "div": "x" * 5_100_000}
    resp = call(client, "lbp-patient-view", body)
    assert resp.status_code == 413


def test_body_over_configured_limit_413(
    client_factory: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDS_MAX_BODY_BYTES", "4096")
    small = client_factory()
    body = full_request("order-sign")
    body["prefetch"]["patient"]["name"] = [{"text": "y" * 6000}]
    assert call(small, "lbp-order-sign", body).status_code == 413
    assert call(small, "lbp-order-sign", full_request("order-sign")).status_code == 200


def test_auth_required_401_without_jwt(client_factory: Callable[..., TestClient]) -> None:
    secured = client_factory(require_auth=True, trusted_issuers=UNREAD_ISSUERS)
    assert secured.get("/cds-services").status_code == 401
    assert call(secured, "lbp-patient-view", full_request("patient-view")).status_code == 401
    resp = secured.post(
        "/cds-services/lbp-patient-view",
        json=full_request("patient-view"),
        headers={"Authorization": "Bearer not.a.jwt"},
    )
    assert resp.status_code == 401
    assert secured.post("/cds-services/lbp-patient-view/feedback", json={}).status_code == 401
    assert secured.get("/healthz").status_code == 200


# ---------------------------------------------------------------------------------------------
# Feedback
# ---------------------------------------------------------------------------------------------


def test_feedback_accepted_overridden_idempotent_and_unknown(client: TestClient) -> None:
    _, body = run(client, "patient-view", "lbp-patient-view", chart_prefetch([back_pain()]))
    card = card_of(body, "startback-screening")
    accepted = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2026-11-22T10:15:00Z",
            }
        ]
    }
    for _ in range(2):
        resp = client.post("/cds-services/lbp-patient-view/feedback", json=accepted)
        assert resp.status_code == 200
        assert resp.json() == {}
    reason = card["overrideReasons"][0]
    overridden = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {"system": reason["system"], "code": reason["code"]},
                    "userComment": "done at the front desk",
                },
                "outcomeTimestamp": "2026-11-22T10:16:00Z",
            }
        ]
    }
    resp = client.post("/cds-services/lbp-patient-view/feedback", json=overridden)
    assert resp.status_code == 200 and resp.json() == {}
    unknown = {
        "feedback": [
            {
                "card": "9b4e7f3c-2d1a-4c6b-8e5f-0a1b2c3d4e5f",
                "outcome": "overridden",
                "outcomeTimestamp": "2026-11-22T10:17:00Z",
            }
        ]
    }
    for service in (
        "lbp-patient-view",
        "lbp-encounter-start",
        "lbp-order-select",
        "lbp-order-sign",
    ):
        resp = client.post(f"/cds-services/{service}/feedback", json=unknown)
        assert resp.status_code == 200
        assert resp.json() == {}


def test_feedback_not_json_is_400(client: TestClient) -> None:
    resp = client.post(
        "/cds-services/lbp-order-sign/feedback",
        content=b"feedback=yes",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 400


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "feedback"),
        ({"feedback": "accepted"}, "feedback"),
        ({"feedback": [{"outcome": "accepted", "outcomeTimestamp": "2026-11-22T10:00Z"}]}, "card"),
        (
            {"feedback": [{"card": "c1", "outcome": "maybe", "outcomeTimestamp": "2026-11-22"}]},
            "outcome",
        ),
    ],
)
def test_feedback_wrong_shape_400_names_field(
    client: TestClient, payload: dict[str, Any], field: str
) -> None:
    resp = client.post("/cds-services/lbp-patient-view/feedback", json=payload)
    assert_operation_outcome(resp, 400, field)


# ---------------------------------------------------------------------------------------------
# Discovery, CORS, health
# ---------------------------------------------------------------------------------------------


def test_discovery_lists_every_service(client: TestClient) -> None:
    resp = client.get("/cds-services")
    assert resp.status_code == 200
    body = resp.json()
    assert_no_empty_values(body)
    services = {s["id"]: s for s in body["services"]}
    assert set(services) == {
        "lbp-patient-view",
        "lbp-encounter-start",
        "lbp-order-select",
        "lbp-order-sign",
    }
    for hook, service in ALL_HOOKS:
        svc = services[service]
        assert svc["hook"] == hook
        assert svc["description"]
        assert svc.get("title")
        prefetch = svc["prefetch"]
        assert any(t.startswith("Patient/{{context.patientId}}") for t in prefetch.values())
        conds = [t for t in prefetch.values() if t.startswith("Condition?")]
        meds = [t for t in prefetch.values() if t.startswith("MedicationRequest?")]
        assert conds and meds
        # any status: no clinical-status / status filter on these searches
        assert "clinical-status" not in conds[0] and "status=" not in meds[0]
        if hook in ("patient-view", "encounter-start"):
            assert any(t.startswith("QuestionnaireResponse?") for t in prefetch.values())
            obs = " ".join(t for t in prefetch.values() if t.startswith("Observation?"))
            for code in ("91352-5", "91351-7", "91350-9"):
                assert code in obs
        else:
            assert any(t.startswith("Procedure?") for t in prefetch.values())
            obs = " ".join(t for t in prefetch.values() if t.startswith("Observation?"))
            assert "8310-5" in obs


@pytest.mark.parametrize(
    "path",
    ["/cds-services", "/cds-services/lbp-order-sign", "/cds-services/lbp-patient-view/feedback"],
)
def test_cors_preflight(client: TestClient, path: str) -> None:
    origin = "https://sandbox.cds-hooks.org"
    method = "GET" if path == "/cds-services" else "POST"
    resp = client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert resp.status_code in (200, 204), resp.text
    assert resp.headers.get("access-control-allow-origin") in ("*", origin)
    allowed_headers = resp.headers.get("access-control-allow-headers", "").lower()
    assert "authorization" in allowed_headers or allowed_headers == "*"
    assert "content-type" in allowed_headers or allowed_headers == "*"
    assert method in resp.headers.get("access-control-allow-methods", "")


def test_cors_header_on_actual_requests(client: TestClient) -> None:
    origin = "https://sandbox.cds-hooks.org"
    resp = client.get("/cds-services", headers={"Origin": origin})
    assert resp.headers.get("access-control-allow-origin") in ("*", origin)
    resp = client.post(
        "/cds-services/lbp-patient-view",
        json=full_request("patient-view"),
        headers={"Origin": origin},
    )
    assert resp.status_code == 200
    assert resp.headers.get("access-control-allow-origin") in ("*", origin)


def test_healthz(client: TestClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert PATIENT_ID not in resp.text
