"""The store (database) down: 503 with an OperationOutcome and Retry-After for what needs it
(feedback, the JWT replay check), /readyz follows the database, /healthz stays live, and a hook
call with auth off still answers while its card log waits in memory until the database is back.

The PostgreSQL tests (marked `postgres`) stop a real throwaway cluster under a running service
and start it again; the SQLite tests point the store at a file that cannot be opened.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from cds_service.config import Settings
from cds_service.errors import ServiceUnavailable
from cds_service.main import create_app
from cds_service.store.db import Store
from tests.factories import back_pain, chart_prefetch, hook_request
from tests.jwt_helpers import BASE_URL, ISSUER, SigningKey, bearer, es_key, jwks
from tests.postgres import bindir_or_skip
from tests.servers import free_port

FEEDBACK_PATH = "/cds-services/lbp-order-sign/feedback"
SERVICE_PATH = "/cds-services/lbp-patient-view"
# How long a test waits for the service to see the database again (it polls; no timing asserted).
RECOVERY_DEADLINE_SECONDS = 30


def feedback_body(card: str = "card-1") -> dict[str, Any]:
    return {
        "feedback": [
            {"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-11-22T10:00:00Z"}
        ]
    }


def patient_view() -> dict[str, Any]:
    return hook_request("patient-view", prefetch=chart_prefetch([back_pain(onset_days_ago=None)]))


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "transient"


def unreachable_sqlite(tmp_path: Path) -> str:
    """A SQLite URL whose file cannot be created: its directory is a regular file."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    return f"sqlite:///{blocker / 'cds.db'}"


# ---- SQLite: the mapping and /readyz ---------------------------------------------------------


def test_store_that_cannot_open_its_database_raises_service_unavailable(tmp_path: Path) -> None:
    store = Store(unreachable_sqlite(tmp_path))
    try:
        with pytest.raises(ServiceUnavailable):
            store.ping()
        with pytest.raises(ServiceUnavailable):
            store.save_feedback("lbp-order-sign", feedback_body()["feedback"])
        with pytest.raises(ServiceUnavailable):
            store.card_log_rows()
        with pytest.raises(ServiceUnavailable):
            store.remember_jti(ISSUER, "jti-1", datetime.now(UTC) + timedelta(hours=1))
        assert asyncio.run(store.answers()) is False
    finally:
        store.close()


def test_readyz_is_200_when_the_store_answers(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_readyz_and_feedback_are_503_when_the_store_cannot_be_reached(
    client: TestClient, tmp_path: Path
) -> None:
    app: Any = client.app
    working = app.state.store
    app.state.store = broken = Store(unreachable_sqlite(tmp_path))
    try:
        assert_unavailable(client.get("/readyz"))
        assert_unavailable(client.post(FEEDBACK_PATH, json=feedback_body()))
        # Liveness does not depend on the store: restarting the process would not help.
        assert client.get("/healthz").status_code == 200
        # Auth is off: a hook call needs no store and still answers.
        response = client.post(SERVICE_PATH, json=patient_view())
        assert response.status_code == 200
        assert response.json()["cards"]
    finally:
        app.state.store = working
        broken.close()
    assert client.get("/readyz").status_code == 200


# ---- PostgreSQL stopped under a running service ----------------------------------------------


class Cluster:
    """A throwaway PostgreSQL cluster (as tests/postgres.py) that a test can stop and start."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="cds-pg-down-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql://cds@127.0.0.1:{self.port}/postgres"
        self._pg(
            "initdb", "-D", str(self.data), "-U", "cds", "--auth=trust", "--no-sync", "-E", "UTF8"
        )

    def _pg(self, tool: str, *args: str) -> None:
        command = [*self.as_user, str(self.bindir / tool), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed: {result.stdout}\n{result.stderr}\n{tail}")

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        log = str(self.root / "server.log")
        self._pg("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        """A fast shutdown: sessions are ended, as when the database server is stopped."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.running:
            try:
                self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    cluster = Cluster(bindir_or_skip())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def database(cluster: Cluster) -> Iterator[str]:
    """A fresh database on the cluster; the cluster is running again after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        cluster.url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    yield cluster.url.rsplit("/", 1)[0] + "/" + name
    if not cluster.running:
        cluster.start()


@pytest.fixture
def service() -> Iterator[Callable[..., TestClient]]:
    """Start the real app (lifespan included) with the given settings; closed at the end."""
    clients: list[TestClient] = []

    def start(**values: Any) -> TestClient:
        client = TestClient(create_app(Settings(**values)))
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + RECOVERY_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.postgres
def test_database_stopped_gives_503_with_auth_on_and_recovers(
    cluster: Cluster, database: str, service: Callable[..., TestClient], tmp_path: Path
) -> None:
    key: SigningKey = es_key("store-down-key")
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks(key)))
    client = service(
        require_auth=True,
        database_url=database,
        public_base_url=BASE_URL,
        trusted_issuers={ISSUER: str(jwks_file)},
    )

    def call() -> httpx.Response:
        return client.post(
            SERVICE_PATH, json=patient_view(), headers=bearer(key.sign(SERVICE_PATH))
        )

    def send_feedback() -> httpx.Response:
        return client.post(
            FEEDBACK_PATH, json=feedback_body(), headers=bearer(key.sign(FEEDBACK_PATH))
        )

    assert call().status_code == 200
    assert client.get("/readyz").status_code == 200

    cluster.stop()
    # The JWT replay check cannot run: the call is refused as unavailable, not as a 500 or 401.
    assert_unavailable(call())
    assert_unavailable(send_feedback())
    assert_unavailable(client.get("/readyz"))
    assert client.get("/healthz").status_code == 200

    cluster.start()
    # The pool's dead connections are replaced: no restart of the service is needed.
    assert wait_for(lambda: client.get("/readyz").status_code == 200)
    assert call().status_code == 200
    assert send_feedback().status_code == 200
    store = Store(database)
    try:
        assert [r["card_uuid"] for r in store.feedback_rows()] == ["card-1"]
    finally:
        store.close()


@pytest.mark.postgres
def test_database_stopped_hook_call_without_auth_answers_and_its_card_log_waits(
    cluster: Cluster, database: str, service: Callable[..., TestClient]
) -> None:
    client = service(require_auth=False, database_url=database, public_base_url="http://127.0.0.1")
    app: Any = client.app
    before = client.post(SERVICE_PATH, json=patient_view()).json()["cards"]

    cluster.stop()
    answered = []
    for _ in range(3):
        response = client.post(SERVICE_PATH, json=patient_view())
        assert response.status_code == 200
        answered += [card["uuid"] for card in response.json()["cards"]]
    assert len(answered) == 3
    assert app.state.card_log.pending >= len(answered)
    assert_unavailable(client.post(FEEDBACK_PATH, json=feedback_body()))
    assert_unavailable(client.get("/readyz"))

    cluster.start()
    store = Store(database)
    try:

        def logged() -> set[str]:
            return {r["card_uuid"] for r in store.card_log_rows()}

        expected = {before[0]["uuid"], *answered}
        assert wait_for(lambda: expected <= logged())
        assert app.state.card_log.pending == 0
        assert app.state.card_log.dropped == 0
    finally:
        store.close()
    assert client.post(FEEDBACK_PATH, json=feedback_body()).status_code == 200
