"""X-Request-ID: the caller's when sane, else a new one; on every answer (413, 500 and 404
included); repeated by the log lines of that request; exposed to browsers (CORS)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cds_service.request_context import sane_request_id
from tests.conftest import call
from tests.factories import back_pain, chart_prefetch, hook_request
from tests.log_capture import JsonLines, json_lines

NEW_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def lines() -> Iterator[JsonLines]:
    with json_lines() as captured:
        yield captured


def test_the_callers_request_id_is_echoed_and_on_the_log_line_of_its_call(
    client: TestClient, lines: JsonLines
) -> None:
    body = hook_request("patient-view", prefetch=chart_prefetch([back_pain(10)]))
    response = client.post(
        "/cds-services/lbp-patient-view", json=body, headers={"X-Request-ID": "ehr-7f3a/01"}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "ehr-7f3a/01"
    [hook_call] = [line for line in lines.lines if line["message"] == "hook call"]
    assert hook_call["request_id"] == "ehr-7f3a/01"


def test_without_one_each_answer_gets_a_new_request_id(client: TestClient) -> None:
    ids = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(NEW_ID.fullmatch(i) for i in ids)


@pytest.mark.parametrize(
    "given",
    [
        "x" * 129,
        "tab\there",
        "caf\u00e9",
        "",
    ],
)
def test_an_unusable_request_id_is_replaced(client: TestClient, given: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": given.encode()})
    assert NEW_ID.fullmatch(response.headers["x-request-id"])


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        (b"a" * 128, "a" * 128),
        (b"a" * 129, None),
        (b"order 12/ab-CD_~!", "order 12/ab-CD_~!"),
        (b"new\nline", None),
        (b"nul\x00", None),
        (b"del\x7f", None),
        (b"\xc3\xa9", None),
        (b"", None),
    ],
)
def test_sane_request_id(raw: bytes, kept: str | None) -> None:
    assert sane_request_id(raw) == kept


def test_the_request_id_is_on_a_413_from_the_body_size_limit(
    client_factory: Callable[..., TestClient], lines: JsonLines
) -> None:
    client = client_factory(max_body_bytes=2048)
    response = client.post(
        "/cds-services/lbp-patient-view",
        content=b"{" + b" " * 5000 + b"}",
        headers={"X-Request-ID": "big-1", "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["x-request-id"] == "big-1"
    [error] = lines.errors()
    assert (error["request_id"], error["status"], error["reason"]) == (
        "big-1",
        413,
        "body-too-large",
    )
    # Answered before routing, yet logged with its route template.
    assert error["route"] == "/cds-services/{service_id}"


def test_the_request_id_is_on_a_500_and_its_one_log_line_holds_the_traceback(
    client: TestClient, lines: JsonLines
) -> None:
    app: FastAPI = client.app  # type: ignore[assignment]

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/test-broken/{item}", broken)
    response = client.get("/test-broken/pt-1", headers={"X-Request-ID": "bug-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "bug-1"
    [error] = lines.errors()
    assert (error["status"], error["reason"], error["level"]) == (500, "internal-error", "ERROR")
    assert error["route"] == "/test-broken/{item}"
    assert "RuntimeError: a bug" in error["exception"]
    assert [line for line in lines.lines if line["level"] == "ERROR"] == [error]


def test_the_request_id_is_on_404s(client: TestClient) -> None:
    unmatched = client.get("/nothing/here", headers={"X-Request-ID": "lost-1"})
    unknown = call(client, "no-such-service", hook_request("patient-view"))
    assert (unmatched.status_code, unknown.status_code) == (404, 404)
    assert unmatched.headers["x-request-id"] == "lost-1"
    assert NEW_ID.fullmatch(unknown.headers["x-request-id"])


def test_browsers_may_read_the_request_id(client: TestClient) -> None:
    response = client.get("/healthz", headers={"Origin": "https://ehr.example"})
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed
