"""Retention: card-log rows issued, and feedback received, before a cutoff are deleted.

`CDS_RETENTION_DAYS` (default 400) sets the cutoff (the maintenance task computes it from the
service's clock). Rows go in batches of BATCH_SIZE, one statement and one transaction each, so no
replica holds a long lock or builds a huge transaction, and the analytics counts are brought
along in the same transaction (store/rollup.py `refresh`).

One replica prunes at a time: on PostgreSQL the round runs under a session advisory lock taken
with pg_try_advisory_lock (its own key); a replica that does not get it skips the round. SQLite
serves one replica: every batch runs under BEGIN IMMEDIATE, so processes sharing the file take
turns.

A card pruned before its feedback leaves that feedback counted as an unknown card's until the
feedback is pruned too; that is what the figures' definitions say of such feedback.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from cds_service.store import rollup
from cds_service.store.db import (
    Store,
    _store_call,
    _utc,
    card_log,
    feedback,
    pending_cards,
    pending_feedback,
)

# Names the retention round among PostgreSQL advisory locks (migrations ...0001, analytics ...0002).
RETENTION_LOCK_KEY = 0x1B9C_D5A0_0003
BATCH_SIZE = 5000


@dataclass(frozen=True)
class Pruned:
    cards: int
    feedback: int
    # Transactions that deleted rows (each at most `batch_size` rows of one table).
    batches: int


def _try_lock(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return True
    got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": RETENTION_LOCK_KEY}))
    conn.commit()
    return got


def _unlock(conn: Connection) -> None:
    """End the transaction in progress and release the session lock. A pooled connection must
    never keep it (every later round everywhere would skip): if releasing fails, the connection
    is closed, which releases it on the server."""
    try:
        conn.rollback()
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": RETENTION_LOCK_KEY})
            conn.commit()
    except SQLAlchemyError:
        conn.invalidate()


def _card_batch(conn: Connection, cutoff: datetime, size: int) -> int:
    uuids: Sequence[str] = list(
        conn.scalars(select(card_log.c.card_uuid).where(card_log.c.issued_at < cutoff).limit(size))
    )
    if not uuids:
        return 0

    def drop() -> None:
        conn.execute(delete(card_log).where(card_log.c.card_uuid.in_(uuids)))
        conn.execute(delete(pending_cards).where(pending_cards.c.card_uuid.in_(uuids)))

    rollup.refresh(conn, uuids, drop)
    return len(uuids)


def _feedback_batch(conn: Connection, cutoff: datetime, size: int) -> int:
    rows: Sequence[Any] = conn.execute(
        select(feedback.c.id, feedback.c.card_uuid)
        .where(feedback.c.received_at < cutoff)
        .limit(size)
    ).all()
    if not rows:
        return 0
    ids = [row.id for row in rows]

    def drop() -> None:
        conn.execute(delete(feedback).where(feedback.c.id.in_(ids)))
        conn.execute(delete(pending_feedback).where(pending_feedback.c.feedback_id.in_(ids)))

    rollup.refresh(conn, {row.card_uuid for row in rows}, drop)
    return len(ids)


@_store_call
def prune(
    store: Store,
    cutoff: datetime,
    *,
    batch_size: int = BATCH_SIZE,
    stop: threading.Event | None = None,
) -> Pruned | None:
    """Delete card-log rows issued, and feedback received, before `cutoff`, batch by batch.
    None when another replica holds the retention lock (this round is skipped). `stop` ends the
    round between two batches (the service is stopping)."""
    cutoff = _utc(cutoff)
    done = {"cards": 0, "feedback": 0, "batches": 0}
    with store.engine.connect() as conn:
        if not _try_lock(conn):
            return None
        try:
            for name, batch in (("cards", _card_batch), ("feedback", _feedback_batch)):
                while stop is None or not stop.is_set():
                    rollup.lock(conn, wait=True)
                    deleted = batch(conn, cutoff, batch_size)
                    conn.commit()
                    if not deleted:
                        break
                    done[name] += deleted
                    done["batches"] += 1
        finally:
            _unlock(conn)
    return Pruned(**done)
