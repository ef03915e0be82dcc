"""`cds-service migrate`: apply the schema migrations to CDS_DATABASE_URL and exit, for a
Kubernetes Job or init step that runs once before the replicas start (they find nothing to do).

It needs only the database settings: the auth checks of `serve` (trusted issuers, loopback rule)
are not made, so a migration Job carries no JWKS configuration.

Exit codes: 0 migrated (or already up to date); 2 a setting is missing or malformed; 1 the
database cannot be reached or migrated.
"""

from __future__ import annotations

from typing import TextIO

from cds_service.logging_setup import configure_logging
from cds_service.settings_check import SettingsError, load_settings, masked_database_url
from cds_service.store.migrations import MIGRATIONS
from cds_service.store.setup import DatabaseUnavailable, prepare_database

EXIT_OK = 0
EXIT_UNAVAILABLE = 1
EXIT_SETTINGS = 2


def run(stdout: TextIO, stderr: TextIO) -> int:
    try:
        settings = load_settings()
        configure_logging("WARNING")  # the migrations' own info line would repeat this output
        applied = prepare_database(settings)
    except DatabaseUnavailable as exc:
        print(f"cds-service: {exc}", file=stderr)
        return EXIT_UNAVAILABLE
    except SettingsError as exc:
        print(f"cds-service: {exc}", file=stderr)
        return EXIT_SETTINGS
    database = masked_database_url(settings.database_url)
    latest = MIGRATIONS[-1].version
    if applied:
        versions = ", ".join(str(v) for v in applied)
        print(
            f"applied migrations {versions} to {database}; schema at version {latest}", file=stdout
        )
    else:
        print(f"nothing to apply to {database}: schema up to date (version {latest})", file=stdout)
    return EXIT_OK
