from fastapi.testclient import TestClient

from tests.conftest import SERVICE_IDS
from tests.contract import assert_no_empty_values
from tests.jwt_helpers import UNREAD_ISSUERS


def test_discovery_lists_the_four_services(client: TestClient) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    body = response.json()
    assert_no_empty_values(body)
    services = {s["id"]: s for s in body["services"]}
    assert tuple(services) == SERVICE_IDS
    assert {s["hook"] for s in services.values()} == {
        "patient-view",
        "encounter-start",
        "order-select",
        "order-sign",
    }
    for service in services.values():
        assert service["description"] and service["title"]


def test_prefetch_templates_ask_for_all_medication_requests_and_use_context_tokens(
    client: TestClient,
) -> None:
    services = {s["id"]: s for s in client.get("/cds-services").json()["services"]}
    for service in services.values():
        prefetch = service["prefetch"]
        assert prefetch["patient"] == "Patient/{{context.patientId}}"
        # Every status: the steroid and relaxant windows need past orders.
        assert prefetch["medicationRequests"] == "MedicationRequest?patient={{context.patientId}}"
        assert prefetch["conditions"] == "Condition?patient={{context.patientId}}"
        for template in prefetch.values():
            assert "{{context.patientId}}" in template
            assert "_include" not in template  # outside the CDS Hooks 2.0 prefetch subset
    assert "procedures" in services["lbp-order-sign"]["prefetch"]
    assert (
        "http://loinc.org|8310-5"
        in services["lbp-order-sign"]["prefetch"]["temperatureObservations"]
    )
    assert (
        "http://loinc.org|91352-5"
        in services["lbp-patient-view"]["prefetch"]["startbackObservations"]
    )
    assert "questionnaireResponses" in services["lbp-patient-view"]["prefetch"]


def test_healthz_needs_no_auth(client_factory) -> None:
    client = client_factory(require_auth=True, trusted_issuers=UNREAD_ISSUERS)
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
