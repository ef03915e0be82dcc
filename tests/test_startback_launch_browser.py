"""The STarT Back app refuses, in headless Chromium, a launch from a FHIR server the service does
not trust, and development mode while auth is on; the "attacker" server (a real HTTP server on
127.0.0.3) sees no request at all.

Review finding: `/apps/startback?launch=xyz&iss=http://127.0.0.3:<port>/fhir` made the page fetch
that server's smart-configuration and send it the real client_id and redirect_uri, and
`?iss=&patient=` showed that server's patient on the service's origin with auth on.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from tests.jwt_helpers import UNREAD_ISSUERS
from tests.servers import running_service

pytestmark = pytest.mark.browser

pytest.importorskip("playwright.sync_api")


class Attacker:
    """A FHIR server nobody configured: answers everything, remembers every request."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        seen = self.seen
        attacker_origin = ""

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                body = json.dumps(
                    {
                        "authorization_endpoint": f"{self.server_url()}/authorize",
                        "token_endpoint": f"{self.server_url()}/token",
                        "resourceType": "Patient",
                        "id": "victim",
                        "name": [{"text": "Attacker Chosen"}],
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_OPTIONS(self) -> None:
                seen.append(self.path)
                self.send_response(204)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Access-Control-Allow-Headers", "*")
                self.end_headers()

            def server_url(self) -> str:
                return attacker_origin

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.3", 0), Handler)
        attacker_origin = f"http://127.0.0.3:{self.server.server_port}"
        self.fhir_base = f"{attacker_origin}/fhir"

    def __enter__(self) -> Attacker:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Auth on; loopback on the FHIR allow-list (as the review had it)."""
    workdir: Path = tmp_path_factory.mktemp("startback-launch")
    env = {
        "CDS_REQUIRE_AUTH": "true",
        "CDS_TRUSTED_ISSUERS": json.dumps(UNREAD_ISSUERS),
        "CDS_FHIR_ALLOWLIST": "http://127.0.0.1",
    }
    with running_service(workdir, env) as running:
        yield running.base_url


@pytest.fixture
def attacker() -> Iterator[Attacker]:
    with Attacker() as server:
        yield server


def hosts(requests: list[str]) -> set[str]:
    return {urlsplit(url).netloc for url in requests}


def open_page(browser: Any, url: str, *, skip_server_check: bool = False) -> tuple[Any, list[str]]:
    """The page at `url`, and every URL the browser requested. With `skip_server_check`, the
    document comes from the bare app URL (as a stale cache or a proxy could serve it), so the
    script itself has to refuse."""
    context = browser.new_context()
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    page = context.new_page()
    if skip_server_check:
        bare = url.partition("?")[0]
        page.route(url, lambda route: route.fulfill(response=route.fetch(url=bare)))
    page.goto(url)
    return page, requests


def test_launch_from_an_untrusted_iss_is_refused_by_the_service(
    service: str, attacker: Attacker, browser: Any
) -> None:
    url = f"{service}/apps/startback?{urlencode({'launch': 'xyz', 'iss': attacker.fhir_base})}"
    page, requests = open_page(browser, url)
    assert page.get_by_role("alert").inner_text().startswith("This FHIR server (iss) is not on")
    assert page.get_by_text("The questionnaire could not start.").is_visible()
    assert hosts(requests) == {urlsplit(service).netloc}
    assert attacker.seen == []
    page.context.close()


def test_the_script_refuses_an_untrusted_iss_too(
    service: str, attacker: Attacker, browser: Any
) -> None:
    url = f"{service}/apps/startback?{urlencode({'launch': 'xyz', 'iss': attacker.fhir_base})}"
    page, requests = open_page(browser, url, skip_server_check=True)
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "not on the service's FHIR allow-list" in alert.inner_text()
    assert page.get_by_text("The questionnaire could not start.").is_visible()
    assert hosts(requests) == {urlsplit(service).netloc}
    assert attacker.seen == []
    page.context.close()


@pytest.mark.parametrize("skip_server_check", [False, True], ids=["page", "script"])
def test_development_mode_is_refused_with_auth_on(
    service: str, browser: Any, skip_server_check: bool
) -> None:
    # An allow-listed loopback FHIR base: development mode itself is what is refused.
    query = urlencode({"iss": "http://127.0.0.1:9/fhir", "patient": "victim"})
    page, requests = open_page(
        browser, f"{service}/apps/startback?{query}", skip_server_check=skip_server_check
    )
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Development mode" in alert.inner_text()
    assert [u for u in requests if "127.0.0.1:9/" in u] == []
    assert page.locator("#patient").is_hidden()
    page.context.close()
