"""/analytics figures kept as weekly counts in the database, on SQLite and PostgreSQL alike.

Why counts kept up to date rather than computed per request: on 10 million cards (PostgreSQL,
bench/analytics_10m.py) grouping the card log by week and topic took 3.75 s and finding each
card's last feedback (a join of the feedback with the card log) 12.1 s, against a 2 s target.
So every figure is kept per ISO week (Monday, UTC) in three small tables, and a request reads a
few hundred rows of them (under 40 ms there, for any window):

- analytics_cards (week of issue, topic): cards issued, feedback items on them, cards whose LAST
  feedback is accepted / overridden;
- analytics_reasons (week, topic, reason system, code, display): overridden items; for a card the
  card log does not hold, topic is NULL and the week is the week the item was received;
- analytics_unknown (week received): feedback items for unknown cards, accepted and overridden
  items, and unknown cards counted in the week of their latest item.

Every figure is a sum over card uuids of what that uuid's card row and feedback rows contribute,
so a change to some uuids is applied exactly as (their contribution after) - (before). The card
log writer and the feedback route only add a row to analytics_pending_* in the same transaction
as the card or feedback row; `catch_up` (the maintenance task every few seconds, and every
/analytics request before it reads) folds the pending rows in, in batches, under one lock: an
advisory transaction lock on PostgreSQL, BEGIN IMMEDIATE on SQLite. Rows still pending count
nowhere, so feedback that arrives before its card (the card log is written every 0.1 s, later
after an outage) is counted as an unknown card's until the card is folded in, then moves. Pruning
(store/retention.py) changes rows under the same lock with `refresh`. Rows stored before these
tables existed, or a very long queue, are counted by one recount of everything instead.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    ColumnElement,
    Date,
    Table,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.engine import Connection

from cds_service.store.db import (
    Store,
    _store_call,
    analytics_cards,
    analytics_reasons,
    analytics_unknown,
    card_log,
    dialect_insert,
    feedback,
    pending_cards,
    pending_feedback,
)
from cds_service.store.locks import transaction_lock

ACCEPTED = "accepted"
OVERRIDDEN = "overridden"

# Names this service's analytics lock among PostgreSQL advisory locks (migrations use ...0001).
ROLLUP_LOCK_KEY = 0x1B9C_D5A0_0002
# Pending cards and feedback items folded in per transaction: each statement then binds at most
# 2 x 2 x BATCH_SIZE uuids, within SQLite's and PostgreSQL's parameter limits.
BATCH_SIZE = 2000
# More pending rows than this (nothing folded them in for a long while) are folded in by one
# recount of everything, much faster than hundreds of batches.
REBUILD_ABOVE = 200_000

K = TypeVar("K", bound=Hashable)

_CARD_FIGURES = ("issued", "feedback_items", "accepted", "overridden")
_UNKNOWN_FIGURES = ("items", "cards", "accepted", "overridden")


def lock(conn: Connection, *, wait: bool) -> bool:
    """Take the analytics lock for the transaction `conn` is starting; False when `wait` is off
    and another replica holds it. SQLite has one writer at a time: BEGIN IMMEDIATE is the lock."""
    return transaction_lock(conn, ROLLUP_LOCK_KEY, wait=wait)


def _week(conn: Connection, moment: Any) -> ColumnElement[Any]:
    """The Monday (UTC) of the ISO week holding `moment`, computed by the database."""
    if conn.dialect.name == "postgresql":
        return cast(func.date_trunc("week", func.timezone("UTC", moment)), Date)
    # SQLite keeps UTC times as text; 'weekday 0' moves to the Sunday on or after, -6 days back
    # to its Monday.
    return func.date(moment, "weekday 0", "-6 days")


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


@dataclass
class Contribution:
    """What a set of card uuids adds to each figure, keyed as the tables are."""

    cards: dict[str, Counter[tuple[date, str]]] = field(
        default_factory=lambda: {name: Counter() for name in _CARD_FIGURES}
    )
    reasons: Counter[tuple[date, str | None, str | None, str | None, str | None]] = field(
        default_factory=Counter
    )
    unknown: dict[str, Counter[date]] = field(
        default_factory=lambda: {name: Counter() for name in _UNKNOWN_FIGURES}
    )


def contribution(conn: Connection, uuids: Collection[str] | None) -> Contribution:
    """What the cards and feedback of `uuids` (None: every uuid) add to the figures, counting
    only rows that are no longer pending. Two grouped queries: no row per card leaves the
    database."""

    def scoped(column: Any) -> ColumnElement[bool]:
        return column.in_(list(uuids)) if uuids is not None else true()

    c, f = card_log.c, feedback.c
    out = Contribution()
    cards = (
        select(c.card_uuid, c.topic, _week(conn, c.issued_at).label("week"))
        .where(scoped(c.card_uuid), ~exists().where(pending_cards.c.card_uuid == c.card_uuid))
        .subquery("pc")
    )
    for week, topic, issued in conn.execute(
        select(cards.c.week, cards.c.topic, func.count()).group_by(cards.c.week, cards.c.topic)
    ):
        out.cards["issued"][(_as_date(week), topic)] += issued

    code = func.nullif(f.override_code, "")
    received = _week(conn, f.received_at)
    items = (
        select(
            f.card_uuid,
            f.outcome,
            # Without a code the reason is "none given", whatever system came with it.
            case((code.is_not(None), f.override_system), else_=None).label("system"),
            code.label("code"),
            func.nullif(f.override_display, "").label("display"),
            received.label("week"),
            # The card's outcome is its last item; an unknown card counts in its latest week.
            (f.id == func.max(f.id).over(partition_by=f.card_uuid)).label("is_last"),
            func.max(received).over(partition_by=f.card_uuid).label("latest_week"),
        )
        .where(scoped(f.card_uuid), ~exists().where(pending_feedback.c.feedback_id == f.id))
        .subquery("pf")
    )
    unknown = cards.c.card_uuid.is_(None)
    key = (
        func.coalesce(cards.c.week, items.c.week),
        cards.c.topic,
        items.c.system,
        items.c.code,
        items.c.display,
        items.c.outcome,
        items.c.is_last,
        case((and_(unknown, items.c.is_last), items.c.latest_week), else_=None),
    )
    grouped = (
        select(*key, func.count())
        .select_from(items.outerjoin(cards, cards.c.card_uuid == items.c.card_uuid))
        .group_by(*key)
    )
    for week, topic, system, code_, display, outcome, is_last, latest, n in conn.execute(grouped):
        week = _as_date(week)
        if topic is not None:
            out.cards["feedback_items"][(week, topic)] += n
            if is_last and outcome in (ACCEPTED, OVERRIDDEN):
                out.cards[outcome][(week, topic)] += n
        else:
            out.unknown["items"][week] += n
            if outcome in (ACCEPTED, OVERRIDDEN):
                out.unknown[outcome][week] += n
            if latest is not None:
                out.unknown["cards"][_as_date(latest)] += n
        if outcome == OVERRIDDEN:
            out.reasons[(week, topic, system, code_, display)] += n
    return out


def _difference(after: Counter[K], before: Counter[K]) -> dict[K, int]:
    keys = set(after) | set(before)
    return {k: after[k] - before[k] for k in keys if after[k] != before[k]}


def _figure_rows(
    before: Mapping[str, Counter[K]],
    after: Mapping[str, Counter[K]],
    figures: tuple[str, ...],
    key_columns: Callable[[K], dict[str, Any]],
) -> list[dict[str, Any]]:
    """One row per key whose figures changed: its key columns and the change of each figure."""
    rows: dict[K, dict[str, Any]] = {}
    for name in figures:
        for key, change in _difference(after[name], before[name]).items():
            row = rows.setdefault(key, {**key_columns(key), **dict.fromkeys(figures, 0)})
            row[name] = change
    return list(rows.values())


def _upsert(
    conn: Connection, table: Table, keys: Iterable[str], figures: Iterable[str], rows: list[Any]
) -> None:
    if not rows:
        return
    statement = dialect_insert(conn.dialect.name)(table)
    figures = tuple(figures)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c[k] for k in keys],
            set_={name: table.c[name] + statement.excluded[name] for name in figures},
        ),
        rows,
    )
    weeks = sorted({row["week"] for row in rows})
    # A row whose figures all came back to zero (pruned, or moved to another week) goes.
    conn.execute(
        delete(table).where(table.c.week.in_(weeks), *(table.c[name] == 0 for name in figures))
    )


def _reason_hash(
    topic: str | None, system: str | None, code: str | None, display: str | None
) -> str:
    return hashlib.sha256(orjson.dumps([topic, system, code, display])).hexdigest()


def apply(conn: Connection, before: Contribution, after: Contribution) -> None:
    """Add (after - before) to the tables."""
    card_rows = _figure_rows(
        before.cards, after.cards, _CARD_FIGURES, lambda key: {"week": key[0], "topic": key[1]}
    )
    _upsert(conn, analytics_cards, ("week", "topic"), _CARD_FIGURES, card_rows)

    reason_rows = [
        {
            "week": week,
            "key_hash": _reason_hash(topic, system, code, display),
            "topic": topic,
            "override_system": system,
            "override_code": code,
            "override_display": display,
            "overrides": change,
        }
        for (week, topic, system, code, display), change in _difference(
            after.reasons, before.reasons
        ).items()
    ]
    _upsert(conn, analytics_reasons, ("week", "key_hash"), ("overrides",), reason_rows)

    unknown_rows = _figure_rows(
        before.unknown, after.unknown, _UNKNOWN_FIGURES, lambda week: {"week": week}
    )
    _upsert(conn, analytics_unknown, ("week",), _UNKNOWN_FIGURES, unknown_rows)


def refresh(conn: Connection, uuids: Collection[str], change: Callable[[], None]) -> None:
    """Run `change` (which may add, delete or un-queue rows of `uuids` only) and bring the figures
    along. The caller holds the lock (`lock`) and commits."""
    before = contribution(conn, uuids)
    change()
    apply(conn, before, contribution(conn, uuids))


def _rebuild(conn: Connection) -> int:
    """Recount everything from scratch (the caller holds the lock); how many rows were pending.
    Rows committed meanwhile stay pending, so they count nowhere until the next catch-up."""
    dequeued = conn.execute(delete(pending_cards)).rowcount
    dequeued += conn.execute(delete(pending_feedback)).rowcount
    for table in (analytics_cards, analytics_reasons, analytics_unknown):
        conn.execute(delete(table))
    apply(conn, Contribution(), contribution(conn, None))
    return dequeued


def _fold_batch(conn: Connection, batch_size: int) -> int:
    """Fold in up to `batch_size` pending cards and feedback items; how many were pending."""
    cards = list(conn.scalars(select(pending_cards.c.card_uuid).limit(batch_size)))
    items = conn.execute(
        select(pending_feedback.c.feedback_id, feedback.c.card_uuid)
        .outerjoin(feedback, feedback.c.id == pending_feedback.c.feedback_id)
        .limit(batch_size)
    ).all()
    if not cards and not items:
        return 0
    uuids = set(cards) | {uuid for _, uuid in items if uuid is not None}
    ids = [feedback_id for feedback_id, _ in items]

    def dequeue() -> None:
        if cards:
            conn.execute(delete(pending_cards).where(pending_cards.c.card_uuid.in_(cards)))
        if ids:
            conn.execute(delete(pending_feedback).where(pending_feedback.c.feedback_id.in_(ids)))

    refresh(conn, uuids, dequeue)
    return len(cards) + len(items)


def _never_counted(conn: Connection) -> bool:
    """No counts yet, but rows: a database that held rows before the counts existed (they were
    never queued), or one whose counts all went; a recount is right in both cases."""
    if conn.scalar(select(exists().select_from(analytics_cards))) or conn.scalar(
        select(exists().select_from(analytics_unknown))
    ):
        return False
    return bool(
        conn.scalar(select(exists().select_from(card_log)))
        or conn.scalar(select(exists().select_from(feedback)))
    )


def _pending_above(conn: Connection, limit: int) -> bool:
    """Whether more than `limit` cards and feedback items are pending (counting stops there)."""
    found = 0
    for key in (pending_cards.c.card_uuid, pending_feedback.c.feedback_id):
        head = select(key).limit(limit + 1 - found).subquery()
        found += int(conn.scalar(select(func.count()).select_from(head)) or 0)
        if found > limit:
            return True
    return False


@_store_call
def catch_up(
    store: Store,
    *,
    wait: bool = True,
    batch_size: int = BATCH_SIZE,
    rebuild_above: int = REBUILD_ABOVE,
) -> int | None:
    """Fold every pending card and feedback item into the figures, one transaction per batch.
    Returns how many were folded in, or None when `wait` is off and another replica is at it."""
    done = 0
    first = True
    while True:
        with store.engine.connect() as conn:
            if not lock(conn, wait=wait):
                conn.rollback()
                return done if done else None
            if first and (_never_counted(conn) or _pending_above(conn, rebuild_above)):
                done = _rebuild(conn)
                conn.commit()
                return done
            first = False
            folded = _fold_batch(conn, batch_size)
            conn.commit()
        if not folded:
            return done
        done += folded


@_store_call
def rebuild(store: Store) -> int:
    """Recount the figures from the card log and feedback (one transaction); how many rows
    were pending."""
    with store.engine.connect() as conn:
        lock(conn, wait=True)
        dequeued = _rebuild(conn)
        conn.commit()
    return dequeued


@_store_call
def read_weeks(store: Store, first_week: date, last_week: date) -> dict[str, Any]:
    """The figures of the weeks `first_week`..`last_week` (Mondays), after folding in what is
    pending: `weekly` rows (week, topic, issued, feedback_items, accepted, overridden), `reasons`
    rows (topic, system, code, display, count), `unknown` (items, cards, accepted, overridden).

    Cards count by the week they were issued; feedback for unknown cards by the week received,
    from `first_week` on (an item received "after" the window is still received within it)."""
    catch_up(store, wait=True)
    t, r, u = analytics_cards.c, analytics_reasons.c, analytics_unknown.c
    in_window = and_(t.week >= first_week, t.week <= last_week)
    reason_key = (r.topic, r.override_system, r.override_code, r.override_display)
    total = func.sum(r.overrides)
    with store.engine.connect() as conn:
        weekly = [
            {**row._mapping, "week": _as_date(row.week)}
            for row in conn.execute(
                select(t.week, t.topic, *(t[name] for name in _CARD_FIGURES)).where(in_window)
            )
        ]
        reasons = [
            {"topic": topic, "system": system, "code": code, "display": display, "count": n}
            for topic, system, code, display, n in conn.execute(
                select(*reason_key, total)
                .where(
                    or_(
                        and_(r.topic.is_not(None), r.week >= first_week, r.week <= last_week),
                        and_(r.topic.is_(None), r.week >= first_week),
                    )
                )
                .group_by(*reason_key)
                .having(total != 0)
            )
        ]
        sums = conn.execute(
            select(*(func.coalesce(func.sum(u[name]), 0) for name in _UNKNOWN_FIGURES)).where(
                u.week >= first_week
            )
        ).one()
    unknown = dict(zip(_UNKNOWN_FIGURES, (int(v) for v in sums), strict=True))
    return {"weekly": weekly, "reasons": reasons, "unknown": unknown}
