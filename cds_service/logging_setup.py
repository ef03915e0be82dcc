"""Structured logs: one JSON object per line, never tokens, JWTs or patient data.

uvicorn's access log (logger `uvicorn.access`) writes each request line with its query string:
`/analytics?token=<CDS_ADMIN_TOKEN>`, `/docs?token=...`, and the STarT Back app's
`?code=<authorization code>&state=...` and `?launch=...&iss=...&patient=<id>`. `configure_logging`
(called by `create_app`, so under uvicorn, gunicorn and `cds-service serve` alike) puts
`RedactQueryFilter` on that logger: the values of those parameters become `[redacted]`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any
from urllib.parse import unquote_plus

import orjson

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
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
