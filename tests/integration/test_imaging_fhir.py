"""imaging-without-red-flags against the real FHIR server: prefetch absent, the service queries it."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.contract import assert_response_contract
from tests.factories import (
    CPT,
    ICD10CM,
    LOINC,
    RXNORM,
    SNOMED,
    back_pain,
    concept,
    condition,
    days_ago,
    hook_request,
    next_id,
    patient,
    service_request,
)
from tests.fhir_server import BUNDLED, FhirServer

pytestmark = pytest.mark.integration

TOPIC = "imaging-without-red-flags"
SYNTHEA_LBP = BUNDLED / "synthea" / "lbp-fb7c882a-f897-e7c5-67e0-825e7fd55d15.transaction.json"
SYNTHEA_PATIENT = "fb7c882a-f897-e7c5-67e0-825e7fd55d15"
SYNTHEA_CHRONIC_LBP = "93ce5668-31df-e8bd-f192-8438720f4df9"  # 278860009, onset 2020-09-03


def owned_by(patient_id: str, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "subject": {"reference": f"Patient/{patient_id}"}} for r in resources]


def load_patient(server: FhirServer, resources: list[dict[str, Any]], *, age: int = 40) -> str:
    patient_id = next_id("img-pt")
    server.put_all([patient(age, patient_id=patient_id), *owned_by(patient_id, resources)])
    return patient_id


def topics(
    client: TestClient,
    server: FhirServer,
    patient_id: str,
    orders: list[dict[str, Any]],
    *,
    hook: str = "order-sign",
    selections: list[str] | None = None,
) -> list[str]:
    body = hook_request(
        hook,
        fhir_server=server.base_url,
        token="integration-token",
        patient_id=patient_id,
        draft_orders=owned_by(patient_id, orders),
        selections=selections,
    )
    assert "prefetch" not in body
    response = client.post(f"/cds-services/lbp-{hook}", json=body)
    assert response.status_code == 200, response.text
    return assert_response_contract(response.json(), hook)


@pytest.fixture
def client(live_client_factory: Callable[..., TestClient]) -> TestClient:
    return live_client_factory()


@pytest.mark.parametrize(("days", "fires"), [(10, True), (41, True), (42, False), (43, False)])
def test_six_week_boundary_from_the_fhir_server(
    client: TestClient, fhir_server: FhirServer, days: int, fires: bool
) -> None:
    pid = load_patient(fhir_server, [back_pain(days)])
    assert (TOPIC in topics(client, fhir_server, pid, [service_request()])) is fires


def test_unknown_onset_and_age_58_from_the_fhir_server(
    client: TestClient, fhir_server: FhirServer
) -> None:
    pid = load_patient(fhir_server, [back_pain(None)], age=58)
    body = hook_request(
        "order-sign",
        fhir_server=fhir_server.base_url,
        token="t",
        patient_id=pid,
        draft_orders=owned_by(pid, [service_request(order_id="mri-58")]),
    )
    [card] = client.post("/cds-services/lbp-order-sign", json=body).json()["cards"]
    assert "onset unknown: a new episode" in card["detail"]
    assert "**Age:** 58 years" in card["detail"] and card["indicator"] == "warning"
    assert card["suggestions"][0]["actions"][0]["resourceId"] == "ServiceRequest/mri-58"


def test_knee_mri_and_patient_without_back_pain_get_no_card(
    client: TestClient, fhir_server: FhirServer
) -> None:
    with_back_pain = load_patient(fhir_server, [back_pain(10)])
    knee = service_request(CPT, "73721", text="MRI knee without contrast")
    assert topics(client, fhir_server, with_back_pain, [knee]) == []
    knee_pain = condition(SNOMED, "30989003", text="Knee pain", onset_days_ago=10)
    without_back_pain = load_patient(fhir_server, [knee_pain])
    assert topics(client, fhir_server, without_back_pain, [service_request()]) == []


def test_red_flag_only_in_the_orders_reason_code(
    client: TestClient, fhir_server: FhirServer
) -> None:
    pid = load_patient(fhir_server, [back_pain(10)])
    flagged = service_request(reason=concept(ICD10CM, "G83.4", display="Cauda equina syndrome"))
    assert topics(client, fhir_server, pid, [flagged]) == []


def fever(value: float, days: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": next_id("temp"),
        "status": "final",
        "code": concept(LOINC, "8310-5", display="Body temperature"),
        "effectiveDateTime": days_ago(days),
        "valueQuantity": {
            "value": value,
            "unit": "degF",
            "system": "http://unitsofmeasure.org",
            "code": "[degF]",
        },
    }


def prednisone(supply_days: int) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": next_id("pred"),
        "status": "completed",
        "intent": "order",
        "medicationCodeableConcept": concept(
            RXNORM, "312615", display="prednisone 20 MG Oral Tablet"
        ),
        "authoredOn": days_ago(150),
        "dispenseRequest": {
            "expectedSupplyDuration": {
                "value": supply_days,
                "unit": "days",
                "system": "http://unitsofmeasure.org",
                "code": "d",
            }
        },
    }


def lumbar_fusion(status: str) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": next_id("proc"),
        "status": status,
        "code": concept(CPT, "22612", "Posterior lumbar arthrodesis"),
        "performedDateTime": days_ago(2000),
    }


@pytest.mark.parametrize(
    ("extra", "fires"),
    [
        ([condition(ICD10CM, "M46.26", onset_days_ago=365, clinical_status="resolved")], False),
        ([condition(ICD10CM, "M46.26", onset_days_ago=366, clinical_status="resolved")], True),
        ([condition(SNOMED, "363346000", onset_days_ago=4000, clinical_status="resolved")], False),
        ([condition(ICD10CM, "S32.010A", onset_days_ago=91, clinical_status="resolved")], True),
        ([condition(ICD10CM, "S32.010A", onset_days_ago=91, clinical_status="active")], False),
        ([fever(100.4, 3)], False),
        ([fever(100.3, 3)], True),
        ([fever(102.0, 15)], True),
        ([prednisone(90)], False),
        ([prednisone(89)], True),
        ([lumbar_fusion("completed")], False),
        ([lumbar_fusion("not-done")], True),
    ],
    ids=[
        "infection-365d",
        "infection-366d",
        "cancer-history",
        "trauma-91d-resolved",
        "trauma-91d-active",
        "fever-100.4F",
        "fever-100.3F",
        "fever-15-days-ago",
        "prednisone-90d",
        "prednisone-89d",
        "lumbar-fusion",
        "lumbar-fusion-not-done",
    ],
)
def test_red_flags_read_from_the_fhir_server(
    client: TestClient, fhir_server: FhirServer, extra: list[dict[str, Any]], fires: bool
) -> None:
    pid = load_patient(fhir_server, [back_pain(10), *copy.deepcopy(extra)])
    assert (TOPIC in topics(client, fhir_server, pid, [service_request()])) is fires


def test_order_select_checks_only_the_selections(
    client: TestClient, fhir_server: FhirServer
) -> None:
    pid = load_patient(fhir_server, [back_pain(10)])
    mri = service_request(order_id="sel-mri")
    knee = service_request(CPT, "73721", text="MRI knee", order_id="sel-knee")
    assert (
        topics(
            client,
            fhir_server,
            pid,
            [mri, knee],
            hook="order-select",
            selections=["ServiceRequest/sel-knee"],
        )
        == []
    )
    assert topics(
        client,
        fhir_server,
        pid,
        [mri, knee],
        hook="order-select",
        selections=["ServiceRequest/sel-mri"],
    ) == [TOPIC]


def synthea_clone(suffix: str) -> dict[str, Any]:
    """The Synthea LBP patient under new ids (so the shared original stays as loaded)."""
    text = SYNTHEA_LBP.read_text(encoding="utf-8")
    for entry in json.loads(text)["entry"]:
        rid = entry["resource"]["id"]
        text = text.replace(rid, f"{rid}-{suffix}")
    clone: dict[str, Any] = json.loads(text)
    return clone


def test_synthea_chronic_back_pain_patient_gets_no_imaging_warning(
    client: TestClient, fhir_server: FhirServer
) -> None:
    fhir_server.load_file(SYNTHEA_LBP)
    assert TOPIC not in topics(client, fhir_server, SYNTHEA_PATIENT, [service_request()])


@pytest.mark.parametrize(("chronic_resolved", "fires"), [(True, True), (False, False)])
def test_synthea_patient_with_a_new_10_day_episode(
    client: TestClient, fhir_server: FhirServer, chronic_resolved: bool, fires: bool
) -> None:
    suffix = "new-episode" if chronic_resolved else "flare"
    bundle = synthea_clone(suffix)
    patient_id = f"{SYNTHEA_PATIENT}-{suffix}"
    chronic = next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["id"].startswith(SYNTHEA_CHRONIC_LBP)
    )
    if chronic_resolved:
        # The chronic episode ended; a new one began 10 days ago.
        chronic["clinicalStatus"]["coding"][0]["code"] = "resolved"
        chronic["abatementDateTime"] = days_ago(200)
    fhir_server.post_bundle(bundle)
    new_episode = back_pain(10, condition_id=next_id("new-lbp"))
    fhir_server.put_all(owned_by(patient_id, [new_episode]))
    # RULES.md: the episode starts at the earliest onset of the *active* back-pain Conditions,
    # so a new 10-day Condition beside the still-active 2020 one is day 2271, not day 10.
    assert (TOPIC in topics(client, fhir_server, patient_id, [service_request()])) is fires
