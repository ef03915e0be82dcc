"""Random request bodies never get a 500 (hypothesis, bounded in time)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import back_pain, chart_prefetch, hook_request, order_prefetch, service_request

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)

FIELDS = [
    "hook",
    "hookInstance",
    "context",
    "prefetch",
    "fhirServer",
    "fhirAuthorization",
    "extension",
]


def mutate(base: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    body = dict(base)
    for field in data.draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        body[field] = data.draw(json_values)
    if data.draw(st.booleans()) and isinstance(body.get("context"), dict):
        context = dict(body["context"])
        key = data.draw(
            st.sampled_from(["userId", "patientId", "encounterId", "selections", "draftOrders"])
        )
        context[key] = data.draw(json_values)
        body["context"] = context
    if data.draw(st.booleans()) and isinstance(body.get("prefetch"), dict) and body["prefetch"]:
        prefetch = dict(body["prefetch"])
        key = data.draw(st.sampled_from(sorted(prefetch)))
        prefetch[key] = data.draw(json_values)
        body["prefetch"] = prefetch
    return body


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_hook_requests_never_500(client: TestClient, data: st.DataObject) -> None:
    service, hook, prefetch, orders = data.draw(
        st.sampled_from(
            [
                ("lbp-patient-view", "patient-view", chart_prefetch([back_pain()]), None),
                (
                    "lbp-order-sign",
                    "order-sign",
                    order_prefetch([back_pain()]),
                    [service_request()],
                ),
                (
                    "lbp-order-select",
                    "order-select",
                    order_prefetch([back_pain()]),
                    [service_request()],
                ),
            ]
        )
    )
    body = mutate(hook_request(hook, prefetch=prefetch, draft_orders=orders), data)
    response = client.post(f"/cds-services/{service}", json=body)
    assert response.status_code in (200, 400, 412), response.text


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=json_values)
def test_random_json_never_500(client: TestClient, body: Any) -> None:
    for path in ("/cds-services/lbp-order-sign", "/cds-services/lbp-patient-view/feedback"):
        response = client.post(path, json=body)
        assert response.status_code in (200, 400, 412), response.text


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=200))
def test_random_bytes_never_500(client: TestClient, raw: bytes) -> None:
    response = client.post("/cds-services/lbp-order-sign", content=raw)
    assert response.status_code in (400, 412)
