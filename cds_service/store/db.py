"""Feedback, card log and JWT replay cache on SQLite (default) or PostgreSQL (replicas).

SQLAlchemy Core, so one code path serves both databases. No PHI is stored: the card log keeps
card uuid, service, topic, indicator, hookInstance and time; feedback keeps what the EHR sent
about a card (outcome, suggestion ids, override reason, comment).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    delete,
    event,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from cds_service.store import migrations

# The query-side view of the tables; their DDL lives in migrations.py (a test keeps them equal).
metadata = MetaData()

feedback = Table(
    "feedback",
    metadata,
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

card_log = Table(
    "card_log",
    metadata,
    Column("card_uuid", String(64), primary_key=True),
    Column("service_id", String(100), nullable=False),
    Column("topic", String(100), nullable=False, index=True),
    Column("indicator", String(20), nullable=False),
    Column("hook_instance", Text, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False, index=True),
)

jwt_replay = Table(
    "jwt_replay",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)


@dataclass(frozen=True)
class CardLogEntry:
    card_uuid: str
    service_id: str
    topic: str
    indicator: str
    hook_instance: str
    issued_at: datetime


def sqlalchemy_url(url: str) -> str:
    """`postgresql://` -> the psycopg 3 driver; SQLite and others unchanged."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Store:
    def __init__(self, database_url: str) -> None:
        url = sqlalchemy_url(database_url)
        kwargs: dict[str, Any] = {"future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def migrate(self) -> list[int]:
        """Apply missing schema migrations (idempotent; safe when several replicas start)."""
        return migrations.migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def _insert_ignore(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> int:
        if not rows:
            return 0
        dialect = self.engine.dialect.name
        # The rows added are counted from RETURNING: rowcount is -1 for this statement under
        # psycopg 3, which made every jti look like a replay on PostgreSQL.
        key = next(iter(table.primary_key.columns))
        if dialect == "postgresql":
            pg = postgresql.insert(table).values(list(rows)).on_conflict_do_nothing()
            return len(conn.execute(pg.returning(key)).all())
        if dialect == "sqlite":
            lite = sqlite.insert(table).values(list(rows)).on_conflict_do_nothing()
            return len(conn.execute(lite.returning(key)).all())
        raise RuntimeError(f"unsupported database dialect: {dialect}")

    # ---- feedback ---------------------------------------------------------------------------

    def save_feedback(self, service_id: str, items: Iterable[dict[str, Any]]) -> int:
        """Store feedback items; a repeat of the same item is ignored. Returns rows added."""
        now = datetime.now(UTC)
        rows = []
        for item in items:
            reason = (item.get("overrideReason") or {}).get("reason") or {}
            rows.append(
                {
                    "dedupe_key": _dedupe_key(service_id, item),
                    "service_id": service_id,
                    "card_uuid": _text(item["card"]),
                    "outcome": item["outcome"],
                    "accepted_suggestions": orjson.dumps(item["acceptedSuggestions"]).decode()
                    if item.get("acceptedSuggestions")
                    else None,
                    "override_system": _text(reason.get("system")),
                    "override_code": _text(reason.get("code")),
                    "override_display": _text(reason.get("display")),
                    "user_comment": _text((item.get("overrideReason") or {}).get("userComment")),
                    "outcome_timestamp": _text(item["outcomeTimestamp"]),
                    "received_at": now,
                }
            )
        with self.engine.begin() as conn:
            return self._insert_ignore(conn, feedback, rows)

    def feedback_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            result = conn.execute(select(feedback).order_by(feedback.c.id))
            return [dict(r._mapping) for r in result]

    # ---- card log ---------------------------------------------------------------------------

    def log_cards(self, entries: Sequence[CardLogEntry]) -> None:
        rows = [{**e.__dict__, "hook_instance": _text(e.hook_instance)} for e in entries]
        with self.engine.begin() as conn:
            self._insert_ignore(conn, card_log, rows)

    def card_log_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            result = conn.execute(select(card_log).order_by(card_log.c.issued_at))
            return [dict(r._mapping) for r in result]

    # ---- analytics (read-only; topics, times, outcomes and override codings, never comments) -

    def cards_issued_since(self, since: datetime) -> list[dict[str, Any]]:
        """card_uuid, topic, indicator and issued_at of the cards issued at or after `since`."""
        c = card_log.c
        query = (
            select(c.card_uuid, c.topic, c.indicator, c.issued_at)
            .where(c.issued_at >= since)
            .order_by(c.issued_at)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def feedback_since(self, since: datetime) -> list[dict[str, Any]]:
        """Feedback on the cards issued since `since`, and feedback received since then for cards
        the card log does not hold (`topic` None), in the order received."""
        f, c = feedback.c, card_log.c
        query = (
            select(
                f.id,
                f.card_uuid,
                f.outcome,
                f.override_system,
                f.override_code,
                f.override_display,
                c.topic,
            )
            .select_from(feedback.outerjoin(card_log, f.card_uuid == c.card_uuid))
            .where(or_(c.issued_at >= since, and_(c.card_uuid.is_(None), f.received_at >= since)))
            .order_by(f.id)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # ---- JWT replay cache -------------------------------------------------------------------

    def remember_jti(self, issuer: str, jti: str, keep_until: datetime) -> bool:
        """Record a token id; False when it was seen before (a replay)."""
        key = hashlib.sha256(f"{issuer}\x00{jti}".encode()).hexdigest()
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(delete(jwt_replay).where(jwt_replay.c.expires_at < now))
            added = self._insert_ignore(conn, jwt_replay, [{"key": key, "expires_at": keep_until}])
        return added == 1

    def prune(self, older_than: timedelta) -> None:
        cutoff = datetime.now(UTC) - older_than
        with self.engine.begin() as conn:
            conn.execute(delete(jwt_replay).where(jwt_replay.c.expires_at < cutoff))


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; JSON strings can (\\u0000). Keep the rest as sent."""
    return value.replace("\x00", "\ufffd") if value is not None else None


def _dedupe_key(service_id: str, item: dict[str, Any]) -> str:
    canonical = orjson.dumps({"service": service_id, "item": item}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
