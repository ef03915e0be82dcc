"""Builders for FHIR resources and CDS Hooks requests used across the tests.

Dates are given as days before TODAY so every boundary reads as what it tests (41 vs 43 days).
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

TODAY = date(2026, 11, 22)


def noon_utc(day: date) -> datetime:
    """A fixed clock reading on `day` (noon UTC is that same date in every server time zone
    within 11 hours of UTC, so the rules' local "today" is `day`)."""
    return datetime.combine(day, time(12), tzinfo=UTC)


PATIENT_ID = "pt-1"
FHIR_BASE = "http://127.0.0.1:9999/fhir"

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"

_ids = itertools.count(1)


def next_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def days_ago(days: int) -> str:
    return (TODAY - timedelta(days=days)).isoformat()


def birth_date_for_age(years: int) -> str:
    """A birthDate that makes the patient exactly `years` old on TODAY (birthday 30 days ago)."""
    day = TODAY - timedelta(days=30)
    return day.replace(year=day.year - years).isoformat()


def patient(age: int = 40, patient_id: str = PATIENT_ID, gender: str = "female") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "birthDate": birth_date_for_age(age),
        "gender": gender,
    }


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def concept(
    system: str | None = None,
    code: str | None = None,
    text: str | None = None,
    display: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if system and code:
        out["coding"] = [coding(system, code, display)]
    if text:
        out["text"] = text
    return out


def condition(
    system: str | None = SNOMED,
    code: str | None = "279039007",
    *,
    onset_days_ago: int | None = 10,
    clinical_status: str | None = "active",
    verification_status: str | None = "confirmed",
    text: str | None = None,
    condition_id: str | None = None,
    recorded_days_ago: int | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Condition",
        "id": condition_id or next_id("cond"),
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "code": concept(system, code, text),
    }
    if clinical_status:
        out["clinicalStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": clinical_status,
                }
            ]
        }
    if verification_status:
        out["verificationStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": verification_status,
                }
            ]
        }
    if onset_days_ago is not None:
        out["onsetDateTime"] = days_ago(onset_days_ago)
    if recorded_days_ago is not None:
        out["recordedDate"] = days_ago(recorded_days_ago)
    return out


def back_pain(onset_days_ago: int | None = 10, **kwargs: Any) -> dict[str, Any]:
    """An active SNOMED 279039007 Low back pain Condition."""
    return condition(SNOMED, "279039007", onset_days_ago=onset_days_ago, **kwargs)


def bundle(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        out["link"] = [{"relation": "next", "url": next_url}]
    return out


def service_request(
    code_system: str | None = CPT,
    code: str | None = "72148",
    *,
    text: str | None = "MRI lumbar spine without contrast",
    order_id: str | None = None,
    reason: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": order_id or next_id("sr"),
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "code": concept(code_system, code, text),
    }
    if reason:
        out["reasonCode"] = [reason]
    return out


def chart_prefetch(
    conditions: list[dict[str, Any]] | None = None,
    *,
    age: int = 40,
    observations: list[dict[str, Any]] | None = None,
    medication_requests: list[dict[str, Any]] | None = None,
    questionnaire_responses: list[dict[str, Any]] | None = None,
    encounters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "patient": patient(age),
        "conditions": bundle(conditions or []),
        "startbackObservations": bundle(observations or []),
        "medicationRequests": bundle(medication_requests or []),
        "questionnaireResponses": bundle(questionnaire_responses or []),
        "encounters": bundle(encounters or []),
    }


def order_prefetch(
    conditions: list[dict[str, Any]] | None = None,
    *,
    age: int = 40,
    observations: list[dict[str, Any]] | None = None,
    medication_requests: list[dict[str, Any]] | None = None,
    procedures: list[dict[str, Any]] | None = None,
    questionnaire_responses: list[dict[str, Any]] | None = None,
    encounters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "patient": patient(age),
        "conditions": bundle(conditions or []),
        "temperatureObservations": bundle(observations or []),
        "medicationRequests": bundle(medication_requests or []),
        "procedures": bundle(procedures or []),
        "questionnaireResponses": bundle(questionnaire_responses or []),
        "encounters": bundle(encounters or []),
    }


def hook_request(
    hook: str,
    *,
    prefetch: dict[str, Any] | None = None,
    draft_orders: list[dict[str, Any]] | None = None,
    selections: list[str] | None = None,
    fhir_server: str | None = None,
    token: str | None = None,
    encounter_id: str | None = None,
    patient_id: str = PATIENT_ID,
) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/dr-1", "patientId": patient_id}
    if encounter_id or hook == "encounter-start":
        context["encounterId"] = encounter_id or "enc-1"
    if hook in ("order-select", "order-sign"):
        orders = draft_orders or []
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": o} for o in orders],
        }
        if hook == "order-select":
            context["selections"] = (
                selections
                if selections is not None
                else [f"{o['resourceType']}/{o['id']}" for o in orders]
            )
    out: dict[str, Any] = {
        "hook": hook,
        "hookInstance": f"hook-{next(_ids)}",
        "context": context,
    }
    if prefetch is not None:
        out["prefetch"] = prefetch
    if fhir_server:
        out["fhirServer"] = fhir_server
    if token:
        out["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/*.read",
            "subject": "lbp-cds",
        }
    return out
