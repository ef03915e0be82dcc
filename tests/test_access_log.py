"""uvicorn's access log never holds a query-string secret: the service runs under a real uvicorn
(access log on, as `uvicorn cds_service.main:app` runs it) and its log file is read."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cds_service.logging_setup import RedactQueryFilter, redact_query
from tests.jwt_helpers import UNREAD_ISSUERS
from tests.servers import running_service

ADMIN_TOKEN = "admin-Secret-7f3a9c"


@pytest.fixture
def uvicorn_with_access_log(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The service at uvicorn's default log level with the access log on (as `uvicorn
    cds_service.main:app` runs it), so every request is logged; the service's own log at INFO."""
    env = {
        "CDS_REQUIRE_AUTH": "true",
        "CDS_TRUSTED_ISSUERS": json.dumps(UNREAD_ISSUERS),
        "CDS_ADMIN_TOKEN": ADMIN_TOKEN,
        "CDS_FHIR_ALLOWLIST": "http://127.0.0.1",
        "CDS_LOG_LEVEL": "INFO",
    }
    with running_service(tmp_path, env, log_level=None, access_log=True) as service:
        yield service.base_url, service.log_path


def test_query_string_secrets_never_reach_the_access_log(
    uvicorn_with_access_log: tuple[str, Path],
) -> None:
    base_url, log_path = uvicorn_with_access_log
    requests = {
        # the review's finding: the admin token as ?token= for /analytics
        f"/analytics?token={ADMIN_TOKEN}": 200,
        f"/analytics.csv?weeks=4&token={ADMIN_TOKEN}": 200,
        f"/docs?token={ADMIN_TOKEN}": 200,
        f"/openapi.json?token={ADMIN_TOKEN}": 200,
        # the name percent-encoded (Starlette decodes it, so it is the token too)
        f"/analytics?%74oken={ADMIN_TOKEN}": 200,
        "/analytics?TOKEN=wrong-Secret-1": 401,
        # the SMART callback's one-time code, and a launch
        "/apps/startback?code=authcode-Secret-2&state=state-Secret-3": 200,
        "/apps/startback?launch=launch-Secret-4&iss=http://127.0.0.1:9/fhir": 200,
        "/apps/startback?iss=http://127.0.0.1:9/fhir&patient=patient-Secret-5": 400,
        "/analytics?access_token=at-Secret-6&id_token=it-Secret-7": 401,
    }
    with httpx.Client(base_url=base_url) as client:
        for target, status in requests.items():
            assert client.get(target).status_code == status, target
    with httpx.Client(base_url=base_url) as client:  # one more line, so the log is flushed
        client.get("/healthz")

    log = log_path.read_text(errors="replace")
    for target in requests:
        path = target.partition("?")[0]
        assert f"GET {path}?" in log, f"no access line for {path}:\n{log}"
    assert "Secret" not in log, log
    assert "GET /analytics?token=[redacted] HTTP/1.1" in log
    assert "GET /analytics.csv?weeks=4&token=[redacted] HTTP/1.1" in log
    assert "GET /analytics?%74oken=[redacted] HTTP/1.1" in log
    assert "iss=http://127.0.0.1:9/fhir&patient=[redacted]" in log


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/analytics?token=abc", "/analytics?token=[redacted]"),
        ("/analytics?weeks=4&token=abc&x=1", "/analytics?weeks=4&token=[redacted]&x=1"),
        ("/a?code=xyz&state=s", "/a?code=[redacted]&state=[redacted]"),
        ("/a?Access_Token=xyz", "/a?Access_Token=[redacted]"),
        ("/a?to%6Ben=xyz", "/a?to%6Ben=[redacted]"),
        ("/a?token=", "/a?token="),
        ("/a?tokens=1&weeks=2", "/a?tokens=1&weeks=2"),
        ("/cds-services", "/cds-services"),
    ],
)
def test_redact_query(target: str, logged: str) -> None:
    assert redact_query(target) == logged


def test_filter_rewrites_uvicorn_access_record_arguments() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/analytics?token=abc", "1.1", 200),
        None,
    )
    assert RedactQueryFilter().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /analytics?token=[redacted] HTTP/1.1" 200'
