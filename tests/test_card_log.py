"""The card log: written in batches off the request path, nothing lost on a clean stop, no PHI."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

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
    import asyncio
    from datetime import UTC, datetime

    from cds_service.store.card_log_writer import CardLogWriter
    from cds_service.store.db import CardLogEntry, Store

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
