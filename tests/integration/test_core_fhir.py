"""The service reads a real FHIR server when prefetch is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract import assert_response_contract
from tests.factories import hook_request
from tests.fhir_server import BUNDLED, FhirServer

pytestmark = pytest.mark.integration

SYNTHEA_LBP = BUNDLED / "synthea" / "lbp-fb7c882a-f897-e7c5-67e0-825e7fd55d15.transaction.json"
SYNTHEA_PATIENT = "fb7c882a-f897-e7c5-67e0-825e7fd55d15"


@pytest.fixture(scope="module")
def synthea_loaded(fhir_server: FhirServer) -> FhirServer:
    fhir_server.load_file(Path(SYNTHEA_LBP))
    return fhir_server


@pytest.mark.parametrize(
    ("service_id", "hook"),
    [
        ("lbp-patient-view", "patient-view"),
        ("lbp-encounter-start", "encounter-start"),
        ("lbp-order-sign", "order-sign"),
        ("lbp-order-select", "order-select"),
    ],
)
def test_each_hook_reads_the_fhir_server_when_prefetch_is_absent(
    live_client_factory, synthea_loaded: FhirServer, service_id: str, hook: str
) -> None:
    client = live_client_factory()
    body = hook_request(
        hook,
        fhir_server=synthea_loaded.base_url,
        token="integration-token",
        patient_id=SYNTHEA_PATIENT,
    )
    response = client.post(f"/cds-services/{service_id}", json=body)
    assert response.status_code == 200, response.text
    assert_response_contract(response.json(), hook)


def test_unknown_patient_on_the_fhir_server_gets_no_cards(
    live_client_factory, synthea_loaded: FhirServer
) -> None:
    client = live_client_factory()
    body = hook_request(
        "patient-view", fhir_server=synthea_loaded.base_url, token="t", patient_id="nobody-here"
    )
    response = client.post("/cds-services/lbp-patient-view", json=body)
    assert response.status_code == 200
    assert response.json() == {"cards": []}


def test_fhir_server_off_the_allow_list_is_refused(
    live_client_factory, synthea_loaded: FhirServer
) -> None:
    client = live_client_factory(fhir_allowlist=["https://ehr.example.org"])
    body = hook_request(
        "patient-view", fhir_server=synthea_loaded.base_url, token="t", patient_id=SYNTHEA_PATIENT
    )
    assert client.post("/cds-services/lbp-patient-view", json=body).status_code == 412
