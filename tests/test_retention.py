"""Retention (CDS_RETENTION_DAYS): card-log rows issued, and feedback received, longer ago than
the retention are deleted in batches, by one replica at a time, from a background task of the
service that uses the service's clock."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import event, text

from cds_service.config import Settings
from cds_service.main import create_app
from cds_service.store import maintenance, retention, rollup
from cds_service.store.db import CardLogEntry, Store
from cds_service.store.maintenance import StoreMaintenance
from tests.factories import TODAY, noon_utc
from tests.postgres import bindir_or_skip, create_database, running_postgres

NOW = noon_utc(TODAY)
DAY = timedelta(days=1)


def card(uuid: str, issued_at: datetime) -> CardLogEntry:
    return CardLogEntry(uuid, "lbp-order-sign", "opioid-order", "warning", "h", issued_at)


def feedback(store: Store, card_uuid: str, received_at: datetime) -> None:
    item = {"card": card_uuid, "outcome": "accepted", "outcomeTimestamp": received_at.isoformat()}
    store.save_feedback("lbp-order-sign", [item], received_at=received_at)


def kept(store: Store) -> tuple[list[str], list[str]]:
    return (
        sorted(r["card_uuid"] for r in store.card_log_rows()),
        sorted(r["outcome_timestamp"] for r in store.feedback_rows()),
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'retention.db'}")
    store.migrate()
    yield store
    store.close()


def test_the_retention_setting_defaults_to_400_days(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CDS_RETENTION_DAYS", raising=False)
    assert Settings().retention_days == 400
    monkeypatch.setenv("CDS_RETENTION_DAYS", "30")
    assert Settings().retention_days == 30
    monkeypatch.setenv("CDS_RETENTION_DAYS", "0")
    with pytest.raises(ValidationError, match="retention_days"):
        Settings()


def test_rows_older_than_the_retention_go_and_the_boundary_stays(store: Store) -> None:
    boundary = NOW - 400 * DAY
    times = {
        "399-days": NOW - 399 * DAY,
        "400-days-exactly": boundary,
        "400-days-and-1-second": boundary - timedelta(seconds=1),
        "401-days": NOW - 401 * DAY,
    }
    store.log_cards([card(name, moment) for name, moment in times.items()])
    for name, moment in times.items():
        feedback(store, f"fb-{name}", moment)

    task = StoreMaintenance(store, retention_days=Settings().retention_days, clock=lambda: NOW)
    pruned = task.prune()

    assert pruned == retention.Pruned(cards=2, feedback=2, batches=2)
    cards, items = kept(store)
    assert cards == ["399-days", "400-days-exactly"]
    assert items == sorted([times["399-days"].isoformat(), boundary.isoformat()])
    assert task.prune() == retention.Pruned(cards=0, feedback=0, batches=0)


def test_rows_go_in_batches_of_one_statement_each(store: Store) -> None:
    old = NOW - 500 * DAY
    store.log_cards([card(f"old-{n}", old) for n in range(12)] + [card("new", NOW)])
    for n in range(7):
        feedback(store, f"card-{n}", old + n * timedelta(seconds=1))
    deletes: list[tuple[str, int]] = []

    @event.listens_for(store.engine, "after_cursor_execute")
    def count(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        for table in ("card_log", "feedback"):
            if statement.startswith(f"DELETE FROM {table} "):
                deletes.append((table, cursor.rowcount))

    pruned = retention.prune(store, NOW - 400 * DAY, batch_size=5)

    assert pruned == retention.Pruned(cards=12, feedback=7, batches=5)
    assert deletes == [
        ("card_log", 5),
        ("card_log", 5),
        ("card_log", 2),
        ("feedback", 5),
        ("feedback", 2),
    ]
    assert kept(store) == (["new"], [])


def test_the_analytics_counts_lose_what_was_pruned(store: Store) -> None:
    monday = TODAY - timedelta(days=TODAY.weekday())
    store.log_cards([card("old", NOW - 401 * DAY), card("new", NOW)])
    rollup.catch_up(store)
    first = monday - timedelta(weeks=103)
    assert sum(r["issued"] for r in rollup.read_weeks(store, first, monday)["weekly"]) == 2
    retention.prune(store, NOW - 400 * DAY)
    assert [
        (r["topic"], r["issued"]) for r in rollup.read_weeks(store, first, monday)["weekly"]
    ] == [("opioid-order", 1)]


# ---- the service's background task ------------------------------------------------------------


@pytest.fixture
def store_log() -> Iterator[list[logging.LogRecord]]:
    """What the store logs (the service's own handler does not pass records on to caplog's)."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect()
    logger = logging.getLogger("cds_service.store")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.fixture
def fast_maintenance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maintenance, "PRUNE_FIRST_DELAY_SECONDS", 0.0)
    monkeypatch.setattr(maintenance, "PRUNE_INTERVAL_SECONDS", 0.05)
    monkeypatch.setattr(maintenance, "FOLD_INTERVAL_SECONDS", 0.05)


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, "the maintenance task did not get there"
        time.sleep(0.02)


@pytest.mark.usefixtures("fast_maintenance")
def test_the_service_prunes_in_the_background_with_its_clock(
    client_factory: Callable[..., TestClient],
    tmp_path: Path,
    store_log: list[logging.LogRecord],
) -> None:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    store = Store(url)
    store.migrate()
    # Old by the service's clock (2026-11-22), not by today's date.
    store.log_cards([card("old", NOW - 401 * DAY), card("recent", NOW - 399 * DAY)])
    feedback(store, "old", NOW - 401 * DAY)
    store.close()

    client = client_factory(database_url=url)
    app_store: Store = client.app.state.store  # type: ignore[attr-defined]
    wait_for(lambda: kept(app_store) == (["recent"], []))

    wait_for(lambda: any(r.getMessage() == "retention pruned" for r in store_log))
    line = next(r for r in store_log if r.getMessage() == "retention pruned")
    assert (line.cards, line.feedback) == (1, 1)  # type: ignore[attr-defined]
    assert line.cutoff == (NOW - 400 * DAY).isoformat()  # type: ignore[attr-defined]
    assert client.get("/healthz").status_code == 200


@pytest.mark.usefixtures("fast_maintenance")
def test_a_failing_round_is_logged_and_the_next_one_runs(
    client_factory: Callable[..., TestClient],
    monkeypatch: pytest.MonkeyPatch,
    store_log: list[logging.LogRecord],
) -> None:
    rounds: list[datetime] = []

    def broken(_store: Store, cutoff: datetime, **_kwargs: Any) -> retention.Pruned:
        rounds.append(cutoff)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(retention, "prune", broken)
    client = client_factory()
    wait_for(lambda: len(rounds) >= 2)
    failures = [r for r in store_log if r.getMessage() == "store maintenance failed"]
    assert failures and all(r.job == "retention" for r in failures)  # type: ignore[attr-defined]
    assert client.get("/healthz").status_code == 200


@pytest.mark.usefixtures("fast_maintenance")
def test_stopping_the_service_ends_a_round_between_batches(
    settings_factory: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = threading.Event()
    stop_seen: list[bool] = []

    def long_round(_store: Store, _cutoff: datetime, **kwargs: Any) -> retention.Pruned:
        started.set()
        stop: threading.Event = kwargs["stop"]
        # A round of many batches: it checks `stop` between two of them.
        stop_seen.append(stop.wait(timeout=20))
        return retention.Pruned(0, 0, 0)

    monkeypatch.setattr(retention, "prune", long_round)
    with TestClient(create_app(settings_factory(), clock=lambda: NOW)):
        assert started.wait(timeout=20)
    # The lifespan ended only after the round in progress saw the stop and returned.
    assert stop_seen == [True]


# ---- PostgreSQL: one replica at a time ---------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_cluster() -> Iterator[str]:
    with running_postgres(bindir_or_skip()) as url:
        yield url


def _holds_retention_lock(store: Store) -> bool:
    query = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND ((classid::bigint << 32) | objid::bigint) = :key"
    )
    with store.engine.connect() as conn:
        return bool(conn.scalar(query, {"key": retention.RETENTION_LOCK_KEY}))


@pytest.mark.postgres
def test_two_replicas_pruning_at_once_one_prunes_the_other_skips(postgres_cluster: str) -> None:
    url = create_database(postgres_cluster)
    a, b = Store(url), Store(url)
    try:
        a.migrate()
        a.log_cards([card(f"old-{n}", NOW - 500 * DAY) for n in range(3)] + [card("new", NOW)])
        results: dict[str, Any] = {}
        with a.engine.connect() as analytics_reader:
            # Replica A's round will wait for this lock inside its first batch, holding the
            # retention lock meanwhile.
            rollup.lock(analytics_reader, wait=True)
            first = threading.Thread(
                target=lambda: results.setdefault("a", retention.prune(a, NOW - 400 * DAY))
            )
            first.start()
            wait_for(lambda: _holds_retention_lock(b))
            second = threading.Thread(
                target=lambda: results.setdefault("b", retention.prune(b, NOW - 400 * DAY))
            )
            second.start()
            second.join(timeout=10)
            b_waited = second.is_alive()  # B must skip, not wait for A's round
            analytics_reader.rollback()
        second.join(timeout=30)
        first.join(timeout=30)
        assert not b_waited
        assert results == {"a": retention.Pruned(cards=3, feedback=0, batches=1), "b": None}
        assert kept(b) == (["new"], [])
        # The lock went with A's round: the next round runs (and finds nothing left).
        assert retention.prune(b, NOW - 400 * DAY) == retention.Pruned(0, 0, 0)
    finally:
        a.close()
        b.close()
