"""Only the context patient's data counts, against a real FHIR server (sekmet ignores `patient=`
on QuestionnaireResponse searches, so it returns every patient's responses)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract import assert_response_contract
from tests.factories import back_pain, hook_request, patient
from tests.fhir_server import FhirServer
from tests.startback_builders import answers_for, questionnaire_response

pytestmark = pytest.mark.integration

PATIENT_A = "whose-data-a"
PATIENT_B = "whose-data-b"


def of(resource: dict[str, Any], patient_id: str, resource_id: str) -> dict[str, Any]:
    return {**resource, "id": resource_id, "subject": {"reference": f"Patient/{patient_id}"}}


@pytest.fixture(scope="module")
def two_patients(fhir_server: FhirServer) -> FhirServer:
    # Both with back pain (10 days); a completed high-risk STarT Back response for A only.
    high_risk = questionnaire_response(answers_for({1, 5, 6, 7, 8}, item9="Very much"))
    fhir_server.put_all(
        [
            patient(patient_id=PATIENT_A),
            patient(patient_id=PATIENT_B),
            of(back_pain(), PATIENT_A, "whose-data-lbp-a"),
            of(back_pain(), PATIENT_B, "whose-data-lbp-b"),
            of(high_risk, PATIENT_A, "whose-data-qr-a"),
        ]
    )
    return fhir_server


def topics_for(client: Any, server: FhirServer, patient_id: str) -> list[str]:
    body = hook_request(
        "patient-view", fhir_server=server.base_url, token="t", patient_id=patient_id
    )
    response = client.post("/cds-services/lbp-patient-view", json=body)
    assert response.status_code == 200, response.text
    return assert_response_contract(response.json(), "patient-view")


def test_another_patients_startback_result_is_not_this_patients(
    live_client_factory, two_patients: FhirServer
) -> None:
    client = live_client_factory()
    assert topics_for(client, two_patients, PATIENT_B) == ["startback-screening"]
    assert topics_for(client, two_patients, PATIENT_A) == ["startback-result"]
