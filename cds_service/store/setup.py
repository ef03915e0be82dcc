"""Make the database ready before the service starts: create the data directory when the SQLite
file lives there, connect, and apply the migrations (Store.migrate, under its database-wide lock).

`cds-service serve` runs this once in its parent process, so workers start on a ready schema and a
database that cannot be reached stops the start-up with one line instead of crashing every worker;
`cds-service migrate` runs it alone (a Kubernetes Job or init step).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from cds_service.config import Settings
from cds_service.settings_check import SettingsError, parse_database_url
from cds_service.store.db import Store

DATA_DIR_MODE = 0o700


class DatabaseUnavailable(SettingsError):
    """CDS_DATABASE_URL is well formed but the database cannot be reached or used."""


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL (absolute), None for in-memory databases and other backends."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if str(url.database).startswith("file:"):
        return None
    return Path(str(url.database)).expanduser().absolute()


def create_data_dir(settings: Settings, url: URL) -> None:
    """Create CDS_DATA_DIR (mode 0700: the card log and feedback are the service's alone) when the
    database file is in it; a database elsewhere leaves it alone (a read-only root file system
    with PostgreSQL needs no data directory)."""
    path = sqlite_file(url)
    if path is None or not path.is_relative_to(settings.data_dir):
        return
    try:
        settings.data_dir.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(
            "CDS_DATA_DIR", f"cannot create {settings.data_dir}: {exc.strerror or exc}"
        ) from None


def ensure_data_dir(settings: Settings) -> None:
    """create_data_dir for CDS_DATABASE_URL (the app's lifespan: gunicorn, `fire`, tests)."""
    create_data_dir(settings, parse_database_url(settings.database_url))


def _driver_message(exc: SQLAlchemyError, password: str | None) -> str:
    """The driver's first line (psycopg and sqlite3 name the host and the failure, not the
    password; it is masked anyway should a driver ever repeat it)."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    detail = lines[0].strip() if lines else type(cause).__name__
    if password:
        detail = detail.replace(password, "***")
    return detail


def prepare_database(settings: Settings) -> list[int]:
    """Check CDS_DATABASE_URL, create the data directory, apply the missing migrations; the
    versions applied. SettingsError for a bad URL or data directory, DatabaseUnavailable when
    the database cannot be reached or migrated."""
    url = parse_database_url(settings.database_url)
    create_data_dir(settings, url)
    try:
        store = Store(settings.database_url)
    except (SQLAlchemyError, ImportError) as exc:
        # The URL parsed but its query options or driver do not load.
        reason = type(exc).__name__
        raise SettingsError("CDS_DATABASE_URL", f"cannot be used ({reason})") from None
    try:
        return store.migrate()
    except SQLAlchemyError as exc:
        detail = _driver_message(exc, url.password if isinstance(url.password, str) else None)
        raise DatabaseUnavailable(
            "CDS_DATABASE_URL", f"cannot connect or migrate: {detail}"
        ) from None
    finally:
        store.close()
