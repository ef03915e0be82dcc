"""The store on SQLite: versioned migrations (safe when workers start together), the JWT replay
cache, and feedback that PostgreSQL would otherwise refuse (NUL, long strings).

tests/test_postgres_replicas.py runs the same checks on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from cds_service.errors import ServiceUnavailable
from cds_service.store import db
from cds_service.store.db import Store
from cds_service.store.migrations import MIGRATIONS, applied_versions


def store_at(path: Path) -> Store:
    return Store(f"sqlite:///{path}")


def migrate_together(url: str, workers: int) -> list[list[int]]:
    """`workers` stores migrate one fresh database at the same instant; what each applied."""
    barrier = threading.Barrier(workers)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def start() -> None:
        store = Store(url)
        try:
            barrier.wait(timeout=10)
            results.append(store.migrate())
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=start) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


def test_migrations_apply_once(tmp_path: Path) -> None:
    store = store_at(tmp_path / "a.db")
    assert store.migrate() == [m.version for m in MIGRATIONS]
    assert store.migrate() == []
    assert applied_versions(store.engine) == [m.version for m in MIGRATIONS]
    store.close()


def test_workers_starting_together_migrate_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'together.db'}"
    results = migrate_together(url, workers=8)
    assert sorted(results) == [[]] * 7 + [[1, 2]]
    store = Store(url)
    assert applied_versions(store.engine) == [1, 2]
    store.close()


def test_a_worker_opening_a_fresh_database_waits_for_another_workers_migration(
    tmp_path: Path,
) -> None:
    # Another worker is migrating the fresh file (a write transaction, not yet WAL). SQLite refuses
    # the switch to WAL at once then, without its busy timeout; the store must wait, not fail.
    path = tmp_path / "fresh.db"
    migrating = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    migrating.execute("BEGIN IMMEDIATE")
    migrating.execute("CREATE TABLE other_worker (x INTEGER)")
    released = threading.Event()

    def finish_migration() -> None:
        migrating.execute("COMMIT")
        released.set()

    timer = threading.Timer(0.2, finish_migration)
    timer.start()
    store = store_at(path)
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert released.is_set()
    finally:
        timer.join()
        migrating.close()
        store.close()


def test_migrated_schema_is_what_the_queries_expect(tmp_path: Path) -> None:
    store = store_at(tmp_path / "schema.db")
    store.migrate()
    found = inspect(store.engine)
    for table in db.metadata.sorted_tables:
        columns = {c["name"] for c in found.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
    store.close()


def test_a_database_made_before_migrations_is_adopted(tmp_path: Path) -> None:
    store = store_at(tmp_path / "old.db")
    db.metadata.create_all(store.engine)  # what start-up did before versioned migrations
    store.save_feedback("lbp-order-sign", [_item("kept")])
    assert store.migrate() == [1, 2]
    assert [r["card_uuid"] for r in store.feedback_rows()] == ["kept"]
    store.close()


def test_jti_is_refused_until_it_expires_and_is_scoped_to_its_issuer(tmp_path: Path) -> None:
    store = store_at(tmp_path / "jti.db")
    store.migrate()
    later = datetime.now(UTC) + timedelta(hours=1)
    assert store.remember_jti("https://ehr-a", "jti-1", later) is True
    assert store.remember_jti("https://ehr-a", "jti-1", later) is False
    assert store.remember_jti("https://ehr-b", "jti-1", later) is True
    # An entry past its keep-until time is forgotten (its token has long expired).
    past = datetime.now(UTC) - timedelta(seconds=1)
    assert store.remember_jti("https://ehr-a", "jti-2", past) is True
    assert store.remember_jti("https://ehr-a", "jti-2", later) is True
    assert store.remember_jti("https://ehr-a", "jti-2", later) is False
    store.close()


def test_concurrent_use_of_one_jti_succeeds_exactly_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    store = Store(url)
    store.migrate()
    barrier = threading.Barrier(8)
    outcomes: list[bool] = []
    later = datetime.now(UTC) + timedelta(hours=1)

    def use() -> None:
        barrier.wait(timeout=10)
        outcomes.append(store.remember_jti("https://ehr", "same-jti", later))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == [False] * 7 + [True]
    store.close()


def _item(card: str, comment: str | None = None) -> dict[str, object]:
    item: dict[str, object] = {
        "card": card,
        "outcome": "overridden",
        "outcomeTimestamp": "2026-11-22T10:00:00Z",
    }
    if comment is not None:
        item["overrideReason"] = {"userComment": comment}
    return item


@pytest.mark.parametrize(
    ("card", "comment"),
    [
        ("c" * 4096, "long card id"),
        ("card-nul", "before\x00after"),
        ("card-unicode-😀-עברית", "😀 \u202e reversed \ufeff"),
    ],
)
def test_feedback_strings_the_wire_allows_are_stored(
    tmp_path: Path, card: str, comment: str
) -> None:
    store = store_at(tmp_path / "fb.db")
    store.migrate()
    assert store.save_feedback("lbp-order-sign", [_item(card, comment)]) == 1
    row = store.feedback_rows()[0]
    assert row["card_uuid"] == card
    assert row["user_comment"] == comment.replace("\x00", "\ufffd")
    store.close()


def test_an_error_that_is_not_an_outage_is_not_hidden(tmp_path: Path) -> None:
    """Only "cannot reach the database" becomes ServiceUnavailable; a bug stays a bug."""

    @db._store_call
    def broken() -> None:
        raise IntegrityError("INSERT ...", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        broken()
    store = store_at(tmp_path / "never-migrated.db")
    with pytest.raises(ServiceUnavailable):  # SQLite reports a missing table as operational
        store.card_log_rows()
    store.close()


def test_readiness_ping_runs_off_the_event_loop_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_at(tmp_path / "ping.db")
    store.migrate()
    release = threading.Event()
    pings: list[int] = []

    def hung_ping() -> None:
        pings.append(1)
        assert release.wait(timeout=10)

    monkeypatch.setattr(store, "ping", hung_ping)

    async def probes() -> list[bool]:
        first = await store.answers(timeout=0.05)
        second = await store.answers(timeout=0.05)
        assert len(pings) == 1  # the hung ping is awaited again, not repeated
        release.set()
        third = await store.answers(timeout=5)
        return [first, second, third]

    assert asyncio.run(probes()) == [False, False, True]
    monkeypatch.undo()
    assert asyncio.run(store.answers()) is True
    store.close()
