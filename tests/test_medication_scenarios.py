"""Every scenario in fixtures/fhir/scenarios/medications: a complete hook request and its expected cards.

Each file is the request body plus `description`, `expectedTopics`, `expectedIndicators` (in card
order) and, optionally, `expectedSuggestions` (the suggestion labels of each card).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import call
from tests.contract import assert_response_contract

SCENARIOS = (
    Path(__file__).resolve().parent.parent / "fixtures" / "fhir" / "scenarios" / "medications"
)
FILES = sorted(SCENARIOS.glob("*.json"))


def test_scenarios_exist() -> None:
    assert len(FILES) >= 20


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(client: TestClient, path: Path) -> None:
    scenario: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert scenario["description"]
    body = {
        k: v for k, v in scenario.items() if not k.startswith("expected") and k != "description"
    }
    response = call(client, f"lbp-{body['hook']}", body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert assert_response_contract(result, body["hook"]) == scenario["expectedTopics"]
    assert [c["indicator"] for c in result["cards"]] == scenario["expectedIndicators"]
    if "expectedSuggestions" in scenario:
        labels = [[s["label"] for s in c.get("suggestions", [])] for c in result["cards"]]
        assert labels == scenario["expectedSuggestions"]
