"""Builders for STarT Back QuestionnaireResponses and Observations (dates as days before TODAY)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.factories import LOINC, PATIENT_ID, days_ago, next_id

# Items 1-9 in order (clinical-codes.md §7); items 5-9 are the psychosocial subscale.
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
ANSWER_SYSTEM = "urn:lbp-cds:CodeSystem/startback-answer"
TOTAL = "91351-7"
SUBSCALE = "91350-9"
RISK = "91352-5"
# The two chart hooks that give STarT Back cards: (service id, hook).
CHART_SERVICES = [("lbp-patient-view", "patient-view"), ("lbp-encounter-start", "encounter-start")]
RISK_ANSWERS = {"low": "LA9194-7", "medium": "LA8982-6", "high": "LA9193-9"}
SERVICE_CANONICAL = "http://127.0.0.1:8000/fhir/Questionnaire/startback"


def answers_for(agree: set[int], item9: str = "Not at all") -> dict[int, dict[str, Any]]:
    """valueCoding answers: the items in `agree` (1-8) Agree, the others Disagree; item 9 given."""
    out: dict[int, dict[str, Any]] = {}
    for n in range(1, 9):
        word = "Agree" if n in agree else "Disagree"
        out[n] = {"valueCoding": {"system": ANSWER_SYSTEM, "code": word.lower(), "display": word}}
    out[9] = {
        "valueCoding": {
            "system": ANSWER_SYSTEM,
            "code": item9.lower().replace(" ", "-"),
            "display": item9,
        }
    }
    return out


def questionnaire_response(
    answers: Mapping[int, dict[str, Any] | None],
    *,
    authored_days_ago: int | None = 5,
    status: str = "completed",
    questionnaire: str | None = SERVICE_CANONICAL,
    link_ids: list[str] | None = None,
    authored: str | None = None,
) -> dict[str, Any]:
    """A QuestionnaireResponse with one item per answered item number (None: no answer)."""
    ids = link_ids or ITEM_CODES
    items = []
    for n, answer in sorted(answers.items()):
        item: dict[str, Any] = {"linkId": ids[n - 1]}
        if answer is not None:
            item["answer"] = [answer]
        items.append(item)
    out: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": next_id("qr"),
        "status": status,
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "item": items,
    }
    if questionnaire:
        out["questionnaire"] = questionnaire
    if authored is not None:
        out["authored"] = authored
    elif authored_days_ago is not None:
        out["authored"] = days_ago(authored_days_ago)
    return out


def observation(
    code: str,
    *,
    days: int | None = 5,
    value: int | None = None,
    risk: str | None = None,
    text: str | None = None,
    status: str = "final",
    components: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A STarT Back Observation: an integer score, a risk answer code, or a text value."""
    out: dict[str, Any] = {
        "resourceType": "Observation",
        "id": next_id("obs"),
        "status": status,
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }
    if days is not None:
        out["effectiveDateTime"] = days_ago(days)
    if value is not None:
        out["valueInteger"] = value
    if risk is not None:
        out["valueCodeableConcept"] = {"coding": [{"system": LOINC, "code": RISK_ANSWERS[risk]}]}
    if text is not None:
        out["valueCodeableConcept"] = {"text": text}
    if components:
        out["component"] = components
    return out
