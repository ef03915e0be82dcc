"""The counts the database keeps (store/rollup.py) give exactly the figures a straightforward
Python computation gives from the definitions in analytics/aggregate.py, on SQLite and
PostgreSQL, for seeded random data: cards over several weeks and topics (some before or after the
window), feedback sequences (accepted then overridden and back, reasons with and without codes
and displays), feedback for unknown cards, feedback written before its card, counts brought up
to date in between, and retention pruning some of it.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from cds_service.analytics.aggregate import (
    ReasonCount,
    Summary,
    TopicOutcome,
    UnknownCardFeedback,
    Window,
    summarise,
    week_start,
)
from cds_service.cards.override_reasons import OVERRIDE_REASON_SYSTEM, own_display
from cds_service.logic.findings import Topic
from cds_service.store import db, migrations, retention, rollup
from cds_service.store.db import CardLogEntry, Store
from tests.postgres import bindir_or_skip, create_database, running_postgres

TODAY = date(2026, 11, 22)  # a Sunday
NOW = datetime(2026, 11, 22, 18, tzinfo=UTC)
TOPICS = [t.value for t in Topic] + ["a-topic-not-in-the-contract"]
REASONS: list[tuple[str | None, str | None, str | None]] = [
    (OVERRIDE_REASON_SYSTEM, "red-flag-not-coded", None),
    (OVERRIDE_REASON_SYSTEM, "palliative-care", "palliative"),
    (OVERRIDE_REASON_SYSTEM, "made-up-code", "Made up"),
    ("http://ehr.example/reasons", "other", "Other"),
    ("http://ehr.example/reasons", "other", "Something else"),  # displays tie or not
    ("http://ehr.example/reasons", "other", None),
    (None, None, None),  # overridden without a reason
    ("http://ehr.example/reasons", None, "a display without a code"),
]


@dataclass(frozen=True)
class Card:
    uuid: str
    topic: str
    issued_at: datetime


@dataclass(frozen=True)
class Item:
    """One feedback item, in the order received."""

    card: str
    outcome: str
    system: str | None
    code: str | None
    display: str | None
    received_at: datetime

    def wire(self, n: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "card": self.card,
            "outcome": self.outcome,
            "outcomeTimestamp": f"t{n}",  # unique, so the store keeps every item
        }
        reason = {
            k: v
            for k, v in (("system", self.system), ("code", self.code), ("display", self.display))
            if v is not None
        }
        if reason:
            item["overrideReason"] = {"reason": reason}
        return item


def scenario(seed: int) -> tuple[list[Card], list[Item]]:
    rnd = random.Random(seed)
    cards = [
        Card(
            f"card-{seed}-{n}",
            rnd.choice(TOPICS),
            # 20 weeks back to 3 days ahead of NOW (clock skew): before, in and after windows.
            NOW - timedelta(seconds=rnd.randint(-3 * 86400, 140 * 86400)),
        )
        for n in range(240)
    ]
    items: list[Item] = []
    for card in rnd.sample(cards, 110):
        for _ in range(rnd.choice([1, 1, 1, 2, 2, 3])):
            items.append(_item(rnd, card.uuid, card.issued_at))
    for n in range(30):  # cards the card log will never hold
        items.append(_item(rnd, f"ghost-{seed}-{n % 18}", NOW - timedelta(days=rnd.randint(0, 90))))
    rnd.shuffle(items)  # the order received
    return cards, items


def _item(rnd: random.Random, card: str, after: datetime) -> Item:
    outcome = rnd.choice(["accepted", "overridden"])
    system, code, display = rnd.choice(REASONS) if outcome == "overridden" else (None,) * 3
    received = after + timedelta(minutes=rnd.randint(0, 60 * 24 * 30))
    return Item(card, outcome, system, code, display, received)


def expected(cards: list[Card], items: list[Item], window: Window) -> Summary:
    """The definitions of analytics/aggregate.py, computed directly from the rows."""
    shown = set(window.weeks)
    topic_of: dict[str, str] = {}
    weekly: Counter[tuple[str, date]] = Counter()
    for card in cards:
        week = week_start(card.issued_at.astimezone(UTC).date())
        if week in shown:
            topic_of[card.uuid] = card.topic
            weekly[(card.topic, week)] += 1
    logged = {card.uuid for card in cards}
    last: dict[str, str] = {}
    unknown_items: list[Item] = []
    reasons: Counter[tuple[str | None, str | None, str | None]] = Counter()
    displays: dict[tuple[str | None, str | None, str | None], Counter[str]] = {}
    counted = 0
    for item in items:
        if item.card in topic_of:
            last[item.card] = item.outcome
        elif item.card in logged or item.received_at < window.since:
            continue  # a card issued outside the window, or received before it
        else:
            unknown_items.append(item)
        counted += 1
        if item.outcome == "overridden":
            key = (topic_of.get(item.card), item.system if item.code else None, item.code)
            reasons[key] += 1
            if item.display:
                displays.setdefault(key, Counter())[item.display] += 1
    contract = [t.value for t in Topic]
    topics = (*contract, *sorted(set(topic_of.values()) - set(contract)))
    issued = Counter(topic_of.values())
    outcomes = tuple(
        TopicOutcome(
            t,
            issued[t],
            sum(1 for u, o in last.items() if topic_of[u] == t and o == "accepted"),
            sum(1 for u, o in last.items() if topic_of[u] == t and o == "overridden"),
        )
        for t in topics
    )

    def display(key: tuple[str | None, str | None, str | None]) -> str | None:
        sent = displays.get(key)
        if not sent:
            return None
        top = max(sent.values())
        return sorted(d for d, n in sent.items() if n == top)[0]

    return Summary(
        window=window,
        topics=topics,
        weekly=dict(weekly),
        outcomes=outcomes,
        reasons=tuple(
            ReasonCount(t, s, c, own_display(s, c) or display((t, s, c)), n)
            for (t, s, c), n in sorted(
                reasons.items(),
                key=lambda kv: (-kv[1], kv[0][0] or "~", kv[0][2] or "~", kv[0][1] or ""),
            )
        ),
        unknown=UnknownCardFeedback(
            items=len(unknown_items),
            cards=len({i.card for i in unknown_items}),
            accepted=sum(i.outcome == "accepted" for i in unknown_items),
            overridden=sum(i.outcome == "overridden" for i in unknown_items),
        ),
        cards_issued=sum(issued.values()),
        feedback_items=counted,
    )


def from_the_store(store: Store, window: Window) -> Summary:
    return summarise(rollup.read_weeks(store, window.weeks[0], window.weeks[-1]), window)


WINDOWS = (1, 4, 12, 104)


def write_interleaved(store: Store, cards: list[Card], items: list[Item], seed: int) -> None:
    """Cards and feedback written in random slices (feedback often before its card), the counts
    brought up to date after some slices only."""
    rnd = random.Random(seed + 1)
    entries = [
        CardLogEntry(c.uuid, "lbp-order-sign", c.topic, "warning", "h", c.issued_at) for c in cards
    ]
    rnd.shuffle(entries)
    pending_items = list(enumerate(items))
    while entries or pending_items:
        if entries and (not pending_items or rnd.random() < 0.5):
            store.log_cards([entries.pop() for _ in range(min(len(entries), rnd.randint(1, 40)))])
        else:
            # Items keep their order received; each goes with its own time.
            take = rnd.randint(1, 15)
            for n, item in pending_items[:take]:
                store.save_feedback("lbp-order-sign", [item.wire(n)], received_at=item.received_at)
            del pending_items[:take]
        if rnd.random() < 0.3:
            rollup.catch_up(store, batch_size=rnd.choice([1, 7, 50]))


@pytest.fixture(scope="module")
def postgres_cluster() -> Iterator[str]:
    with running_postgres(bindir_or_skip()) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'analytics.db'}"
    return create_database(request.getfixturevalue("postgres_cluster"))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.migrate()
    yield store
    store.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_databases_counts_match_the_definitions(store: Store, seed: int) -> None:
    cards, items = scenario(seed)
    write_interleaved(store, cards, items, seed)
    for weeks in WINDOWS:
        window = Window.ending(TODAY, weeks)
        assert from_the_store(store, window) == expected(cards, items, window), weeks
    # Recounted from scratch, the figures are the same.
    rollup.rebuild(store)
    for weeks in WINDOWS:
        window = Window.ending(TODAY, weeks)
        assert from_the_store(store, window) == expected(cards, items, window), weeks


def test_the_counts_follow_retention(store: Store) -> None:
    cards, items = scenario(4)
    write_interleaved(store, cards, items, 4)
    rollup.catch_up(store)
    cutoff = NOW - timedelta(days=60)
    pruned = retention.prune(store, cutoff, batch_size=17)
    kept_cards = [c for c in cards if c.issued_at >= cutoff]
    kept_items = [i for i in items if i.received_at >= cutoff]
    assert pruned == retention.Pruned(
        cards=len(cards) - len(kept_cards),
        feedback=len(items) - len(kept_items),
        batches=math.ceil((len(cards) - len(kept_cards)) / 17)
        + math.ceil((len(items) - len(kept_items)) / 17),
    )
    for weeks in WINDOWS:
        window = Window.ending(TODAY, weeks)
        assert from_the_store(store, window) == expected(kept_cards, kept_items, window), weeks


def test_a_large_backlog_is_recounted_in_one_go(store: Store) -> None:
    cards, items = scenario(5)
    write_interleaved(store, cards, items, 5)
    folded = rollup.catch_up(store, rebuild_above=10)
    assert folded is not None and folded > 10
    window = Window.ending(TODAY, 104)
    assert from_the_store(store, window) == expected(cards, items, window)


def test_a_busy_lock_is_skipped_when_asked_not_to_wait(store: Store) -> None:
    store.log_cards([CardLogEntry("c1", "lbp-order-sign", TOPICS[0], "warning", "h", NOW)])
    with store.engine.connect() as holder:
        rollup.lock(holder, wait=True)
        if store.engine.dialect.name == "postgresql":
            assert rollup.catch_up(store, wait=False) is None
        holder.rollback()
    assert rollup.catch_up(store, wait=False) == 1


def test_rows_stored_before_the_counts_existed_are_counted(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cards, items = scenario(6)
    store = Store(database_url)
    try:
        with monkeypatch.context() as before_version_2:
            before_version_2.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
            assert store.migrate() == [1]
        # What the card log writer and the feedback route stored under version 1.
        with store.engine.begin() as conn:
            conn.execute(
                insert(db.card_log),
                [
                    {
                        "card_uuid": c.uuid,
                        "service_id": "lbp-order-sign",
                        "topic": c.topic,
                        "indicator": "warning",
                        "hook_instance": "h",
                        "issued_at": c.issued_at,
                    }
                    for c in cards
                ],
            )
            conn.execute(
                insert(db.feedback),
                [
                    {
                        "dedupe_key": f"item-{n}",
                        "service_id": "lbp-order-sign",
                        "card_uuid": i.card,
                        "outcome": i.outcome,
                        "override_system": i.system,
                        "override_code": i.code,
                        "override_display": i.display,
                        "outcome_timestamp": f"t{n}",
                        "received_at": i.received_at,
                    }
                    for n, i in enumerate(items)
                ],
            )
        assert store.migrate() == [2]
        for weeks in WINDOWS:
            window = Window.ending(TODAY, weeks)
            assert from_the_store(store, window) == expected(cards, items, window), weeks
    finally:
        store.close()
