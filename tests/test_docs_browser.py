"""/docs in headless Chromium: Swagger UI renders the service's operations from local files, and
no request leaves 127.0.0.1 (the page used to load Swagger UI from a CDN: blank offline)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.jwt_helpers import UNREAD_ISSUERS
from tests.servers import running_service

pytestmark = pytest.mark.browser

pytest.importorskip("playwright.sync_api")

ADMIN_TOKEN = "docs-browser-test"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Auth on and CDS_ADMIN_TOKEN set: /docs as it runs in production."""
    workdir: Path = tmp_path_factory.mktemp("docs")
    env = {
        "CDS_REQUIRE_AUTH": "true",
        "CDS_TRUSTED_ISSUERS": json.dumps(UNREAD_ISSUERS),
        "CDS_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    with running_service(workdir, env) as running:
        yield running.base_url


def test_docs_render_offline_with_every_request_to_the_service(service: str, browser: Any) -> None:
    context = browser.new_context()
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    # Anything not aimed at the service fails at once, as it would offline.
    host = urlsplit(service).netloc
    context.route(
        "**/*",
        lambda route: (
            route.continue_() if urlsplit(route.request.url).netloc == host else route.abort()
        ),
    )
    page = context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

    response = page.goto(f"{service}/docs?token={ADMIN_TOKEN}")
    assert response is not None and response.status == 200
    page.locator(".opblock").first.wait_for()
    summaries = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/cds-services/{service_id}" in [s.replace("\u200b", "") for s in summaries]
    assert page.get_by_text("Low back pain CDS Hooks service").first.is_visible()
    assert page.locator(".opblock").count() >= 6
    # The hook call documents its real answers: open it and read the response codes.
    hook_call = page.locator(".opblock-post").filter(has_text="Call a CDS service").first
    hook_call.locator(".opblock-summary").click()
    for code in ("200", "400", "401", "404", "412", "413", "503"):
        hook_call.locator(f'tr.response[data-code="{code}"]').wait_for()
    assert hook_call.locator('tr.response[data-code="422"]').count() == 0

    assert requests, "the page made no request at all"
    elsewhere = [url for url in requests if urlsplit(url).hostname != "127.0.0.1"]
    assert elsewhere == []
    assert not [e for e in console_errors if "Content Security Policy" in e]
    context.close()
