"""The prefetch matrix: present / null / absent / OperationOutcome, paging, the bearer token."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import respx
from fastapi.testclient import TestClient

from tests.conftest import call
from tests.factories import (
    FHIR_BASE,
    PATIENT_ID,
    back_pain,
    bundle,
    chart_prefetch,
    hook_request,
    patient,
    service_request,
)


def topics(response: httpx.Response) -> list[str]:
    return [c["source"]["topic"]["code"] for c in response.json()["cards"]]


def test_prefetch_present_means_no_fhir_call(
    client: TestClient, fhir_mock: respx.MockRouter
) -> None:
    route = fhir_mock.route()
    body = hook_request(
        "patient-view", prefetch=chart_prefetch([back_pain()]), fhir_server=FHIR_BASE, token="t"
    )
    response = call(client, "lbp-patient-view", body)
    assert response.status_code == 200
    assert not route.called


def test_prefetch_null_means_no_data_and_no_fetch(
    client: TestClient, fhir_mock: respx.MockRouter
) -> None:
    route = fhir_mock.route()
    prefetch = dict.fromkeys(chart_prefetch())
    response = call(
        client,
        "lbp-patient-view",
        hook_request("patient-view", prefetch=prefetch, fhir_server=FHIR_BASE, token="t"),
    )
    assert response.status_code == 200
    assert response.json() == {"cards": []}
    assert not route.called


def test_prefetch_null_without_fhir_server_is_fine(client: TestClient) -> None:
    prefetch = dict.fromkeys(chart_prefetch())
    response = call(client, "lbp-patient-view", hook_request("patient-view", prefetch=prefetch))
    assert response.status_code == 200


def test_absent_keys_are_fetched_in_parallel_with_the_bearer_token(
    client: TestClient, fhir_mock: respx.MockRouter
) -> None:
    patient_route = fhir_mock.get(f"/Patient/{PATIENT_ID}").mock(
        return_value=httpx.Response(200, json=patient())
    )
    search_route = fhir_mock.get(
        url__regex=r".*/(Condition|Observation|MedicationRequest|QuestionnaireResponse|Encounter)\?.*"
    ).mock(return_value=httpx.Response(200, json=bundle([])))
    body = hook_request("patient-view", fhir_server=FHIR_BASE, token="secret-token")
    response = call(client, "lbp-patient-view", body)
    assert response.status_code == 200, response.text
    assert patient_route.called
    assert search_route.call_count == 5
    for request, _ in fhir_mock.calls:
        assert request.headers["Authorization"] == "Bearer secret-token"
        assert f"patient={PATIENT_ID}" in str(request.url) or request.url.path.endswith(PATIENT_ID)


def test_only_absent_keys_are_fetched(client: TestClient, fhir_mock: respx.MockRouter) -> None:
    conditions = fhir_mock.get(url__regex=r".*/Condition\?patient=pt-1&_count=500$").mock(
        return_value=httpx.Response(200, json=bundle([back_pain()]))
    )
    other = fhir_mock.route()
    prefetch = chart_prefetch()
    del prefetch["conditions"]
    response = call(
        client,
        "lbp-patient-view",
        hook_request("patient-view", prefetch=prefetch, fhir_server=FHIR_BASE, token="t"),
    )
    assert response.status_code == 200
    assert conditions.call_count == 1
    assert not other.called


def test_operation_outcome_prefetch_is_fetched_again(
    client: TestClient, fhir_mock: respx.MockRouter
) -> None:
    conditions = fhir_mock.get(url__regex=r".*/Condition\?.*").mock(
        return_value=httpx.Response(200, json=bundle([]))
    )
    prefetch = chart_prefetch()
    prefetch["conditions"] = {"resourceType": "OperationOutcome", "issue": []}
    response = call(
        client,
        "lbp-patient-view",
        hook_request("patient-view", prefetch=prefetch, fhir_server=FHIR_BASE, token="t"),
    )
    assert response.status_code == 200
    assert conditions.called


def test_anonymous_fhir_access_when_allowed(client_factory, fhir_mock: respx.MockRouter) -> None:
    client = client_factory(fhir_allow_anonymous=True)
    fhir_mock.get(f"/Patient/{PATIENT_ID}").mock(return_value=httpx.Response(200, json=patient()))
    fhir_mock.get(url__regex=r".*\?.*").mock(return_value=httpx.Response(200, json=bundle([])))
    response = call(client, "lbp-patient-view", hook_request("patient-view", fhir_server=FHIR_BASE))
    assert response.status_code == 200
    for request, _ in fhir_mock.calls:
        assert "Authorization" not in request.headers


def test_search_pages_are_followed(client: TestClient, fhir_mock: respx.MockRouter) -> None:
    page2 = f"{FHIR_BASE}/Condition?patient=pt-1&_page=2"
    fhir_mock.get(url__regex=r".*/Condition\?patient=pt-1&_count=500$").mock(
        return_value=httpx.Response(200, json=bundle([back_pain()], next_url=page2))
    )
    second = fhir_mock.get(page2).mock(return_value=httpx.Response(200, json=bundle([])))
    prefetch = chart_prefetch()
    del prefetch["conditions"]
    response = call(
        client,
        "lbp-patient-view",
        hook_request("patient-view", prefetch=prefetch, fhir_server=FHIR_BASE, token="t"),
    )
    assert response.status_code == 200
    assert second.called
    assert second.calls.last.request.headers["Authorization"] == "Bearer t"


def test_paginated_prefetch_is_completed_from_the_fhir_server(
    client: TestClient, fhir_mock: respx.MockRouter
) -> None:
    page2 = f"{FHIR_BASE}/Condition?patient=pt-1&_page=2"
    second = fhir_mock.get(page2).mock(return_value=httpx.Response(200, json=bundle([])))
    prefetch = chart_prefetch()
    prefetch["conditions"] = bundle([back_pain()], next_url=page2)
    response = call(
        client,
        "lbp-patient-view",
        hook_request("patient-view", prefetch=prefetch, fhir_server=FHIR_BASE, token="t"),
    )
    assert response.status_code == 200
    assert second.called


def test_next_link_to_another_host_is_never_followed_with_the_token(client: TestClient) -> None:
    with respx.mock(assert_all_called=False) as elsewhere:
        stolen = elsewhere.route(host="evil.example")
        prefetch = chart_prefetch()
        prefetch["conditions"] = bundle(
            [back_pain()], next_url="https://evil.example/fhir/Condition?page=2"
        )
        response = call(
            client,
            "lbp-patient-view",
            hook_request("patient-view", prefetch=prefetch, fhir_server=FHIR_BASE, token="t"),
        )
    assert response.status_code == 412
    assert not stolen.called


def test_paginated_prefetch_without_fhir_access_uses_the_pages_given(client: TestClient) -> None:
    prefetch = chart_prefetch()
    prefetch["conditions"] = bundle([back_pain()], next_url=f"{FHIR_BASE}/Condition?page=2")
    response = call(client, "lbp-patient-view", hook_request("patient-view", prefetch=prefetch))
    assert response.status_code == 200
    # The back pain on the page given still counts.
    assert topics(response) == ["startback-screening"]


def test_malformed_resources_are_skipped_not_500(client: TestClient) -> None:
    prefetch = chart_prefetch(
        [
            {
                "resourceType": "Condition",
                "id": 12,
                "code": "not a concept",
                "clinicalStatus": [1, 2],
            },
            {"resourceType": "Condition", "onsetDateTime": {"nested": True}},
            back_pain(),
        ]
    )
    prefetch["conditions"]["entry"].append({"resource": None})
    prefetch["conditions"]["entry"].append({"fullUrl": "no resource"})
    body = hook_request("patient-view", prefetch=prefetch)
    body["context"]["draftOrders"] = "ignored on patient-view"
    response = call(client, "lbp-patient-view", body)
    assert response.status_code == 200
    # The well-formed back pain Condition is kept.
    assert topics(response) == ["startback-screening"]


def test_malformed_draft_order_is_skipped(client: TestClient) -> None:
    from tests.factories import order_prefetch

    body = hook_request("order-sign", prefetch=order_prefetch([back_pain()]))
    body["context"]["draftOrders"]["entry"] = [
        {"resource": {"resourceType": "ServiceRequest", "id": "x", "code": 5}},
        {"resource": "nope"},
        {"resource": {"resourceType": "NutritionOrder", "id": "n1"}},
        "not an entry",
        {"resource": service_request(order_id="mri-good")},
    ]
    response = call(client, "lbp-order-sign", body)
    assert response.status_code == 200
    # The well-formed lumbar MRI draft is still checked.
    [card] = response.json()["cards"]
    assert card["source"]["topic"]["code"] == "imaging-without-red-flags"
    assert "ServiceRequest/mri-good" in orjson.dumps(card["suggestions"]).decode()


def order_sign_naming(
    medication: str, *, fhir_server: str | None = None, token: str | None = None
) -> dict[str, Any]:
    """order-sign for a back-pain chart with one opioid draft whose medication is only a
    reference (`Medication/<id>`) that the prefetch does not hold."""
    from tests import medication_factories as mf
    from tests.factories import order_prefetch

    draft = mf.medication_request(None, medication_reference=medication, supply_days=3, quantity=12)
    return hook_request(
        "order-sign",
        prefetch=order_prefetch([back_pain()]),
        draft_orders=[draft],
        fhir_server=fhir_server,
        token=token,
    )


def test_draft_order_medication_on_the_server_is_fetched(
    client: TestClient, fhir_mock: respx.MockRouter
) -> None:
    """A draft naming Medication/<id> the prefetch does not hold: read it from the FHIR server."""
    from tests import medication_factories as mf

    med = fhir_mock.get(url__regex=r".*/Medication\?_id=med-oxy$").mock(
        return_value=httpx.Response(200, json=bundle([mf.medication("med-oxy", mf.OXYCODONE_5)]))
    )
    body = order_sign_naming("Medication/med-oxy", fhir_server=FHIR_BASE, token="t")
    response = call(client, "lbp-order-sign", body)
    assert response.status_code == 200, response.text
    assert med.called
    assert med.calls.last.request.headers["Authorization"] == "Bearer t"
    assert topics(response) == ["opioid-order"]


def test_draft_medication_reference_without_fhir_access_is_not_an_error(client: TestClient) -> None:
    from tests import medication_factories as mf
    from tests.factories import order_prefetch

    draft = mf.medication_request(
        None, medication_reference="Medication/unknown-1", supply_days=3, quantity=12
    )
    coded = mf.medication_request(mf.OXYCODONE_5, supply_days=3, quantity=12)
    body = hook_request(
        "order-sign", prefetch=order_prefetch([back_pain()]), draft_orders=[draft, coded]
    )
    response = call(client, "lbp-order-sign", body)
    assert response.status_code == 200
    # The unresolved reference is passed over; the coded opioid draft still gets its card.
    assert topics(response) == ["opioid-order"]


def test_a_bearer_token_that_is_not_printable_ascii_is_412_and_never_sent(
    client: TestClient, fhir_mock: respx.MockRouter
) -> None:
    """A header value must be printable ASCII; httpx would raise UnicodeEncodeError (a 500)."""
    route = fhir_mock.route().mock(return_value=httpx.Response(200, json=bundle([])))
    for token in ["t\u00f6ken", "two words", "t\r\nX-Injected: 1"]:
        response = call(
            client,
            "lbp-patient-view",
            hook_request("patient-view", fhir_server=FHIR_BASE, token=token),
        )
        assert response.status_code == 412, token
        assert "access_token" in response.json()["issue"][0]["diagnostics"]
    assert not route.called


def test_a_failed_medication_chunk_does_not_fail_the_call(
    client: TestClient, fhir_mock: respx.MockRouter
) -> None:
    """Medications only refine identification: a FHIR error there leaves the drafts' own text."""
    med = fhir_mock.get(url__regex=r".*/Medication\?_id=.*").mock(return_value=httpx.Response(500))
    body = order_sign_naming("Medication/med-oxy", fhir_server=FHIR_BASE, token="t")
    response = call(client, "lbp-order-sign", body)
    assert response.status_code == 200, response.text
    assert med.call_count == 1
