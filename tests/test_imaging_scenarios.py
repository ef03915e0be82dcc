"""Runs every fixture scenario in fixtures/fhir/scenarios/imaging/: a whole hook request and the
card topics it must produce ({"request": ..., "expectedTopics": [...]})."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import TODAY
from tests.fhir_server import FIXTURES

SCENARIOS = sorted((FIXTURES / "scenarios" / "imaging").glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    scenario: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return scenario


def test_there_are_scenarios_that_fire_and_that_do_not() -> None:
    expected = [load(p)["expectedTopics"] for p in SCENARIOS]
    assert len(SCENARIOS) >= 10
    assert any(expected) and not all(expected)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(client, path: Path) -> None:
    scenario = load(path)
    # Dates in the files are fixed relative to the tests' TODAY (the app's injected clock).
    assert scenario["today"] == TODAY.isoformat()
    request = scenario["request"]
    response = call(client, scenario["service"], request)
    assert response.status_code == 200, response.text
    topics = assert_response_contract(response.json(), request["hook"])
    assert topics == scenario["expectedTopics"], scenario["description"]


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_resources_are_valid_fhir_r4(path: Path) -> None:
    request = load(path)["request"]
    resources = [e["resource"] for e in request["context"]["draftOrders"]["entry"]]
    for value in request.get("prefetch", {}).values():
        if value and value["resourceType"] == "Bundle":
            resources.extend(e["resource"] for e in value.get("entry", []))
        elif value:
            resources.append(value)
    for resource in resources:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
