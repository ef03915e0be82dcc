"""Integration fixtures: one real FHIR server per test session, and a service pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.config import Settings
from tests.conftest import StartedClients
from tests.factories import TODAY
from tests.fhir_server import FhirServer, running_fhir_server


@pytest.fixture(scope="session")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirServer]:
    with running_fhir_server(tmp_path_factory.mktemp("sekmet")) as server:
        yield server


@pytest.fixture
def live_client_factory(
    tmp_path: Path, started_clients: StartedClients
) -> Callable[..., TestClient]:
    """The service with its real httpx transport, allowed to query the local FHIR server."""

    def make(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "require_auth": False,
            "database_url": f"sqlite:///{tmp_path / 'cds.db'}",
            "fhir_allowlist": ["http://127.0.0.1"],
        }
        values.update(overrides)
        return started_clients.start(Settings(**values), today=overrides.get("today", TODAY))

    return make
