"""The CDS Hooks sandbox's sloppy draft against a real FHIR server (prefetch absent): the opioid
card still offers its 7-day update, and the update is valid R4 (RULES.md v2 "Lenient input")."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest as R4BMedicationRequest

from tests.contract import assert_response_contract
from tests.factories import back_pain, hook_request, patient
from tests.fhir_server import FhirServer
from tests.sandbox_orders import sandbox_oxycodone_10_days

pytestmark = pytest.mark.integration

PATIENT = "int-lenient-pt"


@pytest.fixture(scope="module")
def patient_loaded(fhir_server: FhirServer) -> FhirServer:
    pain = back_pain(onset_days_ago=12, condition_id="int-lenient-lbp")
    pain["subject"] = {"reference": f"Patient/{PATIENT}"}
    fhir_server.put_all([patient(45, patient_id=PATIENT), pain])
    return fhir_server


def test_the_sandbox_draft_gets_a_valid_7_day_update(
    live_client_factory: Any, patient_loaded: FhirServer
) -> None:
    client = live_client_factory()
    draft = sandbox_oxycodone_10_days("int-sandbox-oxy", patient_id=PATIENT)
    body = hook_request(
        "order-sign",
        draft_orders=[draft],
        fhir_server=patient_loaded.base_url,
        token="integration-token",
        patient_id=PATIENT,
    )
    assert "prefetch" not in body
    response = client.post("/cds-services/lbp-order-sign", json=body)
    assert response.status_code == 200, response.text
    assert assert_response_contract(response.json(), "order-sign") == ["opioid-order"]
    [card] = response.json()["cards"]
    assert "**Days supply:** 10 days" in card["detail"]
    [update] = [
        action["resource"]
        for s in card.get("suggestions") or []
        for action in s["actions"]
        if action["type"] == "update"
    ]
    R4BMedicationRequest.model_validate(update)
    assert update["dispenseRequest"]["expectedSupplyDuration"]["value"] == 7
    assert update["category"] == [draft["category"]]
    assert update["reasonCode"] == [draft["reasonCode"]]
