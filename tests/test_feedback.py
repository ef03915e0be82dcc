from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "fhir" / "cds-hooks"


def store_rows(client: TestClient) -> list[dict]:
    return client.app.state.store.feedback_rows()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "example",
    [
        "feedback-request-accepted.json",
        "feedback-request-overridden-no-reason.json",
        "feedback-request-overridden-with-reason.json",
    ],
)
def test_spec_feedback_examples_are_stored(client: TestClient, example: str) -> None:
    body = json.loads((EXAMPLES / example).read_text())
    response = client.post("/cds-services/lbp-order-sign/feedback", json=body)
    assert response.status_code == 200
    assert response.json() == {}
    rows = store_rows(client)
    assert len(rows) == 1
    assert rows[0]["card_uuid"] == body["feedback"][0]["card"]
    assert rows[0]["service_id"] == "lbp-order-sign"


def test_feedback_is_idempotent(client: TestClient) -> None:
    body = json.loads((EXAMPLES / "feedback-request-overridden-with-reason.json").read_text())
    for _ in range(3):
        assert client.post("/cds-services/lbp-order-sign/feedback", json=body).status_code == 200
    rows = store_rows(client)
    assert len(rows) == 1
    assert rows[0]["override_code"] == "d7ecf885"
    assert rows[0]["user_comment"] == "A comment entered by the clinician."


def test_sandbox_override_reason_without_display_is_accepted(client: TestClient) -> None:
    body = {
        "feedback": [
            {
                "card": "unknown-card-uuid",
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {
                        "code": "red-flag-not-coded",
                        "system": "urn:lbp-cds:override-reason",
                    }
                },
                "outcomeTimestamp": "2026-11-22T10:00:00Z",
            }
        ]
    }
    assert client.post("/cds-services/lbp-order-select/feedback", json=body).status_code == 200
    assert store_rows(client)[0]["card_uuid"] == "unknown-card-uuid"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"feedback": []},
        {
            "feedback": [
                {"card": "c", "outcome": "maybe", "outcomeTimestamp": "2026-01-01T00:00:00Z"}
            ]
        },
        {"feedback": [{"outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]},
        {"feedback": "nope"},
    ],
)
def test_malformed_feedback_is_400(client: TestClient, body: dict) -> None:
    response = client.post("/cds-services/lbp-order-sign/feedback", json=body)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_feedback_survives_a_restart(client_factory) -> None:
    body = json.loads((EXAMPLES / "feedback-request-accepted.json").read_text())
    first = client_factory()
    assert first.post("/cds-services/lbp-order-sign/feedback", json=body).status_code == 200
    second = client_factory()
    assert len(store_rows(second)) == 1
