"""The database-wide lock a store transaction takes before it changes shared state (the schema,
the analytics counts): on PostgreSQL a transaction-scoped advisory lock, named by its key; on
SQLite `BEGIN IMMEDIATE`, since SQLite has one writer at a time. Either is released when the
transaction ends.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection


def transaction_lock(conn: Connection, key: int, *, wait: bool = True) -> bool:
    """Take the lock `key` for the transaction `conn` is starting; False when `wait` is off and
    another connection holds it."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        if wait:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            return True
        return bool(conn.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}))
    if dialect == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        return True
    raise RuntimeError(f"unsupported database dialect: {dialect}")
