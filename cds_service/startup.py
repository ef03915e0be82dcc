"""What `cds-service serve` does before uvicorn starts, in the parent process: read and check the
settings, default CDS_PUBLIC_BASE_URL to the address served, make the database ready, and say in
one log line what is being served. Any failure is a SettingsError (one line, exit 2), raised
before a worker exists, so `--workers N` cannot turn it into workers restarting forever.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from cds_service import __version__
from cds_service.config import Settings, get_settings
from cds_service.logging_setup import configure_logging
from cds_service.settings_check import check_settings, load_settings, masked_database_url
from cds_service.store.setup import prepare_database

log = logging.getLogger("cds_service")

# Hosts that listen on every interface: the address EHRs use is not known from them.
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
LOOPBACK_FOR_WILDCARD = "127.0.0.1"
PUBLIC_BASE_URL_HINT = (
    "serving every interface: CDS_PUBLIC_BASE_URL defaults to a loopback URL; "
    "EHRs need CDS_PUBLIC_BASE_URL set to the URL they call"
)


@dataclass(frozen=True)
class Served:
    """The address `serve` listens on (--host, --port, --workers)."""

    host: str
    port: int
    workers: int

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def wildcard(self) -> bool:
        return self.host in WILDCARD_HOSTS

    def base_url(self) -> str:
        """The URL the service can be called at from this machine."""
        host = LOOPBACK_FOR_WILDCARD if self.wildcard else self.host
        return f"http://{_url_host(host)}:{self.port}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class Ready:
    settings: Settings
    migrations_applied: list[int]
    # Set when CDS_PUBLIC_BASE_URL was filled in from a wildcard --host.
    hint: str | None


def prepare_to_serve(served: Served) -> Ready:
    """Settings read and checked, public base URL settled, database migrated; SettingsError (or
    its DatabaseUnavailable) otherwise. Workers read their settings from the environment, so a
    defaulted CDS_PUBLIC_BASE_URL is put there before uvicorn starts them."""
    settings = load_settings()
    hint = None
    if "public_base_url" not in settings.model_fields_set:
        os.environ["CDS_PUBLIC_BASE_URL"] = served.base_url()
        get_settings.cache_clear()
        settings = load_settings()
        hint = PUBLIC_BASE_URL_HINT if served.wildcard else None
    check_settings(settings)
    configure_logging(settings.log_level)
    applied = prepare_database(settings)
    return Ready(settings, applied, hint)


def log_start(ready: Ready, served: Served) -> None:
    """The one start-up line: what runs where, on which database, with or without auth."""
    settings = ready.settings
    extra: dict[str, object] = {
        "version": __version__,
        "listen": served.url,
        "public_base_url": settings.public_base_url,
        "database": masked_database_url(settings.database_url),
        "data_dir": str(settings.data_dir),
        "workers": served.workers,
        "auth": "on" if settings.require_auth else "off",
        "migrations_applied": ready.migrations_applied,
    }
    if ready.hint:
        extra["note"] = ready.hint
    log.info("cds-service starting", extra=extra)
