"""Medication cards with the data read from a real FHIR server (prefetch absent).

The patient's MedicationRequests name their drug by `medicationReference` to Medication resources
that only the server holds: the service must fetch them to see the active opioid (counted in the
total MME/day), the active benzodiazepine (critical) and the long-running muscle relaxant.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests import medication_factories as mf
from tests.contract import assert_response_contract
from tests.factories import back_pain, hook_request, patient
from tests.fhir_server import FhirServer

pytestmark = pytest.mark.integration

PATIENT = "int-med-pt"


def _for_patient(resource: dict[str, Any]) -> dict[str, Any]:
    resource["subject"] = {"reference": f"Patient/{PATIENT}"}
    return resource


@pytest.fixture(scope="module")
def medications_loaded(fhir_server: FhirServer) -> FhirServer:
    fhir_server.put_all(
        [
            patient(70, patient_id=PATIENT),
            _for_patient(back_pain(onset_days_ago=40, condition_id="int-med-lbp")),
            mf.medication("int-hydro", mf.HYDROCODONE_APAP_7_5),
            mf.medication("int-lzp", mf.LORAZEPAM_1),
            mf.medication("int-cyclo", mf.CYCLOBENZAPRINE_10),
            _for_patient(
                mf.medication_request(
                    None,
                    status="active",
                    medication_reference="Medication/int-hydro",
                    dose=2,
                    authored_days_ago=30,
                    request_id="int-mr-hydro",
                )
            ),
            _for_patient(
                mf.medication_request(
                    None,
                    status="active",
                    medication_reference="Medication/int-lzp",
                    per_day=1,
                    # No days supply: current while authored in the last 90 days (RULES v2).
                    authored_days_ago=60,
                    request_id="int-mr-lzp",
                )
            ),
            _for_patient(
                mf.medication_request(
                    None,
                    status="active",
                    medication_reference="Medication/int-cyclo",
                    per_day=3,
                    authored_days_ago=35,
                    request_id="int-mr-cyclo",
                )
            ),
        ]
    )
    return fhir_server


def test_order_sign_resolves_server_medications(live_client_factory, medications_loaded) -> None:
    client = live_client_factory()
    draft = mf.medication_request(mf.OXYCODONE_5, quantity=12, request_id="int-draft-oxy")
    cyclo = mf.medication_request(
        mf.CYCLOBENZAPRINE_10, per_day=3, every_hours=None, supply_days=7, request_id="int-draft-cy"
    )
    body = hook_request(
        "order-sign",
        draft_orders=[_for_patient(draft), _for_patient(cyclo)],
        fhir_server=medications_loaded.base_url,
        token="integration-token",
        patient_id=PATIENT,
    )
    response = client.post("/cds-services/lbp-order-sign", json=body)
    assert response.status_code == 200, response.text
    topics = assert_response_contract(response.json(), "order-sign")
    assert topics == ["opioid-order", "muscle-relaxant-older-adult"]
    opioid = response.json()["cards"][0]
    # 30 (drafted oxycodone) + 60 (active hydrocodone, from Medication/int-hydro) = 90.
    assert opioid["indicator"] == "critical"
    assert opioid["summary"] == (
        "Oxycodone: opioids total 90 MME/day (>= 90) with a benzodiazepine: high overdose risk"
    )
    assert "total with the active opioid orders:** 90 MME/day" in opioid["detail"]
    assert "hydrocodone bitartrate 7.5 MG Oral Tablet (active): 60 MME/day" in opioid["detail"]
    assert "lorazepam 1 MG Oral Tablet (active)" in opioid["detail"]


def test_patient_view_flags_the_relaxant_active_for_35_days(
    live_client_factory, medications_loaded
) -> None:
    client = live_client_factory()
    body = hook_request(
        "patient-view",
        fhir_server=medications_loaded.base_url,
        token="integration-token",
        patient_id=PATIENT,
    )
    response = client.post("/cds-services/lbp-patient-view", json=body)
    assert response.status_code == 200, response.text
    topics = assert_response_contract(response.json(), "patient-view")
    assert "muscle-relaxant-duration" in topics
    [card] = [
        c
        for c in response.json()["cards"]
        if c["source"]["topic"]["code"] == "muscle-relaxant-duration"
    ]
    assert card["summary"] == (
        "Cyclobenzaprine ordered 35 days ago: muscle relaxants are for 2-3 weeks at most"
    )
    assert "35 days" in card["detail"]
    assert "cyclobenzaprine hydrochloride 10 MG Oral Tablet" in card["detail"]
