"""Start-up checks of the settings. Every failure is a `SettingsError` that names the `CDS_*`
variable to fix and why, never its value when that may be a secret (the admin token, the
password in a database URL), so `cds-service` can print it as one line and exit 2.

`load_settings` turns pydantic's errors into one; `check_settings` refuses the combinations that
must not reach production; `parse_database_url` accepts SQLite and PostgreSQL URLs only. They run
once in `cds-service serve`'s parent process, before any worker starts, and `create_app` runs
`check_settings` again for the servers that build the app themselves (gunicorn, uvicorn --factory).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError as SourceError
from sqlalchemy import URL, make_url
from sqlalchemy.exc import ArgumentError

from cds_service.config import Settings, is_loopback_url
from cds_service.security import check_trusted_issuers
from cds_service.store.db import sqlalchemy_url

log = logging.getLogger("cds_service")

ENV_PREFIX = "CDS_"
# Never echoed in a message, whatever pydantic saw.
SECRET_FIELDS = frozenset({"database_url", "admin_token"})
# An input longer than this is not repeated in the message (JSON blobs, lists).
ECHO_MAX_CHARS = 80
# backend -> the drivers this service ships (psycopg 3; the standard library's sqlite3).
DATABASE_DRIVERS = {"sqlite": ("pysqlite",), "postgresql": ("psycopg",)}
DATABASE_URL_FORMS = "sqlite:///<path> or postgresql://<user>:<password>@<host>:<port>/<database>"


class SettingsError(ValueError):
    """A setting that is missing, malformed or unsafe: `variable` names it, `reason` says why."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable
        self.reason = reason


def env_variable(loc: tuple[int | str, ...]) -> str:
    """The environment variable behind a pydantic error location: ("rules", "min_age_years") is
    CDS_RULES__MIN_AGE_YEARS (a nested model, env_nested_delimiter "__"); ("trusted_issuers",
    "iss", "jwks") is CDS_TRUSTED_ISSUERS (a dict read from one JSON variable)."""
    names: list[str] = []
    model: type[BaseModel] | None = Settings
    for part in loc:
        if model is None or not isinstance(part, str):
            break
        names.append(part)
        field = model.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return ENV_PREFIX + ("__".join(names).upper() if names else "*")


def _reason(error: dict[str, Any], field: str) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown setting"
    value = error.get("input")
    if (
        field not in SECRET_FIELDS
        and error["type"] != "extra_forbidden"
        and isinstance(value, str | int | float)
        and len(str(value)) <= ECHO_MAX_CHARS
    ):
        message = f"{message} (got {value!r})"
    return message


def from_validation_error(exc: ValidationError) -> SettingsError:
    """The first error, named by its variable; the count when there are more."""
    errors = exc.errors()
    first = errors[0]
    loc = tuple(first["loc"])
    field = str(loc[0]) if loc else ""
    reason = _reason(dict(first), field)
    if len(errors) > 1:
        reason += f" ({len(errors) - 1} more invalid setting(s) after this one)"
    return SettingsError(env_variable(loc), reason)


def load_settings() -> Settings:
    """Settings from the environment, or a SettingsError naming the variable at fault."""
    try:
        return Settings()
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    except SourceError as exc:
        # pydantic-settings cannot decode a complex variable (JSON expected) before validation.
        match = re.search(r'field "(\w+)"', str(exc))
        variable = ENV_PREFIX + match.group(1).upper() if match else ENV_PREFIX + "*"
        raise SettingsError(variable, "not valid JSON") from None


def parse_database_url(raw: str) -> URL:
    """The SQLAlchemy URL of CDS_DATABASE_URL when it is a SQLite or PostgreSQL URL this service
    has a driver for; never repeats the URL (it may hold a password)."""
    try:
        url = make_url(sqlalchemy_url(raw))
    except ArgumentError:
        raise SettingsError(
            "CDS_DATABASE_URL", f"not a database URL; expected {DATABASE_URL_FORMS}"
        ) from None
    except ValueError:
        raise SettingsError("CDS_DATABASE_URL", "the port is not a number") from None
    backend = url.drivername.partition("+")[0]
    drivers = DATABASE_DRIVERS.get(backend)
    if drivers is None:
        raise SettingsError(
            "CDS_DATABASE_URL",
            f"unsupported database {backend!r}: sqlite or postgresql only ({DATABASE_URL_FORMS})",
        )
    driver = url.drivername.partition("+")[2] or drivers[0]
    if driver not in drivers:
        raise SettingsError(
            "CDS_DATABASE_URL",
            f"unsupported driver {driver!r} for {backend}; use {backend}:// ({DATABASE_URL_FORMS})",
        )
    return url


def masked_database_url(raw: str) -> str:
    """CDS_DATABASE_URL with its password replaced by ***, for logs."""
    try:
        return make_url(raw).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(malformed)"


def check_settings(settings: Settings) -> None:
    """Refuse what must not run: auth without an issuer to trust, auth off on a non-loopback base
    URL, a bad JWKS location, an unknown log level, a database URL of the wrong kind."""
    try:
        check_trusted_issuers(settings)
    except ValueError as exc:
        raise SettingsError("CDS_TRUSTED_ISSUERS", str(exc)) from None
    if settings.require_auth and not settings.trusted_issuers:
        raise SettingsError(
            "CDS_TRUSTED_ISSUERS",
            "empty while CDS_REQUIRE_AUTH=true (the default): every call would be refused (401);"
            ' set it to {"<issuer>": "<https JWKS URL>"}, or CDS_REQUIRE_AUTH=false for local'
            " development on a loopback address",
        )
    if not settings.require_auth and not is_loopback_url(settings.public_base_url):
        raise SettingsError(
            "CDS_REQUIRE_AUTH",
            "false is only allowed when CDS_PUBLIC_BASE_URL is a loopback URL "
            f"(its host is {urlsplit(settings.public_base_url).hostname})",
        )
    if settings.log_level not in logging.getLevelNamesMapping():
        raise SettingsError(
            "CDS_LOG_LEVEL",
            f"unknown level {settings.log_level!r}; one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        )
    parse_database_url(settings.database_url)


def log_settings_warnings(settings: Settings) -> None:
    """Settings that are allowed but worth a line in the log."""
    if not settings.require_auth:
        log.warning(
            "CDS_REQUIRE_AUTH=false: EHR JWTs are NOT verified; for local development only",
            extra={"public_base_url": settings.public_base_url},
        )
