"""Prometheus metrics: what a hook call, a FHIR fallback query and an error answer move, by how
much; /metrics behind the admin token; labels that never carry request text; several workers
adding up (a real `cds-service serve --workers 2`)."""

from __future__ import annotations

import asyncio
import atexit
import os
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import respx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cds_service import metrics
from cds_service.errors import ServiceUnavailable
from cds_service.store.card_log_writer import CardLogWriter
from cds_service.store.db import CardLogEntry, Store
from tests.conftest import call
from tests.factories import (
    FHIR_BASE,
    PATIENT_ID,
    back_pain,
    bundle,
    chart_prefetch,
    hook_request,
    order_prefetch,
    patient,
    service_request,
)
from tests.jwt_helpers import UNREAD_ISSUERS
from tests.log_capture import parsed_lines
from tests.serve_command import cds_service_serve
from tests.servers import stop

ADMIN_TOKEN = "metrics-admin-token-4d1e"
Sample = tuple[str, frozenset[tuple[str, str]]]


def snapshot() -> dict[Sample, float]:
    """Every sample of the service's registry, by name and labels."""
    out: dict[Sample, float] = {}
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def moved(
    before: dict[Sample, float], after: dict[Sample, float], prefix: str
) -> dict[Sample, float]:
    """The samples whose name starts with `prefix` and whose value changed, by how much."""
    out = {}
    for key, value in after.items():
        if key[0].startswith(prefix) and value != before.get(key, 0.0):
            out[key] = value - before.get(key, 0.0)
    return out


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


def card_pairs(response: httpx.Response) -> Counter[tuple[str, str]]:
    return Counter(
        (card["source"]["topic"]["code"], card["indicator"]) for card in response.json()["cards"]
    )


def assert_one_observation(moves: dict[Sample, float], name: str, **label_values: str) -> None:
    """One value went into the histogram `name`: count +1, +Inf bucket +1, each bucket +0 or +1
    (more for each larger bound), sum moved."""
    key = labels(**label_values)
    assert moves[(f"{name}_count", key)] == 1
    assert moves[(f"{name}_bucket", key | {("le", "+Inf")})] == 1
    assert moves.get((f"{name}_sum", key), 0) > 0
    buckets = sorted(
        (float(dict(k[1])["le"]), v) for k, v in moves.items() if k[0] == f"{name}_bucket"
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert {v for _, v in buckets} <= {1.0}


# ---- a hook call ---------------------------------------------------------------------------------


def test_a_hook_call_moves_calls_latency_and_cards_by_exactly_its_answer(
    client: TestClient,
) -> None:
    before = snapshot()
    body = hook_request("patient-view", prefetch=chart_prefetch([back_pain(10)]))
    response = call(client, "lbp-patient-view", body)
    assert response.status_code == 200
    after = snapshot()

    assert card_pairs(response) == {("startback-screening", "info"): 1}
    assert moved(before, after, "cds_cards") == {
        ("cds_cards_total", labels(topic="startback-screening", indicator="info")): 1
    }
    assert moved(before, after, "cds_hook_calls") == {
        ("cds_hook_calls_total", labels(service="lbp-patient-view", status="200")): 1
    }
    latency = moved(before, after, "cds_hook_call_duration")
    assert_one_observation(latency, "cds_hook_call_duration_seconds", service="lbp-patient-view")
    assert {dict(k[1])["service"] for k in latency} == {"lbp-patient-view"}
    assert moved(before, after, "cds_error_answers") == {}
    assert moved(before, after, "cds_fhir") == {}


def test_cards_are_counted_by_topic_and_indicator(client: TestClient) -> None:
    before = snapshot()
    body = hook_request(
        "order-sign",
        prefetch=order_prefetch([back_pain(10)]),
        draft_orders=[service_request(order_id="mri-1"), service_request(order_id="mri-2")],
    )
    response = call(client, "lbp-order-sign", body)
    assert response.status_code == 200
    pairs = card_pairs(response)
    assert pairs[("imaging-without-red-flags", "warning")] >= 1
    expected = {
        ("cds_cards_total", labels(topic=topic, indicator=indicator)): float(count)
        for (topic, indicator), count in pairs.items()
    }
    assert moved(before, snapshot(), "cds_cards") == expected


def test_an_error_answer_counts_the_call_with_its_status_and_the_error_with_its_reason(
    client: TestClient,
) -> None:
    before = snapshot()
    response = call(
        client, "lbp-patient-view", hook_request("order-sign", prefetch=order_prefetch())
    )
    assert response.status_code == 400
    after = snapshot()
    assert moved(before, after, "cds_hook_calls") == {
        ("cds_hook_calls_total", labels(service="lbp-patient-view", status="400")): 1
    }
    assert moved(before, after, "cds_error_answers") == {
        ("cds_error_answers_total", labels(status="400", reason="wrong-hook")): 1
    }
    assert moved(before, after, "cds_cards") == {}


def test_an_unknown_service_id_is_one_label_value(client: TestClient) -> None:
    before = snapshot()
    for service_id in ("pt-1234567", "lbp-PATIENT-view", "x" * 200):
        assert call(client, service_id, hook_request("patient-view")).status_code == 404
    after = snapshot()
    assert moved(before, after, "cds_hook_calls") == {
        ("cds_hook_calls_total", labels(service="unknown", status="404")): 3
    }
    text = client.get("/metrics").text
    assert "pt-1234567" not in text and "PATIENT" not in text and "x" * 50 not in text


# ---- FHIR fallback queries ---------------------------------------------------------------------


def fallback_call(client: TestClient) -> httpx.Response:
    body = hook_request("patient-view", fhir_server=FHIR_BASE, token="fhir-token-abc")
    return call(client, "lbp-patient-view", body)


def test_fhir_fallback_queries_are_counted_by_resource_type_and_outcome(
    client: TestClient, fhir_mock: respx.MockRouter
) -> None:
    fhir_mock.get(f"/Patient/{PATIENT_ID}").mock(return_value=httpx.Response(200, json=patient()))
    fhir_mock.get(url__regex=r".*/Condition\?.*").mock(
        return_value=httpx.Response(200, json=bundle([back_pain(10)]))
    )
    # Encounters are optional: a failed search leaves the call going.
    fhir_mock.get(url__regex=r".*/Encounter\?.*").mock(return_value=httpx.Response(503))
    fhir_mock.get(url__regex=r".*\?.*").mock(return_value=httpx.Response(200, json=bundle([])))
    before = snapshot()
    response = fallback_call(client)
    assert response.status_code == 200
    after = snapshot()

    ok = ("Patient", "Condition", "Observation", "MedicationRequest", "QuestionnaireResponse")
    expected = {("cds_fhir_queries_total", labels(resource=r, outcome="ok")): 1.0 for r in ok} | {
        ("cds_fhir_queries_total", labels(resource="Encounter", outcome="failed")): 1.0
    }
    assert moved(before, after, "cds_fhir_queries") == expected
    latency = moved(before, after, "cds_fhir_query_duration")
    for resource in (*ok, "Encounter"):
        assert_one_observation(latency, "cds_fhir_query_duration_seconds", resource=resource)


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (httpx.Response(404), "not-found"),
        (httpx.Response(500), "failed"),
        (httpx.Response(200, content=b"{" * 3000), "too-large"),
    ],
)
def test_fhir_query_outcomes(
    client_factory: Callable[..., TestClient],
    fhir_mock: respx.MockRouter,
    answer: httpx.Response,
    outcome: str,
) -> None:
    client = client_factory(fhir_max_response_bytes=2048)
    fhir_mock.get(f"/Patient/{PATIENT_ID}").mock(return_value=answer)
    fhir_mock.get(url__regex=r".*\?.*").mock(return_value=httpx.Response(200, json=bundle([])))
    before = snapshot()
    fallback_call(client)
    moves = moved(before, snapshot(), "cds_fhir_queries_total")
    assert moves[("cds_fhir_queries_total", labels(resource="Patient", outcome=outcome))] == 1


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("Patient/pt-1", "Patient"),
        ("Condition?patient=pt-1&_count=500", "Condition"),
        ("Medication?_id=a,b", "Medication"),
        ("/Encounter?patient=x", "Encounter"),
        ("?_getpages=abc&_offset=500", "other"),
        ("Basic?patient=pt-1", "other"),
        ("pt-1/Patient", "other"),
    ],
)
def test_fhir_resource_label_is_from_a_fixed_list(path: str, label: str) -> None:
    assert metrics.fhir_resource_label(path) == label


# ---- GET /metrics --------------------------------------------------------------------------


def test_metrics_text_format_parses_and_names_every_metric(client: TestClient) -> None:
    call(client, "lbp-patient-view", hook_request("patient-view", prefetch=chart_prefetch()))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "cds_hook_calls",
        "cds_hook_call_duration_seconds",
        "cds_cards",
        "cds_fhir_queries",
        "cds_fhir_query_duration_seconds",
        "cds_error_answers",
        "cds_card_log_dropped_entries",
        "cds_card_log_pending_entries",
    } <= names
    assert "_created" not in response.text


def test_metrics_need_the_admin_token_when_one_is_set(
    client_factory: Callable[..., TestClient],
) -> None:
    client = client_factory(admin_token=ADMIN_TOKEN)
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert "cds_" not in refused.text
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    allowed = client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert allowed.status_code == 200 and "cds_hook_calls" in allowed.text
    assert client.get(f"/metrics?token={ADMIN_TOKEN}").status_code == 200


def test_metrics_are_closed_without_a_token_when_auth_is_required(
    client_factory: Callable[..., TestClient],
) -> None:
    # As /analytics: no CDS_ADMIN_TOKEN means open only for local development (auth off).
    client = client_factory(require_auth=True, trusted_issuers=UNREAD_ISSUERS)
    assert client.get("/metrics").status_code == 401


# ---- several workers -------------------------------------------------------------------------


def test_prepare_for_workers_makes_a_private_directory_removed_at_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Empty counts as unset; monkeypatch puts the variable back as it was after the test.
    monkeypatch.setenv(metrics.MULTIPROCESS_DIR_VARIABLE, "")
    at_exit: list[tuple[Any, ...]] = []
    monkeypatch.setattr(atexit, "register", lambda *args, **_kwargs: at_exit.append(args))

    metrics.prepare_for_workers(1)
    assert not os.environ[metrics.MULTIPROCESS_DIR_VARIABLE] and not at_exit

    metrics.prepare_for_workers(2)
    path = Path(os.environ[metrics.MULTIPROCESS_DIR_VARIABLE])
    assert path.is_dir() and not any(path.iterdir())
    assert oct(path.stat().st_mode & 0o777) == "0o700"
    [(remove, *args)] = at_exit
    (path / "counter_1.db").write_bytes(b"x")
    remove(*args)
    assert not path.exists()


def test_prepare_for_workers_keeps_the_operators_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    given = tmp_path / "prometheus"
    monkeypatch.setenv(metrics.MULTIPROCESS_DIR_VARIABLE, str(given))
    monkeypatch.setattr(atexit, "register", lambda *_args, **_kwargs: pytest.fail("registered"))
    metrics.prepare_for_workers(4)
    assert os.environ[metrics.MULTIPROCESS_DIR_VARIABLE] == str(given)
    assert given.is_dir()


def scraped_calls(text: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "cds_hook_calls":
            total += sum(s.value for s in family.samples if s.name == "cds_hook_calls_total")
    return total


def answering_pids(log_path: Path) -> set[int]:
    return {line["pid"] for line in parsed_lines(log_path) if line["message"] == "hook call"}


def test_two_workers_metrics_add_up_across_workers(tmp_path: Path) -> None:
    body = orjson.dumps(hook_request("patient-view", prefetch=chart_prefetch([back_pain(10)])))
    with cds_service_serve(tmp_path, "--workers", "2", "--log-level", "info") as served:
        [directory] = tmp_path.glob("cds-metrics-*")
        calls = 0
        # New connections until both workers have answered some (the kernel picks the worker).
        while calls < 400 and (calls < 10 or len(answering_pids(served.log_path)) < 2):
            with httpx.Client(base_url=served.base_url) as fresh:
                response = fresh.post(
                    "/cds-services/lbp-patient-view",
                    content=body,
                    headers={"content-type": "application/json"},
                )
            assert response.status_code == 200
            calls += 1
        assert len(answering_pids(served.log_path)) == 2, "one worker answered every call"

        for _ in range(6):  # each scrape reaches one worker; every one must count every call
            with httpx.Client(base_url=served.base_url) as fresh:
                scrape = fresh.get("/metrics")
            assert scrape.status_code == 200
            assert scraped_calls(scrape.text) == calls
            cards = f'cds_cards_total{{indicator="info",topic="startback-screening"}} {calls}.0'
            assert cards in scrape.text
        assert any(directory.glob("counter_*.db"))
        stop(served.process)
    assert served.process.returncode == 0
    # The parent removed its private directory of metric files when it stopped.
    assert not directory.exists()
    # Parent and workers wrote JSON lines only, from start-up to shutdown.
    messages = [line["message"] for line in parsed_lines(served.log_path)]
    # The parent's own start-up (settings checked, schema migrated) comes before uvicorn's.
    parent = next(i for i, m in enumerate(messages) if m.startswith("Started parent process"))
    assert messages.index("cds-service starting") < parent
    assert any(m.startswith("Uvicorn running on") for m in messages)
    assert messages[-1].startswith("Stopping parent process")


# ---- the card log backlog ------------------------------------------------------------------------


def log_entry(n: int) -> CardLogEntry:
    return CardLogEntry(
        f"c-{n}", "lbp-order-sign", "opioid-order", "warning", "h", datetime.now(UTC)
    )


def sample(name: str) -> float:
    return metrics.REGISTRY.get_sample_value(name) or 0.0


def test_card_log_backlog_and_drops_are_exported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'cards.db'}")
    store.migrate()
    down = True
    real = store.log_cards

    def log_cards(entries: Sequence[CardLogEntry]) -> None:
        if down:
            raise ServiceUnavailable("database down")
        real(entries)

    monkeypatch.setattr(store, "log_cards", log_cards)
    dropped_before = sample("cds_card_log_dropped_entries_total")

    async def until_pending(count: float) -> None:
        for _ in range(500):
            if sample("cds_card_log_pending_entries") == count:
                return
            await asyncio.sleep(0.01)
        pytest.fail(f"pending never reached {count}")

    async def scenario() -> None:
        nonlocal down
        writer = CardLogWriter(store, interval=0.01, max_pending=5)
        writer.start()
        writer.add([log_entry(n) for n in range(3)])
        await until_pending(3)
        writer.add([log_entry(n) for n in range(3, 8)])  # 8 > 5: the 3 oldest go
        await until_pending(5)
        down = False
        await until_pending(0)
        await writer.stop()

    try:
        asyncio.run(scenario())
    finally:
        store.close()
    assert sample("cds_card_log_dropped_entries_total") == dropped_before + 3


def test_a_stopping_worker_leaves_the_live_sum_of_the_backlog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "MULTIPROCESS_DIR", str(tmp_path))
    mine = tmp_path / f"gauge_livesum_{os.getpid()}.db"
    other = tmp_path / "gauge_livesum_1.db"
    counters = tmp_path / f"counter_{os.getpid()}.db"
    for path in (mine, other, counters):
        path.write_bytes(b"")
    metrics.forget_this_process()
    assert not mine.exists()
    assert other.exists() and counters.exists()
