"""Shared fixtures: an app with a fixed clock and uuids, FHIR mocked at the transport (respx)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient

from cds_service.config import Settings
from cds_service.main import create_app
from tests.factories import FHIR_BASE, TODAY, noon_utc
from tests.wheel import BuiltWheel, build_wheel, install_target

SERVICE_IDS = ("lbp-patient-view", "lbp-encounter-start", "lbp-order-select", "lbp-order-sign")


@pytest.fixture(autouse=True, scope="session")
def data_dir_outside_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The default database lives in CDS_DATA_DIR (else under ~/.local/share): no test, nor a
    service it starts in a subprocess, writes to the real home."""
    saved = os.environ.get("CDS_DATA_DIR")
    os.environ["CDS_DATA_DIR"] = str(tmp_path_factory.mktemp("cds-data-dir"))
    yield
    if saved is None:
        del os.environ["CDS_DATA_DIR"]
    else:
        os.environ["CDS_DATA_DIR"] = saved


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


class StartedClients:
    """Services started (lifespan run) with a fixed clock and predictable uuids; closed at the end."""

    def __init__(self) -> None:
        self._clients: list[TestClient] = []

    def start(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        today: date = TODAY,
    ) -> TestClient:
        counter = itertools.count(1)
        app = create_app(
            settings,
            clock=lambda: noon_utc(today),
            new_uuid=lambda: f"00000000-0000-4000-8000-{next(counter):012d}",
            transport=transport,
        )
        client = TestClient(app)
        client.__enter__()
        self._clients.append(client)
        return client

    def close(self) -> None:
        for c in self._clients:
            c.__exit__(None, None, None)


@pytest.fixture
def started_clients() -> Iterator[StartedClients]:
    clients = StartedClients()
    yield clients
    clients.close()


@pytest.fixture
def client_factory(
    settings_factory: Callable[..., Settings],
    fhir_mock: respx.MockRouter,
    started_clients: StartedClients,
) -> Callable[..., TestClient]:
    def make(**overrides: Any) -> TestClient:
        transport = httpx.MockTransport(fhir_mock.async_handler)
        return started_clients.start(settings_factory(**overrides), transport=transport)

    return make


@pytest.fixture
def client(client_factory: Callable[..., TestClient]) -> TestClient:
    return client_factory()


def call(client: TestClient, service_id: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"/cds-services/{service_id}", json=body)


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> BuiltWheel:
    """The project's wheel, built once per session from what the Dockerfile copies."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def installed_wheel(built_wheel: BuiltWheel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """That wheel installed (no dependencies) into a directory outside the repository."""
    return install_target(built_wheel.path, tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium for one test module (tests/browser.py); Playwright is imported only
    when a module asks for it."""
    from tests.browser import chromium

    with chromium() as launched:
        yield launched
