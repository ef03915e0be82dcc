"""The service's log lines as the JSON formatter writes them, parsed back, for assertions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from cds_service.logging_setup import JsonFormatter


class JsonLines(logging.Handler):
    """Formats each record with JsonFormatter when it is emitted (inside the request, so
    `request_id` is there) and keeps the parsed line."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(self.format(record)))

    def errors(self) -> list[dict[str, Any]]:
        """The error-answer lines (one per 4xx/5xx answer)."""
        return [line for line in self.lines if line["logger"] == "cds_service.answers"]


@contextmanager
def json_lines(logger: str = "cds_service") -> Iterator[JsonLines]:
    handler = JsonLines()
    target = logging.getLogger(logger)
    target.addHandler(handler)
    try:
        yield handler
    finally:
        target.removeHandler(handler)


def parsed_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a process's output file, each parsed as one JSON object with `time`,
    `level` and `message` (a line that is not fails the test)."""
    out = []
    for raw in path.read_bytes().splitlines():
        line = orjson.loads(raw)
        assert isinstance(line, dict), raw
        assert {"time", "level", "message"} <= line.keys(), raw
        out.append(line)
    return out
