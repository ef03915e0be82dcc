"""Every error row of CONTRACT.md: a clear 4xx with an OperationOutcome, never a 500."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import httpx
import orjson
import pytest
import respx
from fastapi.testclient import TestClient
from starlette.types import ASGIApp

from cds_service.middleware import AnswerEveryRequest
from tests.conftest import call
from tests.factories import FHIR_BASE, back_pain, chart_prefetch, hook_request, order_prefetch
from tests.jwt_helpers import UNREAD_ISSUERS


def outcome(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["severity"] == "error" and issue["diagnostics"]
    return issue


def test_body_not_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/cds-services/lbp-patient-view",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert outcome(response)["expression"] == ["body"]


def test_body_not_an_object_is_400(client: TestClient) -> None:
    response = client.post("/cds-services/lbp-patient-view", json=[1, 2])
    assert response.status_code == 400
    assert outcome(response)["expression"] == ["body"]


def test_empty_body_is_400(client: TestClient) -> None:
    response = client.post("/cds-services/lbp-patient-view", content=b"")
    assert response.status_code == 400


@pytest.mark.parametrize("field", ["hook", "hookInstance", "context"])
def test_missing_required_field_is_400_naming_it(client: TestClient, field: str) -> None:
    body = hook_request("patient-view", prefetch=chart_prefetch())
    del body[field]
    response = call(client, "lbp-patient-view", body)
    assert response.status_code == 400
    assert field in outcome(response)["expression"]


def test_wrong_hook_for_the_service_is_400(client: TestClient) -> None:
    body = hook_request("order-sign", prefetch=order_prefetch())
    response = call(client, "lbp-patient-view", body)
    assert response.status_code == 400
    assert outcome(response)["expression"] == ["hook"]


@pytest.mark.parametrize(
    ("service_id", "hook", "missing"),
    [
        ("lbp-patient-view", "patient-view", "patientId"),
        ("lbp-patient-view", "patient-view", "userId"),
        ("lbp-encounter-start", "encounter-start", "encounterId"),
        ("lbp-order-sign", "order-sign", "draftOrders"),
        ("lbp-order-select", "order-select", "selections"),
        ("lbp-order-select", "order-select", "draftOrders"),
    ],
)
def test_missing_required_context_is_400(
    client: TestClient, service_id: str, hook: str, missing: str
) -> None:
    body = hook_request(hook, prefetch=chart_prefetch())
    body["context"].pop(missing)
    response = call(client, service_id, body)
    assert response.status_code == 400
    assert f"context.{missing}" in outcome(response)["expression"]


def test_wrong_type_in_context_is_400(client: TestClient) -> None:
    body = hook_request("order-sign", prefetch=order_prefetch())
    body["context"]["draftOrders"] = "not a bundle"
    response = call(client, "lbp-order-sign", body)
    assert response.status_code == 400
    assert "context.draftOrders" in outcome(response)["expression"]


def test_fhir_authorization_without_fhir_server_is_400(client: TestClient) -> None:
    body = hook_request("patient-view", prefetch=chart_prefetch(), token="t")
    response = call(client, "lbp-patient-view", body)
    assert response.status_code == 400
    assert outcome(response)["expression"] == ["fhirServer"]


def test_prefetch_value_of_the_wrong_shape_is_400(client: TestClient) -> None:
    prefetch = chart_prefetch()
    prefetch["conditions"] = "Condition?patient=1"
    response = call(client, "lbp-patient-view", hook_request("patient-view", prefetch=prefetch))
    assert response.status_code == 400
    assert outcome(response)["expression"] == ["prefetch.conditions"]


def test_unknown_service_is_404(client: TestClient) -> None:
    response = call(
        client, "no-such-service", hook_request("patient-view", prefetch=chart_prefetch())
    )
    assert response.status_code == 404
    assert outcome(response)["code"] == "not-found"


def test_unknown_service_feedback_is_404(client: TestClient) -> None:
    response = client.post("/cds-services/nope/feedback", json={"feedback": []})
    assert response.status_code == 404


def test_missing_jwt_is_401_without_detail(client_factory) -> None:
    client = client_factory(require_auth=True, trusted_issuers=UNREAD_ISSUERS)
    for response in (
        client.get("/cds-services"),
        call(client, "lbp-patient-view", hook_request("patient-view", prefetch=chart_prefetch())),
        client.post("/cds-services/lbp-patient-view/feedback", json={"feedback": []}),
    ):
        assert response.status_code == 401
        assert outcome(response)["diagnostics"] == "Unauthorized"


def test_absent_prefetch_without_fhir_server_is_412(client: TestClient) -> None:
    response = call(client, "lbp-patient-view", hook_request("patient-view"))
    assert response.status_code == 412
    issue = outcome(response)
    assert issue["code"] == "incomplete"
    assert "prefetch.conditions" in issue["expression"]


def test_operation_outcome_prefetch_without_fhir_server_is_412(client: TestClient) -> None:
    prefetch = chart_prefetch()
    prefetch["conditions"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    response = call(client, "lbp-patient-view", hook_request("patient-view", prefetch=prefetch))
    assert response.status_code == 412
    assert outcome(response)["expression"] == ["prefetch.conditions"]


def test_absent_prefetch_without_token_is_412(
    client: TestClient, fhir_mock: respx.MockRouter
) -> None:
    route = fhir_mock.route()
    response = call(client, "lbp-patient-view", hook_request("patient-view", fhir_server=FHIR_BASE))
    assert response.status_code == 412
    assert "fhirAuthorization" in outcome(response)["diagnostics"]
    assert not route.called


def test_fhir_server_off_the_allow_list_is_412_and_never_called(client: TestClient) -> None:
    with respx.mock(assert_all_called=False) as anywhere:
        route = anywhere.route()
        body = hook_request(
            "patient-view", fhir_server="https://ehr.example.org/fhir", token="secret"
        )
        response = call(client, "lbp-patient-view", body)
    assert response.status_code == 412
    assert "allow-list" in outcome(response)["diagnostics"]
    assert not route.called


@pytest.mark.parametrize(
    "server",
    [
        "http://169.254.169.254/latest",
        "http://10.0.0.5/fhir",
        "http://127.0.0.1.nip.io/fhir",
        "file:///etc/passwd",
    ],
)
def test_private_and_look_alike_fhir_servers_are_refused(client: TestClient, server: str) -> None:
    response = call(
        client, "lbp-patient-view", hook_request("patient-view", fhir_server=server, token="t")
    )
    assert response.status_code == 412


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, json={"resourceType": "OperationOutcome"}),
        httpx.Response(401),
        httpx.Response(302, headers={"location": "http://evil.example/steal"}),
        httpx.Response(200, content=b"<html>not fhir</html>"),
        httpx.Response(200, json=["not", "a", "bundle"]),
    ],
    ids=["500", "401", "redirect", "garbage", "wrong-json"],
)
def test_fhir_server_failure_is_412_not_500(
    client: TestClient, fhir_mock: respx.MockRouter, answer: httpx.Response
) -> None:
    fhir_mock.route().mock(return_value=answer)
    response = call(
        client, "lbp-patient-view", hook_request("patient-view", fhir_server=FHIR_BASE, token="t")
    )
    assert response.status_code == 412
    assert outcome(response)["code"] == "incomplete"


def test_fhir_server_unreachable_is_412(client: TestClient, fhir_mock: respx.MockRouter) -> None:
    fhir_mock.route().mock(side_effect=httpx.ConnectError("refused"))
    response = call(
        client, "lbp-patient-view", hook_request("patient-view", fhir_server=FHIR_BASE, token="t")
    )
    assert response.status_code == 412


def test_slow_fhir_server_is_412_within_the_budget(
    client_factory, fhir_mock: respx.MockRouter
) -> None:
    import asyncio

    async def slow(_request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json={"resourceType": "Bundle"})

    fhir_mock.route().mock(side_effect=slow)
    client = client_factory(fhir_timeout_seconds=0.3)
    response = call(
        client, "lbp-patient-view", hook_request("patient-view", fhir_server=FHIR_BASE, token="t")
    )
    # Without the budget the slow answer would arrive (a 200); with it, a 412 that says why.
    assert response.status_code == 412
    assert "did not answer within 0.3 s" in outcome(response)["diagnostics"]


def test_body_over_the_limit_is_413(client_factory) -> None:
    client = client_factory(max_body_bytes=2048)
    body = hook_request("patient-view", prefetch=chart_prefetch())
    body["extension"] = {"pad": "x" * 4000}
    response = call(client, "lbp-patient-view", body)
    assert response.status_code == 413
    assert outcome(response)["code"] == "too-costly"


def test_chunked_body_over_the_limit_is_413(client_factory) -> None:
    client = client_factory(max_body_bytes=2048)

    def chunks():
        yield b'{"hook": "patient-view", "pad": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = client.post("/cds-services/lbp-patient-view", content=chunks())
    assert response.status_code == 413


def test_unknown_route_is_404_operation_outcome(client: TestClient) -> None:
    response = client.get("/nothing-here")
    assert response.status_code == 404
    outcome(response)


def test_a_utf8_byte_order_mark_before_the_json_is_accepted(client: TestClient) -> None:
    body = hook_request("patient-view", prefetch=chart_prefetch([back_pain()]))
    raw = b"\xef\xbb\xbf" + orjson.dumps(body)
    response = client.post(
        "/cds-services/lbp-patient-view",
        content=raw,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert [c["source"]["topic"]["code"] for c in response.json()["cards"]] == [
        "startback-screening"
    ]


def sent_by_answer_every_request(app: ASGIApp) -> list[MutableMapping[str, Any]]:
    """The messages AnswerEveryRequest around `app` sends for a GET with an empty body."""
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(AnswerEveryRequest(app)({"type": "http", "headers": []}, receive, send))
    return sent


def test_an_unexpected_error_is_answered_500_and_does_not_escape() -> None:
    """Starlette's error middleware re-raises, which makes uvicorn close the connection; the
    outermost middleware answers and stops the exception there."""

    async def broken(_scope: Any, _receive: Any, _send: Any) -> None:
        raise RuntimeError("bug")

    sent = sent_by_answer_every_request(broken)
    assert sent[0]["status"] == 500
    assert orjson.loads(sent[1]["body"])["issue"][0]["code"] == "exception"


def test_an_error_after_the_answer_started_is_only_logged() -> None:
    async def half(_scope: Any, _receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("bug")

    sent = sent_by_answer_every_request(half)
    assert [m["type"] for m in sent] == ["http.response.start"]
