"""The card log: written in batches off the request path, nothing lost on a clean stop, no PHI."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cds_service.errors import ServiceUnavailable
from cds_service.store.card_log_writer import FLUSH_INTERVAL_SECONDS, CardLogWriter
from cds_service.store.db import CardLogEntry, Store
from tests.conftest import call
from tests.factories import back_pain, chart_prefetch, hook_request


def test_cards_reach_the_card_log_without_waiting_for_shutdown(client: TestClient) -> None:
    body = hook_request("patient-view", prefetch=chart_prefetch([back_pain()]))
    card = call(client, "lbp-patient-view", body).json()["cards"][0]
    store = client.app.state.store  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while not store.card_log_rows() and time.monotonic() < deadline:
        time.sleep(0.05)
    [row] = store.card_log_rows()
    assert row["card_uuid"] == card["uuid"]
    assert row["topic"] == "startback-screening"
    assert row["hook_instance"] == body["hookInstance"]
    assert set(row) == {
        "card_uuid",
        "service_id",
        "topic",
        "indicator",
        "hook_instance",
        "issued_at",
    }


def test_pending_entries_are_written_on_stop_and_kept_when_the_database_fails(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'log.db'}")
    store.migrate()
    entry = CardLogEntry(
        card_uuid="c-1",
        service_id="lbp-order-sign",
        topic="opioid-order",
        indicator="warning",
        hook_instance="h-1",
        issued_at=datetime.now(UTC),
    )

    async def scenario() -> None:
        writer = CardLogWriter(store, interval=3600)
        writer.start()
        writer.add([entry])
        await asyncio.sleep(0)
        assert store.card_log_rows() == []
        broken = store.log_cards
        store.log_cards = lambda _entries: (_ for _ in ()).throw(RuntimeError("db down"))  # type: ignore[method-assign,assignment]
        await writer.flush()
        assert writer.pending == 1
        store.log_cards = broken  # type: ignore[method-assign]
        await writer.stop()
        assert writer.pending == 0

    asyncio.run(scenario())
    assert [r["card_uuid"] for r in store.card_log_rows()] == ["c-1"]
    store.close()


def _entry(n: int) -> CardLogEntry:
    return CardLogEntry(
        card_uuid=f"c-{n}",
        service_id="lbp-order-sign",
        topic="opioid-order",
        indicator="warning",
        hook_instance=f"h-{n}",
        issued_at=datetime.now(UTC),
    )


class SlowStore:
    """Wraps a store: each write waits until the test releases it (or fails when told to)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.writing = threading.Event()
        self.release = threading.Event()
        self.fail = False

    def log_cards(self, entries: Sequence[CardLogEntry]) -> None:
        self.writing.set()
        assert self.release.wait(timeout=10)
        if self.fail:
            raise ServiceUnavailable("down")
        self.store.log_cards(entries)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'log.db'}")
    store.migrate()
    yield store
    store.close()


def logged(store: Store) -> list[str]:
    return sorted(r["card_uuid"] for r in store.card_log_rows())


def test_flush_interval_is_at_most_a_quarter_second() -> None:
    assert FLUSH_INTERVAL_SECONDS <= 0.25


@pytest.mark.parametrize("fail", [False, True])
def test_a_flush_cancelled_mid_write_loses_nothing(store: Store, fail: bool) -> None:
    """The SIGTERM loss: cancelling the writer while its batch was in the worker thread dropped
    the batch (taken from memory, its transaction cut short when the process exited)."""
    slow = SlowStore(store)

    async def scenario() -> CardLogWriter:
        writer = CardLogWriter(slow, interval=3600)  # type: ignore[arg-type]
        writer.add([_entry(1), _entry(2)])
        flushing = asyncio.create_task(writer.flush())
        while not slow.writing.is_set():
            await asyncio.sleep(0.001)
        flushing.cancel()
        slow.fail = fail
        slow.release.set()
        with pytest.raises(asyncio.CancelledError):
            await flushing
        return writer

    writer = asyncio.run(scenario())
    if fail:
        assert writer.pending == 2  # kept for the next write
        assert logged(store) == []
    else:
        assert writer.pending == 0
        assert logged(store) == ["c-1", "c-2"]


def test_stop_during_a_write_waits_for_it_and_writes_what_came_after(store: Store) -> None:
    slow = SlowStore(store)

    async def scenario() -> None:
        writer = CardLogWriter(slow, interval=0.01)  # type: ignore[arg-type]
        writer.start()
        writer.add([_entry(1)])
        while not slow.writing.is_set():
            await asyncio.sleep(0.001)
        writer.add([_entry(2)])  # arrives while the first batch is being written
        stopping = asyncio.create_task(writer.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()  # stop waits for the write in progress
        slow.release.set()
        await stopping
        assert writer.pending == 0

    asyncio.run(scenario())
    assert logged(store) == ["c-1", "c-2"]


def test_database_down_keeps_a_bounded_backlog_logs_drops_and_catches_up(
    store: Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = True
    real = store.log_cards

    def log_cards(entries: Sequence[CardLogEntry]) -> None:
        if down:
            raise ServiceUnavailable("database down")
        real(entries)

    monkeypatch.setattr(store, "log_cards", log_cards)

    async def scenario() -> CardLogWriter:
        nonlocal down
        writer = CardLogWriter(store, interval=0.01, max_pending=5)
        writer.start()
        writer.add([_entry(n) for n in range(3)])
        await asyncio.sleep(0.05)  # a few failed writes
        assert writer.pending == 3
        writer.add([_entry(n) for n in range(3, 8)])  # 8 > 5: the 3 oldest go
        assert (writer.pending, writer.dropped) == (5, 3)
        down = False
        while writer.pending:
            await asyncio.sleep(0.01)
        await writer.stop()
        return writer

    with caplog.at_level(logging.INFO, logger="cds_service.store"):
        writer = asyncio.run(scenario())
    assert logged(store) == [f"c-{n}" for n in range(3, 8)]
    assert writer.dropped == 3
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("card log write failed; entries kept in memory and retried") == 1
    assert "card log backlog full: oldest entries dropped" in messages
    assert "card log writes resumed" in messages
    dropped = [r for r in caplog.records if r.getMessage().startswith("card log backlog full")]
    assert sum(r.__dict__["dropped"] for r in dropped) == 3


def test_stop_with_the_database_down_reports_what_is_lost(
    store: Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def log_cards(_entries: Sequence[CardLogEntry]) -> None:
        raise ServiceUnavailable("database down")

    monkeypatch.setattr(store, "log_cards", log_cards)

    async def scenario() -> None:
        writer = CardLogWriter(store, interval=3600, stop_retry_seconds=0.05)
        writer.start()
        writer.add([_entry(1), _entry(2)])
        await writer.stop()

    with caplog.at_level(logging.ERROR, logger="cds_service.store"):
        asyncio.run(scenario())
    [lost] = [r for r in caplog.records if "could not be written before shutdown" in r.getMessage()]
    assert lost.__dict__["lost"] == 2


def test_a_large_backlog_is_written_in_one_flush(store: Store) -> None:
    """After an outage the backlog can exceed one statement's bind-parameter limit."""

    async def scenario() -> None:
        writer = CardLogWriter(store, interval=3600)
        writer.add([_entry(n) for n in range(12_000)])
        assert await writer.flush() is True

    asyncio.run(scenario())
    assert len(store.card_log_rows()) == 12_000
