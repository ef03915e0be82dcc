"""Versioned schema migrations, run at start-up by every replica (SQLite and PostgreSQL).

A `schema_migrations` table records the versions applied. The runner takes a database-wide lock
first (PostgreSQL: a transaction-scoped advisory lock; SQLite: `BEGIN IMMEDIATE`), then applies
the missing versions and records them in the same transaction. DDL is transactional on both
databases, so two replicas starting together serialise: the second waits, then finds nothing to
do; a failed migration leaves nothing half-applied.

Each migration's DDL is frozen here (its own MetaData), so editing the query-side tables in
db.py never rewrites history; a new schema change is a new entry in MIGRATIONS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)
from sqlalchemy.engine import Connection

from cds_service.store.locks import transaction_lock

log = logging.getLogger("cds_service.store")

# Any fixed 64-bit number; it names this service's migration lock among advisory locks.
PG_ADVISORY_LOCK_KEY = 0x1B9C_D5A0_0001

_bookkeeping = MetaData()
schema_migrations = Table(
    "schema_migrations",
    _bookkeeping,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


def _v1_initial(conn: Connection) -> None:
    """feedback, card_log and jwt_replay. Client-supplied strings are TEXT: PostgreSQL enforces
    VARCHAR lengths, and the wire models admit up to 4096 characters."""
    m = MetaData()
    Table(
        "feedback",
        m,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("dedupe_key", String(64), nullable=False, unique=True),
        Column("service_id", String(100), nullable=False),
        Column("card_uuid", Text, nullable=False, index=True),
        Column("outcome", String(20), nullable=False),
        Column("accepted_suggestions", Text, nullable=True),
        Column("override_system", Text, nullable=True),
        Column("override_code", Text, nullable=True),
        Column("override_display", Text, nullable=True),
        Column("user_comment", Text, nullable=True),
        Column("outcome_timestamp", Text, nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "card_log",
        m,
        Column("card_uuid", String(64), primary_key=True),
        Column("service_id", String(100), nullable=False),
        Column("topic", String(100), nullable=False, index=True),
        Column("indicator", String(20), nullable=False),
        Column("hook_instance", Text, nullable=False),
        Column("issued_at", DateTime(timezone=True), nullable=False, index=True),
    )
    Table(
        "jwt_replay",
        m,
        Column("key", String(64), primary_key=True),
        Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    )
    # checkfirst: a database made by the pre-migration create_all() is adopted as version 1.
    m.create_all(conn, checkfirst=True)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


def _v2_analytics_rollup(conn: Connection) -> None:
    """Analytics kept as weekly counts (store/rollup.py) so /analytics reads a few hundred rows,
    not the card log: the counts and the queue of rows not yet counted. Rows stored before this
    version are counted by the first catch-up, which finds the counts empty and recounts. Retention
    prunes feedback by received_at, hence its index."""
    m = MetaData()
    Table(
        "analytics_cards",
        m,
        Column("week", Date, primary_key=True),
        Column("topic", String(100), primary_key=True),
        Column("issued", Integer, nullable=False),
        Column("feedback_items", Integer, nullable=False),
        Column("accepted", Integer, nullable=False),
        Column("overridden", Integer, nullable=False),
    )
    Table(
        "analytics_reasons",
        m,
        Column("week", Date, primary_key=True),
        Column("key_hash", String(64), primary_key=True),
        Column("topic", String(100), nullable=True),
        Column("override_system", Text, nullable=True),
        Column("override_code", Text, nullable=True),
        Column("override_display", Text, nullable=True),
        Column("overrides", Integer, nullable=False),
    )
    Table(
        "analytics_unknown",
        m,
        Column("week", Date, primary_key=True),
        Column("items", Integer, nullable=False),
        Column("cards", Integer, nullable=False),
        Column("accepted", Integer, nullable=False),
        Column("overridden", Integer, nullable=False),
    )
    Table("analytics_pending_cards", m, Column("card_uuid", String(64), primary_key=True))
    Table(
        "analytics_pending_feedback",
        m,
        Column("feedback_id", Integer, primary_key=True, autoincrement=False),
    )
    m.create_all(conn, checkfirst=True)
    feedback = Table("feedback", MetaData(), Column("received_at", DateTime(timezone=True)))
    Index("ix_feedback_received_at", feedback.c.received_at).create(conn, checkfirst=True)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial tables", _v1_initial),
    Migration(2, "analytics rollup and retention index", _v2_analytics_rollup),
)


def migrate(engine: Engine) -> list[int]:
    """Apply the missing migrations under a database-wide lock; the versions this call applied."""
    with engine.connect() as conn:
        transaction_lock(conn, PG_ADVISORY_LOCK_KEY)
        _bookkeeping.create_all(conn, checkfirst=True)
        applied = set(conn.scalars(select(schema_migrations.c.version)))
        done: list[int] = []
        for migration in MIGRATIONS:
            if migration.version in applied:
                continue
            migration.apply(conn)
            conn.execute(
                insert(schema_migrations).values(
                    version=migration.version, name=migration.name, applied_at=datetime.now(UTC)
                )
            )
            done.append(migration.version)
        newer = sorted(v for v in applied if v > MIGRATIONS[-1].version)
        conn.commit()
    if done:
        log.info("schema migrated", extra={"versions": done})
    if newer:
        # A rolling deploy: a newer replica already migrated. Older code keeps working as long
        # as migrations only add; say so in the log.
        log.warning("database schema is newer than this code", extra={"versions": newer})
    return done


def applied_versions(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.scalars(select(schema_migrations.c.version)))
