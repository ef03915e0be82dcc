"""Scale-out on PostgreSQL: the same store code as SQLite, migrations safe when replicas start
together, and two service processes that share feedback and the JWT replay cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cds_service.store.db import Store
from cds_service.store.migrations import applied_versions
from tests.factories import chart_prefetch, hook_request
from tests.jwt_helpers import BASE_URL, ISSUER, SigningKey, bearer, es_key, jwks
from tests.postgres import bindir_or_skip, create_database, running_postgres
from tests.servers import free_port
from tests.test_store import migrate_together

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    with running_postgres(bindir_or_skip()) as url:
        yield url


@pytest.fixture
def database(postgres: str) -> str:
    """A fresh, empty database on the shared cluster for one test."""
    return create_database(postgres)


# ---- the store on PostgreSQL ---------------------------------------------------------------


def test_replicas_starting_together_migrate_once(database: str) -> None:
    results = migrate_together(database, workers=8)
    assert sorted(results) == [[]] * 7 + [[1, 2]]
    store = Store(database)
    assert applied_versions(store.engine) == [1, 2]
    store.close()


def test_one_jti_used_at_once_by_many_workers_succeeds_once(database: str) -> None:
    stores = [Store(database) for _ in range(8)]
    stores[0].migrate()
    barrier = threading.Barrier(len(stores))
    outcomes: list[bool] = []
    later = datetime.now(UTC) + timedelta(hours=1)

    def use(store: Store) -> None:
        barrier.wait(timeout=10)
        outcomes.append(store.remember_jti(ISSUER, "same-jti", later))

    threads = [threading.Thread(target=use, args=(s,)) for s in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        for s in stores:
            s.close()
    assert sorted(outcomes) == [False] * 7 + [True]


@pytest.mark.parametrize(
    ("card", "comment"),
    [("c" * 4096, "a card id as long as the wire allows"), ("card-nul", "before\x00after 😀")],
)
def test_feedback_postgres_would_refuse_is_stored(
    database: str, card: str, comment: str, request: pytest.FixtureRequest
) -> None:
    store = Store(database)
    request.addfinalizer(store.close)
    store.migrate()
    item = {
        "card": card,
        "outcome": "overridden",
        "overrideReason": {"reason": {"code": "x" * 4000, "system": "s"}, "userComment": comment},
        "outcomeTimestamp": "t" * 4000,
    }
    assert store.save_feedback("lbp-order-sign", [item]) == 1
    assert store.save_feedback("lbp-order-sign", [item]) == 0
    assert store.feedback_rows()[0]["card_uuid"] == card


# ---- two service processes, one database ---------------------------------------------------


class Replica:
    """One `uvicorn cds_service.main:app` process on a free 127.0.0.1 port."""

    def __init__(self, name: str, env: dict[str, str], logs: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = logs / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "cds_service.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"replica exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"replica not ready in time:\n{self.log_path.read_text()[-3000:]}")

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def replicas(database: str, tmp_path: Path) -> Iterator[tuple[Replica, Replica, SigningKey]]:
    key = es_key("replica-test-key")
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks(key)))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CDS_")},
        "CDS_DATABASE_URL": database,
        "CDS_REQUIRE_AUTH": "true",
        "CDS_PUBLIC_BASE_URL": BASE_URL,  # both sit behind one public name
        "CDS_TRUSTED_ISSUERS": json.dumps({ISSUER: str(jwks_file)}),
        "CDS_LOG_LEVEL": "INFO",
    }
    started: list[Replica] = []
    try:
        # Both start at once on a fresh database: their migrations race, as in a real rollout.
        started = [Replica("a", env, tmp_path), Replica("b", env, tmp_path)]
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        for replica in started:
            replica.wait_ready(deadline)
        yield started[0], started[1], key
    finally:
        for replica in started:
            replica.stop()


def test_two_replicas_share_feedback_and_refuse_each_others_jti(
    replicas: tuple[Replica, Replica, SigningKey], database: str
) -> None:
    a, b, key = replicas
    with httpx.Client(timeout=10) as http:
        # Each replica serves discovery with its own token.
        for replica in (a, b):
            response = http.get(
                f"{replica.url}/cds-services", headers=bearer(key.sign("/cds-services"))
            )
            assert response.status_code == 200

        # Feedback written through A ...
        path = "/cds-services/lbp-order-sign/feedback"
        card = str(uuid.uuid4())
        feedback = {
            "feedback": [
                {
                    "card": card,
                    "outcome": "overridden",
                    "overrideReason": {"userComment": "patient declined \x00 😀"},
                    "outcomeTimestamp": "2026-11-22T10:00:00Z",
                }
            ]
        }
        response = http.post(f"{a.url}{path}", json=feedback, headers=bearer(key.sign(path)))
        assert response.status_code == 200
        # ... is already there for B: the same item sent to B adds nothing.
        response = http.post(f"{b.url}{path}", json=feedback, headers=bearer(key.sign(path)))
        assert response.status_code == 200
        assert _feedback_logs(a) == [1]
        assert _feedback_logs(b) == [0]
        store = Store(database)
        assert [r["card_uuid"] for r in store.feedback_rows()] == [card]
        store.close()

        # A token accepted by A is a replay at B.
        service = "/cds-services/lbp-patient-view"
        token = key.sign(service)
        body = hook_request("patient-view", prefetch=chart_prefetch())
        assert http.post(f"{a.url}{service}", json=body, headers=bearer(token)).status_code == 200
        refused = http.post(f"{b.url}{service}", json=body, headers=bearer(token))
        assert refused.status_code == 401
        assert refused.json()["issue"][0]["diagnostics"] == "Unauthorized"
        # B itself works: a fresh token is accepted.
        fresh = http.post(f"{b.url}{service}", json=body, headers=bearer(key.sign(service)))
        assert fresh.status_code == 200

    refusals = [e for e in b.logs() if e.get("message") == "error answer" and e["status"] == 401]
    assert [(e["reason"], e["detail"]) for e in refusals] == [
        ("jwt-invalid", "jti was already used (replay)")
    ]
    for replica in (a, b):
        assert token not in replica.log_path.read_text(errors="replace")
    migrated = [e for r in (a, b) for e in r.logs() if e.get("message") == "schema migrated"]
    assert len(migrated) == 1  # one replica migrated; the other found it done


def _feedback_logs(replica: Replica) -> list[int]:
    return [e["stored"] for e in replica.logs() if e.get("message") == "feedback"]
