"""Structured logs: one JSON object per line, never tokens, JWTs or patient data.

Every line: `time` (UTC, milliseconds, `Z`), `level`, `logger`, `message`, `pid`, `request_id`
when it is written while a request is answered (request_context), then the record's extra fields.
`uvicorn_log_config` makes uvicorn's own loggers write the same lines (`cds-service serve`
passes it to uvicorn), so the process's stderr is JSON from start-up to shutdown.

uvicorn's access log (logger `uvicorn.access`) writes each request line with its query string:
`/analytics?token=<CDS_ADMIN_TOKEN>`, `/docs?token=...`, and the STarT Back app's
`?code=<authorization code>&state=...` and `?launch=...&iss=...&patient=<id>`. `configure_logging`
(called by `create_app`, so under uvicorn, gunicorn and `cds-service serve` alike) puts
`RedactQueryFilter` on that logger: the values of those parameters become `[redacted]`.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any
from urllib.parse import unquote_plus

import orjson

from cds_service.request_context import current_request_id

# uvicorn's `color_message` is its message again with terminal colour codes.
_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "color_message"}


def utc_time(record: logging.LogRecord) -> str:
    """`2026-12-01T21:40:59.123Z`: the record's time in UTC, to the millisecond."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            # Which worker wrote the line under `--workers N`.
            "pid": record.process,
        }
        request_id = current_request_id()
        if request_id is not None:
            payload["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


ACCESS_LOGGER = "uvicorn.access"
# Query parameters whose values never reach a log: credentials, one-time codes, launch handles,
# and the patient id of the STarT Back app's development mode.
SENSITIVE_QUERY_PARAMETERS = frozenset(
    {
        "token",
        "access_token",
        "id_token",
        "refresh_token",
        "code",
        "state",
        "launch",
        "patient",
        "client_secret",
        "client_assertion",
        "assertion",
        "password",
        "jwt",
        "key",
        "api_key",
        "apikey",
        "secret",
        "session_state",
    }
)
REDACTED = "[redacted]"


def redact_query(target: str) -> str:
    """`target` (a path with a query string, or any text holding one) with the values of the
    sensitive parameters replaced; names are compared decoded and case-insensitively, so
    `%74oken=` and `TOKEN=` count as `token=`."""
    path, question, query = target.partition("?")
    if not question:
        return target
    query, hash_, fragment = query.partition("#")
    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and value and unquote_plus(name).strip().lower() in SENSITIVE_QUERY_PARAMETERS:
            pairs.append(f"{name}={REDACTED}")
        else:
            pairs.append(pair)
    return f"{path}?{'&'.join(pairs)}{hash_}{fragment}"


class RedactQueryFilter(logging.Filter):
    """Rewrites every string argument of a log record that holds a query string (uvicorn's
    access log passes the request target as one argument); the record is always kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in args)
        elif isinstance(args, dict):
            record.args = {k: redact_query(v) if isinstance(v, str) else v for k, v in args.items()}
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = redact_query(record.msg)
        return True


def install_access_log_redaction() -> None:
    """Put the redaction filter on uvicorn's access logger (once)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactQueryFilter) for f in logger.filters):
        logger.addFilter(RedactQueryFilter())


def configure_logging(level: str = "INFO") -> None:
    install_access_log_redaction()
    logger = logging.getLogger("cds_service")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        logger.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn (its `log_config`): the `uvicorn`,
    `uvicorn.error` and `uvicorn.access` loggers write JsonFormatter lines to stderr, and the
    access logger keeps RedactQueryFilter. uvicorn applies it in each worker process too."""
    name = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "cds_service.logging_setup.JsonFormatter"}},
        "filters": {"redact_query": {"()": "cds_service.logging_setup.RedactQueryFilter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": name, "propagate": False},
            "uvicorn.error": {"level": name},
            "uvicorn.access": {
                "handlers": ["stderr"],
                "level": name,
                "propagate": False,
                "filters": ["redact_query"],
            },
        },
    }
