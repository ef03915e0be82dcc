"""Shared fixtures: an app with a fixed clock and uuids, FHIR mocked at the transport (respx)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient

from cds_service.config import Settings
from cds_service.main import create_app
from tests.factories import FHIR_BASE, TODAY

SERVICE_IDS = ("lbp-patient-view", "lbp-encounter-start", "lbp-order-select", "lbp-order-sign")


@pytest.fixture
def fhir_mock() -> Iterator[respx.MockRouter]:
    """A respx router standing in for the EHR's FHIR server (no global patching)."""
    with respx.MockRouter(
        base_url=FHIR_BASE, assert_all_called=False, assert_all_mocked=True
    ) as router:
        yield router


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "require_auth": False,
            "database_url": f"sqlite:///{tmp_path / 'cds.db'}",
            "fhir_allowlist": ["http://127.0.0.1"],
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def client_factory(
    settings_factory: Callable[..., Settings], fhir_mock: respx.MockRouter
) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        counter = itertools.count(1)
        app = create_app(
            settings_factory(**overrides),
            clock=lambda: TODAY,
            new_uuid=lambda: f"00000000-0000-4000-8000-{next(counter):012d}",
            transport=httpx.MockTransport(fhir_mock.async_handler),
        )
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(client_factory: Callable[..., TestClient]) -> TestClient:
    return client_factory()


def call(client: TestClient, service_id: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"/cds-services/{service_id}", json=body)
