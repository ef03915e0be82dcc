"""One JSON log format: the service's lines and uvicorn's, time in UTC with milliseconds, the
request id on every line written inside a request; a real `cds-service serve` writes nothing
else from start-up to shutdown."""

from __future__ import annotations

import asyncio
import io
import logging
import logging.config
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from cds_service import request_context
from cds_service.logging_setup import JsonFormatter, uvicorn_log_config
from tests.factories import back_pain, chart_prefetch, hook_request
from tests.log_capture import parsed_lines
from tests.serve_command import cds_service_serve
from tests.servers import stop

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def record(message: str = "hello", **extra: object) -> logging.LogRecord:
    made = logging.makeLogRecord({"name": "cds_service.x", "levelname": "INFO", "msg": message})
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_time_is_utc_with_milliseconds_and_a_zone() -> None:
    line = record()
    line.created = datetime(2026, 12, 1, 21, 40, 59, 123456, tzinfo=UTC).timestamp()
    line.msecs = 123.456
    out = orjson.loads(JsonFormatter().format(line))
    assert out["time"] == "2026-12-01T21:40:59.123Z"
    assert list(out)[:5] == ["time", "level", "logger", "message", "pid"]


def test_request_id_is_on_lines_written_inside_a_request_only() -> None:
    formatter = JsonFormatter()
    assert "request_id" not in orjson.loads(formatter.format(record()))

    async def inside() -> dict[str, object]:
        request_context.begin("req-42")
        result: dict[str, object] = orjson.loads(formatter.format(record()))
        return result

    assert asyncio.run(inside())["request_id"] == "req-42"
    # The request's context ended with its task.
    assert "request_id" not in orjson.loads(formatter.format(record()))


def test_uvicorns_colour_copy_of_the_message_is_left_out() -> None:
    out = orjson.loads(JsonFormatter().format(record(color_message="\x1b[1mhello\x1b[0m", n=3)))
    assert "color_message" not in out
    assert out["n"] == 3


@pytest.fixture
def uvicorn_loggers_restored() -> Iterator[None]:
    """dictConfig changes process-wide loggers: put uvicorn's back as they were."""
    saved = []
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        saved.append(
            (logger, list(logger.handlers), list(logger.filters), logger.level, logger.propagate)
        )
    yield
    for logger, handlers, filters, level, propagate in saved:
        logger.handlers, logger.filters = handlers, filters
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.mark.usefixtures("uvicorn_loggers_restored")
def test_uvicorn_log_config_writes_json_and_redacts_the_access_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    logging.config.dictConfig(uvicorn_log_config("info"))
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 7)
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/metrics?token=abc", "1.1", 200
    )
    logging.getLogger("uvicorn.error").debug("below the level")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("uvicorn.error", "INFO"),
        ("uvicorn.access", "INFO"),
    ]
    assert lines[0]["message"] == "Started server process [7]"
    assert lines[1]["message"] == '127.0.0.1:5000 - "GET /metrics?token=[redacted] HTTP/1.1" 200'
    assert "abc" not in stream.getvalue()


def test_cds_service_serve_writes_only_json_lines_from_start_up_to_shutdown(
    tmp_path: Path,
) -> None:
    body = hook_request("patient-view", prefetch=chart_prefetch([back_pain(10)]))
    with cds_service_serve(tmp_path, "--log-level", "info") as served:
        with httpx.Client(base_url=served.base_url) as client:
            ok = client.post(
                "/cds-services/lbp-patient-view", json=body, headers={"X-Request-ID": "caller-1"}
            )
            missing = client.get("/no/such/page")
            unsafe = client.post(
                "/cds-services/lbp-patient-view",
                json={**hook_request("patient-view"), "fhirServer": "http://127.0.0.1:0/fhir"},
            )
        assert (ok.status_code, missing.status_code, unsafe.status_code) == (200, 404, 412)
        stop(served.process)
    lines = parsed_lines(served.log_path)
    messages = [line["message"] for line in lines]
    assert any(m.startswith("Started server process") for m in messages)
    assert "Application startup complete." in messages
    assert messages[-1].startswith("Finished server process")
    for line in lines:
        assert line["time"].endswith("Z") and len(line["time"]) == len("2026-12-01T21:40:59.123Z")
    [hook_call] = [line for line in lines if line["message"] == "hook call"]
    assert hook_call["request_id"] == "caller-1"
    errors = [line for line in lines if line["message"] == "error answer"]
    assert [(e["status"], e["reason"], e["request_id"]) for e in errors] == [
        (404, "not-found", missing.headers["x-request-id"]),
        (412, "fhir-url-unsafe", unsafe.headers["x-request-id"]),
    ]
