"""Stratified care, actionable (RULES.md v2 "Red-flag screen and stratified care"): the
startback-result card suggests the matched care as a draft ServiceRequest referral (medium risk:
physiotherapy; high risk: psychologically informed physiotherapy; low risk: none)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.logic import stratified_care
from cds_service.logic.fhir import ServiceRequest as DraftServiceRequest
from cds_service.logic.record import PatientRecord
from cds_service.logic.startback import RiskGroup
from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import (
    ICD10CM,
    SNOMED,
    TODAY,
    back_pain,
    chart_prefetch,
    condition,
    hook_request,
)
from tests.startback_builders import CHART_SERVICES, RISK, observation

PHYSIO_REFERRAL = {"system": SNOMED, "code": "308447003", "display": "Referral to physiotherapist"}
PATIENT_REFERRAL = {"system": SNOMED, "code": "3457005", "display": "Patient referral"}
PHYSIOTHERAPIST = {"system": SNOMED, "code": "36682004", "display": "Physiotherapist"}


def result_card(
    client: Any,
    risk: str,
    *,
    conditions: list[dict[str, Any]] | None = None,
    user_id: str = "Practitioner/dr-1",
    service: tuple[str, str] = CHART_SERVICES[0],
) -> dict[str, Any]:
    service_id, hook = service
    prefetch = chart_prefetch(
        conditions if conditions is not None else [back_pain(condition_id="lbp-1")],
        observations=[observation(RISK, risk=risk, days=5)],
    )
    body = hook_request(hook, prefetch=prefetch)
    body["context"]["userId"] = user_id
    response = call(client, service_id, body)
    assert response.status_code == 200, response.text
    topics = assert_response_contract(response.json(), hook)
    assert topics == ["startback-result"]
    card: dict[str, Any] = response.json()["cards"][0]
    return card


def referral_of(card: dict[str, Any]) -> dict[str, Any]:
    (suggestion,) = card["suggestions"]
    (action,) = suggestion["actions"]
    assert action["type"] == "create"
    resource: dict[str, Any] = action["resource"]
    ServiceRequest.model_validate(resource)  # valid FHIR R4 (R4B models)
    return resource


@pytest.mark.parametrize("service", CHART_SERVICES)
def test_medium_risk_suggests_a_draft_physiotherapy_referral(client, service) -> None:
    card = result_card(client, "medium", service=service)
    (suggestion,) = card["suggestions"]
    assert suggestion["label"] == "Refer to physiotherapy"
    assert suggestion["isRecommended"] is True
    assert card["selectionBehavior"] == "at-most-one"
    assert {r["code"] for r in card["overrideReasons"]} == {"already-referred", "referral-declined"}
    referral = referral_of(card)
    assert (referral["status"], referral["intent"]) == ("draft", "order")
    assert referral["code"] == {"coding": [PHYSIO_REFERRAL], "text": "Referral to physiotherapy"}
    assert referral["category"] == [{"coding": [PATIENT_REFERRAL]}]
    assert referral["performerType"] == {"coding": [PHYSIOTHERAPIST]}
    assert referral["subject"] == {"reference": "Patient/pt-1"}
    assert referral["requester"] == {"reference": "Practitioner/dr-1"}
    assert referral["reasonReference"] == [
        {"reference": "Condition/lbp-1", "display": "Low back pain (finding)"}
    ]
    assert "reasonCode" not in referral
    assert referral["authoredOn"] == TODAY.isoformat()
    (note,) = referral["note"]
    result_date = (TODAY - timedelta(days=5)).isoformat()
    assert f"STarT Back medium risk on {result_date}" in note["text"]
    assert "orderDetail" not in referral
    if service[1] == "encounter-start":
        assert referral["encounter"] == {"reference": "Encounter/enc-1"}
    else:
        assert "encounter" not in referral


def test_high_risk_suggests_psychologically_informed_physiotherapy(client) -> None:
    card = result_card(client, "high")
    (suggestion,) = card["suggestions"]
    assert suggestion["label"] == "Refer to psychologically informed physiotherapy"
    referral = referral_of(card)
    assert referral["code"]["coding"] == [PHYSIO_REFERRAL]
    assert referral["code"]["text"] == (
        "Referral to psychologically informed physiotherapy (combined physical and "
        "psychological care)"
    )
    (detail,) = referral["orderDetail"]
    assert "fear of movement" in detail["text"]
    assert "STarT Back high risk on" in referral["note"][0]["text"]
    assert referral["reasonReference"][0]["reference"] == "Condition/lbp-1"
    assert "links" not in card


def test_low_risk_suggests_no_referral(client) -> None:
    card = result_card(client, "low")
    assert "suggestions" not in card and "selectionBehavior" not in card
    assert "overrideReasons" not in card


def test_no_risk_group_suggests_no_referral(client) -> None:
    # A total >= 4 without the subscale: medium and high cannot be told apart.
    prefetch = chart_prefetch([back_pain()], observations=[observation("91351-7", value=6)])
    response = call(client, "lbp-patient-view", hook_request("patient-view", prefetch=prefetch))
    (card,) = response.json()["cards"]
    assert "subscale needed" in card["summary"]
    assert "suggestions" not in card


def test_authored_on_is_the_injected_today(started_clients, settings_factory) -> None:
    later = TODAY + timedelta(days=3)
    client = started_clients.start(settings_factory(), today=later)
    referral = referral_of(result_card(client, "medium"))
    assert referral["authoredOn"] == later.isoformat()


def test_the_reason_is_the_condition_that_dates_the_episode(client) -> None:
    conditions = [
        back_pain(onset_days_ago=15, condition_id="acute"),
        back_pain(onset_days_ago=400, condition_id="chronic"),
        back_pain(onset_days_ago=900, condition_id="old", clinical_status="resolved"),
    ]
    referral = referral_of(result_card(client, "medium", conditions=conditions))
    assert [r["reference"] for r in referral["reasonReference"]] == ["Condition/chronic"]


def test_a_condition_without_an_id_gives_its_back_pain_code(client) -> None:
    lbp = condition(ICD10CM, "M54.50", text="Low back pain, unspecified")
    del lbp["id"]
    referral = referral_of(result_card(client, "medium", conditions=[lbp]))
    assert "reasonReference" not in referral
    assert referral["reasonCode"] == [
        {
            "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M54.50"}],
            "text": "Low back pain, unspecified",
        }
    ]


def test_a_text_only_condition_without_an_id_gives_its_text(client) -> None:
    lbp = condition(None, None, text="lumbago since lifting")
    del lbp["id"]
    referral = referral_of(result_card(client, "high", conditions=[lbp]))
    assert referral["reasonCode"] == [{"text": "lumbago since lifting"}]


@pytest.mark.parametrize(
    ("user_id", "requester"),
    [
        ("PractitionerRole/role-7", {"reference": "PractitionerRole/role-7"}),
        ("Practitioner/dr-2", {"reference": "Practitioner/dr-2"}),
        # A patient or relative viewing the chart does not order a referral.
        ("Patient/pt-1", None),
        ("RelatedPerson/rp-1", None),
    ],
)
def test_the_requester_is_the_users_practitioner_reference(client, user_id, requester) -> None:
    referral = referral_of(result_card(client, "medium", user_id=user_id))
    assert referral.get("requester") == requester


def test_without_a_back_pain_condition_the_default_back_pain_code_is_the_reason() -> None:
    # Back-pain context from a draft order's reason only: no Condition to reference.
    order = DraftServiceRequest.model_validate(
        {
            "resourceType": "ServiceRequest",
            "id": "sr-1",
            "status": "draft",
            "reasonCode": [{"coding": [{"system": SNOMED, "code": "279039007"}]}],
        }
    )
    record = PatientRecord(today=TODAY, hook="order-sign", draft_orders=(order,))
    assert record.has_back_pain_context and not record.back_pain_conditions
    referral = stratified_care.referral_for(RiskGroup.MEDIUM, record)
    assert referral is not None and referral.reason_reference is None
    assert referral.reason_code is not None
    assert [c.code for c in referral.reason_code.coding] == ["279039007"]
    assert stratified_care.referral_for(RiskGroup.LOW, record) is None
    assert stratified_care.referral_for(None, record) is None
