"""Every 4xx and 5xx answer is one JSON line with its status, a stable reason code, the request
id, method and route template, and counts once in the errors metric; never the body, a token, a
FHIR URL or a patient id. One row per reason code the service gives."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import respx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cds_service import metrics
from cds_service.store.db import Store
from tests.factories import (
    FHIR_BASE,
    PATIENT_ID,
    back_pain,
    bundle,
    chart_prefetch,
    hook_request,
    order_prefetch,
    service_request,
)
from tests.jwt_helpers import UNREAD_ISSUERS
from tests.log_capture import JsonLines, json_lines

HOOK_ROUTE = "/cds-services/{service_id}"
FHIR_TOKEN = "fhir-Secret-token-91"
JWT = "eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJlLVNlY3JldA"
# Text of the requests that must never reach a log line.
NEVER_LOGGED = (FHIR_TOKEN, "Secret", "127.0.0.1:9999", "10.0.0.1", "user:pw", PATIENT_ID, "hook-")


@dataclass
class Case:
    """A request that ends in an error answer: the client's settings, then the call."""

    send: Callable[[TestClient, respx.MockRouter, Path], httpx.Response]
    settings: dict[str, Any]
    status: int
    reason: str
    route: str | None
    method: str = "POST"


def post(client: TestClient, body: Any, service_id: str = "lbp-patient-view", **kw: Any):
    return client.post(f"/cds-services/{service_id}", json=body, **kw)


def patient_view(**kw: Any) -> dict[str, Any]:
    return hook_request("patient-view", **kw)


def fallback(fhir_server: str = FHIR_BASE, token: str = FHIR_TOKEN) -> dict[str, Any]:
    return patient_view(fhir_server=fhir_server, token=token)


def all_fhir(answer: Callable[[httpx.Request], Any]) -> Callable[..., httpx.Response]:
    """A patient-view whose data all comes from the (mocked) FHIR server, answered by `answer`."""

    def send(client: TestClient, fhir: respx.MockRouter, _tmp: Path) -> httpx.Response:
        fhir.route().mock(side_effect=answer)
        return post(client, fallback())

    return send


async def never_in_time(_request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(5)
    return httpx.Response(200, json=bundle([]))


def next_link_elsewhere(client: TestClient, *_: Any) -> httpx.Response:
    prefetch = chart_prefetch()
    prefetch["conditions"] = bundle([back_pain(10)], next_url="http://10.0.0.1/fhir/Condition?p=2")
    return post(client, {**fallback(), "prefetch": prefetch})


def store_down(client: TestClient, _fhir: respx.MockRouter, tmp_path: Path) -> httpx.Response:
    app: Any = client.app
    working = app.state.store
    # A SQLite file that cannot be created: its directory is a regular file.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    app.state.store = broken = Store(f"sqlite:///{blocker / 'cds.db'}")
    try:
        return client.get("/readyz")
    finally:
        app.state.store = working
        broken.close()


def broken_route(client: TestClient, *_: Any) -> httpx.Response:
    app: FastAPI = client.app  # type: ignore[assignment]

    async def broken(item: str) -> None:  # noqa: ARG001
        raise RuntimeError("a bug")

    app.add_api_route("/test-broken/{item}", broken)
    return client.get(f"/test-broken/{PATIENT_ID}")


def draft_orders(count: int) -> dict[str, Any]:
    orders = [service_request(order_id=f"mri-{i}") for i in range(count)]
    return hook_request("order-sign", prefetch=order_prefetch(), draft_orders=orders)


CASES = {
    "body-not-json": Case(
        lambda c, *_: c.post("/cds-services/lbp-patient-view", content=b'{"hook": "Secret'),
        {},
        400,
        "body-not-json",
        HOOK_ROUTE,
    ),
    "body-not-object": Case(
        lambda c, *_: post(c, ["Secret"]), {}, 400, "body-not-object", HOOK_ROUTE
    ),
    "invalid-request": Case(
        lambda c, *_: post(c, {k: v for k, v in patient_view().items() if k != "context"}),
        {},
        400,
        "invalid-request",
        HOOK_ROUTE,
    ),
    "invalid-request (query)": Case(
        lambda c, *_: c.get("/analytics?weeks=0"), {}, 400, "invalid-request", "/analytics", "GET"
    ),
    "wrong-hook": Case(
        lambda c, *_: post(c, hook_request("order-sign", prefetch=order_prefetch())),
        {},
        400,
        "wrong-hook",
        HOOK_ROUTE,
    ),
    "prefetch-invalid": Case(
        lambda c, *_: post(c, patient_view(prefetch={"patient": ["Secret"]})),
        {},
        400,
        "prefetch-invalid",
        HOOK_ROUTE,
    ),
    "too-many-draft-orders": Case(
        lambda c, *_: post(c, draft_orders(3), "lbp-order-sign"),
        {"max_draft_orders": 2},
        400,
        "too-many-draft-orders",
        HOOK_ROUTE,
    ),
    "launch-refused": Case(
        lambda c, *_: c.get("/apps/startback/config?iss=http://10.0.0.1/fhir"),
        {},
        400,
        "launch-refused",
        "/apps/startback/config",
        "GET",
    ),
    "launch-refused (page)": Case(
        lambda c, *_: c.get(f"/apps/startback?iss=http://10.0.0.1/fhir&patient={PATIENT_ID}"),
        {},
        400,
        "launch-refused",
        "/apps/startback",
        "GET",
    ),
    "jwt-missing": Case(
        lambda c, *_: post(c, patient_view()),
        {"require_auth": True, "trusted_issuers": UNREAD_ISSUERS},
        401,
        "jwt-missing",
        HOOK_ROUTE,
    ),
    "jwt-invalid": Case(
        lambda c, *_: post(c, patient_view(), headers={"Authorization": f"Bearer {JWT}"}),
        {"require_auth": True, "trusted_issuers": UNREAD_ISSUERS},
        401,
        "jwt-invalid",
        HOOK_ROUTE,
    ),
    "unauthorized": Case(
        lambda c, *_: c.get("/analytics?token=Secret-guess"),
        {"admin_token": "the-admin-token"},
        401,
        "unauthorized",
        "/analytics",
        "GET",
    ),
    "unknown-service": Case(
        lambda c, *_: post(c, patient_view(), service_id=PATIENT_ID),
        {},
        404,
        "unknown-service",
        HOOK_ROUTE,
    ),
    "not-found": Case(
        lambda c, *_: c.get(f"/Patient/{PATIENT_ID}?token=Secret"),
        {},
        404,
        "not-found",
        None,
        "GET",
    ),
    "method-not-allowed": Case(
        lambda c, *_: c.put("/healthz"), {}, 405, "method-not-allowed", "/healthz", "PUT"
    ),
    "prefetch-missing": Case(
        lambda c, *_: post(c, patient_view()), {}, 412, "prefetch-missing", HOOK_ROUTE
    ),
    "fhir-server-not-allowed": Case(
        lambda c, *_: post(c, fallback("http://10.0.0.1/fhir")),
        {},
        412,
        "fhir-server-not-allowed",
        HOOK_ROUTE,
    ),
    "fhir-url-unsafe": Case(
        lambda c, *_: post(c, fallback("http://user:pw@127.0.0.1:9999/fhir")),
        {},
        412,
        "fhir-url-unsafe",
        HOOK_ROUTE,
    ),
    "fhir-url-unsafe (next link)": Case(
        next_link_elsewhere, {}, 412, "fhir-url-unsafe", HOOK_ROUTE
    ),
    "fhir-token-unusable": Case(
        lambda c, *_: post(c, fallback(token="Secret\u00e9")),
        {},
        412,
        "fhir-token-unusable",
        HOOK_ROUTE,
    ),
    "fhir-server-failed": Case(
        all_fhir(lambda _r: httpx.Response(503)), {}, 412, "fhir-server-failed", HOOK_ROUTE
    ),
    "fhir-server-timeout": Case(
        all_fhir(never_in_time),
        {"fhir_timeout_seconds": 0.2},
        412,
        "fhir-server-timeout",
        HOOK_ROUTE,
    ),
    "fhir-response-too-large": Case(
        all_fhir(lambda _r: httpx.Response(200, json=bundle([back_pain()] * 20))),
        {"fhir_max_response_bytes": 2048},
        412,
        "fhir-response-too-large",
        HOOK_ROUTE,
    ),
    "body-too-large": Case(
        lambda c, *_: post(c, {**patient_view(), "padding": "Secret" * 1000}),
        {"max_body_bytes": 2048},
        413,
        "body-too-large",
        HOOK_ROUTE,
    ),
    "internal-error": Case(broken_route, {}, 500, "internal-error", "/test-broken/{item}", "GET"),
    "store-unavailable": Case(store_down, {}, 503, "store-unavailable", "/readyz", "GET"),
}

REASON_CODES = {
    "body-not-json",
    "body-not-object",
    "invalid-request",
    "wrong-hook",
    "prefetch-invalid",
    "too-many-draft-orders",
    "launch-refused",
    "jwt-missing",
    "jwt-invalid",
    "unauthorized",
    "unknown-service",
    "not-found",
    "method-not-allowed",
    "prefetch-missing",
    "fhir-server-not-allowed",
    "fhir-url-unsafe",
    "fhir-token-unusable",
    "fhir-server-failed",
    "fhir-server-timeout",
    "fhir-response-too-large",
    "body-too-large",
    "internal-error",
    "store-unavailable",
}


@pytest.fixture
def lines() -> Iterator[JsonLines]:
    with json_lines() as captured:
        yield captured


def error_count(status: int, reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "cds_error_answers_total", {"status": str(status), "reason": reason}
    )
    return value or 0.0


def test_the_table_covers_every_reason_code() -> None:
    assert {case.reason for case in CASES.values()} == REASON_CODES


@pytest.mark.parametrize("name", list(CASES))
def test_an_error_answer_is_one_line_with_its_reason_and_counted_once(
    name: str,
    client_factory: Callable[..., TestClient],
    fhir_mock: respx.MockRouter,
    lines: JsonLines,
    tmp_path: Path,
) -> None:
    case = CASES[name]
    client = client_factory(**case.settings)
    before = error_count(case.status, case.reason)
    lines.lines.clear()

    response = case.send(client, fhir_mock, tmp_path)

    assert response.status_code == case.status, response.text
    [line] = lines.errors()
    assert line["status"] == case.status
    assert line["reason"] == case.reason
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["method"] == case.method
    assert line["route"] == case.route
    assert line["level"] == ("ERROR" if case.status >= 500 else "WARNING")
    # No other line of this request says it answered an error.
    assert [other for other in lines.lines if "status" in other] == [line]
    assert error_count(case.status, case.reason) == before + 1

    text = orjson.dumps(line).decode()
    for secret in NEVER_LOGGED:
        assert secret not in text, (secret, text)
    for part in JWT.split("."):
        assert part not in text


def test_a_refused_fhir_server_line_says_why_in_the_services_own_words(
    client: TestClient, lines: JsonLines
) -> None:
    response = post(client, fallback("http://user:pw@127.0.0.1:9999/fhir"))
    assert response.status_code == 412
    [line] = lines.errors()
    assert line["detail"] == "has userinfo"
    assert line["expression"] == ["fhirServer"]
    assert line["service"] == "lbp-patient-view"


def b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()


def test_a_refused_jwt_line_names_what_was_seen_of_it_never_the_token(
    client_factory: Callable[..., TestClient], lines: JsonLines
) -> None:
    client = client_factory(require_auth=True, trusted_issuers=UNREAD_ISSUERS)
    header = b64({"alg": "ES384", "kid": "key-1"})
    token = f"{header}.{b64({'iss': 'https://issuer.example'})}.c2lnbmF0dXJl"
    response = post(client, patient_view(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["issue"][0]["diagnostics"] == "Unauthorized"
    [line] = lines.errors()
    assert (line["reason"], line["detail"]) == ("jwt-invalid", "issuer is not trusted")
    assert (line["iss"], line["kid"]) == ("https://issuer.example", "key-1")
    assert header not in orjson.dumps(line).decode()
