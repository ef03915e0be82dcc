"""Feedback, card log and JWT replay cache on SQLite (default) or PostgreSQL (replicas).

SQLAlchemy Core, so one code path serves both databases. No PHI is stored: the card log keeps
card uuid, service, topic, indicator, hookInstance and time; feedback keeps what the EHR sent
about a card (outcome, suggestion ids, override reason, comment).

A database that cannot be reached (refused or dropped connection, server shutting down, pool
exhausted, SQLite file that cannot be opened or stays locked) raises one domain error,
`ServiceUnavailable` (503 with Retry-After), from every store method; any other database error
propagates as a bug. PostgreSQL connections are pinged when taken from the pool, so the store
recovers by itself when the server is back; a connection attempt gives up after
CONNECT_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import orjson
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
    create_engine,
    delete,
    event,
    make_url,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cds_service.errors import ServiceUnavailable
from cds_service.store import migrations

log = logging.getLogger("cds_service.store")

# libpq's connect_timeout: a server that does not answer (host down, packets dropped) fails the
# call after this long instead of the TCP timeout of minutes. Refused connections fail at once.
CONNECT_TIMEOUT_SECONDS = 3
# Waiting for a pooled connection longer than this means the database is not keeping up.
POOL_TIMEOUT_SECONDS = 10
# SQLite's busy timeout: how long a connection waits for another's write lock.
SQLITE_BUSY_TIMEOUT_SECONDS = 30
# /readyz: a store that does not answer SELECT 1 within this is reported not ready.
PING_TIMEOUT_SECONDS = 2.0
# Six columns a row: 3,000 bind parameters a statement.
CARD_LOG_ROWS_PER_STATEMENT = 500

P = ParamSpec("P")
R = TypeVar("R")


def _is_unavailable(exc: SQLAlchemyError) -> bool:
    """The database cannot be reached or used right now (as opposed to a bad statement)."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _store_call(method: Callable[P, R]) -> Callable[P, R]:
    """Turn "the database cannot be reached" into ServiceUnavailable; the driver's message (no
    SQL parameters, so no PHI) is logged, the answer says only that the store is unavailable."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except SQLAlchemyError as exc:
            if not _is_unavailable(exc):
                raise
            cause = exc.orig if isinstance(exc, DBAPIError) else exc
            log.warning(
                "store unavailable",
                extra={
                    "operation": method.__name__,
                    "error": type(cause).__name__,
                    "detail": str(cause).strip()[:300],
                },
            )
            raise ServiceUnavailable("The store (database) is unavailable; retry later") from exc

    return call


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
Index("ix_feedback_received_at", feedback.c.received_at)

# Analytics as weekly counts, kept by store/rollup.py from the cards and feedback queued below.
analytics_cards = Table(
    "analytics_cards",
    metadata,
    Column("week", Date, primary_key=True),
    Column("topic", String(100), primary_key=True),
    Column("issued", Integer, nullable=False),
    Column("feedback_items", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("overridden", Integer, nullable=False),
)

analytics_reasons = Table(
    "analytics_reasons",
    metadata,
    Column("week", Date, primary_key=True),
    # sha256 of (topic, system, code, display): codings can be 4096 characters, too long to key.
    Column("key_hash", String(64), primary_key=True),
    Column("topic", String(100), nullable=True),
    Column("override_system", Text, nullable=True),
    Column("override_code", Text, nullable=True),
    Column("override_display", Text, nullable=True),
    Column("overrides", Integer, nullable=False),
)

analytics_unknown = Table(
    "analytics_unknown",
    metadata,
    Column("week", Date, primary_key=True),
    Column("items", Integer, nullable=False),
    Column("cards", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("overridden", Integer, nullable=False),
)

# Written in the same transaction as the card or feedback row, consumed by store/rollup.py.
pending_cards = Table(
    "analytics_pending_cards", metadata, Column("card_uuid", String(64), primary_key=True)
)

pending_feedback = Table(
    "analytics_pending_feedback",
    metadata,
    Column("feedback_id", Integer, primary_key=True, autoincrement=False),
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
            kwargs["connect_args"] = {
                "check_same_thread": False,
                "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
            }
        else:
            # A connection that died with the server (restart, failover) is replaced when next
            # taken from the pool, so the store recovers without a restart of the service.
            kwargs["pool_pre_ping"] = True
            kwargs["pool_timeout"] = POOL_TIMEOUT_SECONDS
            if url.startswith("postgresql") and "connect_timeout" not in make_url(url).query:
                kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        # /readyz pings run here, one at a time: a database that hangs ties up this one thread,
        # not the request thread pool, and probes arriving meanwhile wait for the same ping.
        self._ping_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-ping")
        self._ping: Future[bool] | None = None

    def migrate(self) -> list[int]:
        """Apply missing schema migrations (idempotent; safe when several replicas start)."""
        return migrations.migrate(self.engine)

    def close(self) -> None:
        self._ping_thread.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()

    @_store_call
    def ping(self) -> None:
        """SELECT 1; ServiceUnavailable when the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def _answers(self) -> bool:
        try:
            self.ping()
        except ServiceUnavailable:
            return False
        except Exception:
            log.exception("store ping failed")
            return False
        return True

    async def answers(self, timeout: float = PING_TIMEOUT_SECONDS) -> bool:
        """Whether the store answers a ping within `timeout` seconds, without blocking the event
        loop (the ping runs in the store's ping thread)."""
        ping = self._ping
        if ping is None or ping.done():
            ping = self._ping = self._ping_thread.submit(self._answers)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(ping), timeout)
        except TimeoutError:
            log.warning("store ping timed out", extra={"timeout_seconds": timeout})
            return False

    def _insert_ignore(
        self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]
    ) -> list[Any]:
        """Insert the rows, skipping those already there; the primary keys of the rows added."""
        if not rows:
            return []
        # The rows added come from RETURNING: rowcount is -1 for this statement under
        # psycopg 3, which made every jti look like a replay on PostgreSQL.
        key = next(iter(table.primary_key.columns))
        insert = dialect_insert(self.engine.dialect.name)
        statement = insert(table).values(list(rows)).on_conflict_do_nothing()
        return list(conn.scalars(statement.returning(key)))

    # ---- feedback ---------------------------------------------------------------------------

    @_store_call
    def save_feedback(
        self,
        service_id: str,
        items: Iterable[dict[str, Any]],
        *,
        received_at: datetime | None = None,
    ) -> int:
        """Store feedback items; a repeat of the same item is ignored. Returns rows added."""
        now = _utc(received_at) if received_at is not None else datetime.now(UTC)
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
            added = self._insert_ignore(conn, feedback, rows)
            if added:
                conn.execute(pending_feedback.insert(), [{"feedback_id": i} for i in added])
            return len(added)

    @_store_call
    def feedback_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            result = conn.execute(select(feedback).order_by(feedback.c.id))
            return [dict(r._mapping) for r in result]

    # ---- card log ---------------------------------------------------------------------------

    @_store_call
    def log_cards(self, entries: Sequence[CardLogEntry]) -> None:
        """Insert the entries (one transaction; a card already logged is skipped)."""
        rows = [
            {**e.__dict__, "hook_instance": _text(e.hook_instance), "issued_at": _utc(e.issued_at)}
            for e in entries
        ]
        with self.engine.begin() as conn:
            # A backlog kept through an outage can hold many thousands of entries: one statement
            # per chunk stays under the bind-parameter limits (SQLite 32,766, PostgreSQL 65,535).
            for start in range(0, len(rows), CARD_LOG_ROWS_PER_STATEMENT):
                chunk = rows[start : start + CARD_LOG_ROWS_PER_STATEMENT]
                added = self._insert_ignore(conn, card_log, chunk)
                if added:
                    conn.execute(pending_cards.insert(), [{"card_uuid": u} for u in added])

    @_store_call
    def card_log_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            result = conn.execute(select(card_log).order_by(card_log.c.issued_at))
            return [dict(r._mapping) for r in result]

    # ---- JWT replay cache -------------------------------------------------------------------

    @_store_call
    def remember_jti(self, issuer: str, jti: str, keep_until: datetime) -> bool:
        """Record a token id; False when it was seen before (a replay)."""
        key = hashlib.sha256(f"{issuer}\x00{jti}".encode()).hexdigest()
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(delete(jwt_replay).where(jwt_replay.c.expires_at < now))
            added = self._insert_ignore(conn, jwt_replay, [{"key": key, "expires_at": keep_until}])
        return len(added) == 1

    @_store_call
    def prune(self, older_than: timedelta) -> None:
        cutoff = datetime.now(UTC) - older_than
        with self.engine.begin() as conn:
            conn.execute(delete(jwt_replay).where(jwt_replay.c.expires_at < cutoff))


def _utc(moment: datetime) -> datetime:
    """An aware time in UTC (SQLite stores the wall-clock digits it is given); naive is UTC."""
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; JSON strings can (\\u0000). Keep the rest as sent."""
    return value.replace("\x00", "\ufffd") if value is not None else None


def _dedupe_key(service_id: str, item: dict[str, Any]) -> str:
    canonical = orjson.dumps({"service": service_id, "item": item}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def dialect_insert(dialect: str) -> Callable[[Table], postgresql.Insert | sqlite.Insert]:
    """The database's INSERT construct, which has ON CONFLICT: PostgreSQL's or SQLite's."""
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise RuntimeError(f"unsupported database dialect: {dialect}")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    _use_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch the database file to WAL (persistent, so a no-op once done).

    SQLite answers the switch with SQLITE_BUSY at once, without its busy timeout, while another
    connection holds a write transaction: on a fresh file that is another worker migrating under
    BEGIN IMMEDIATE. So retry until the busy timeout, as SQLite would for any other statement.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_SECONDS
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
