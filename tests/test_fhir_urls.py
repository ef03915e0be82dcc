"""Never a 500, nothing contacted: malformed `fhirServer` values and `next` links (from the prefetch
and from the FHIR server's own answers) end in 412 with an OperationOutcome before the bearer token
goes anywhere; FHIR answers are read up to CDS_FHIR_MAX_RESPONSE_BYTES after decompression."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
import respx
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cds_service.config import Settings
from cds_service.records import fhir_client
from cds_service.records.fhir_client import FhirClient
from cds_service.records.fhir_urls import (
    UnsafeFhirUrl,
    allowed_by,
    check_next,
    parse_base,
)
from tests.conftest import StartedClients
from tests.factories import PATIENT_ID, back_pain, bundle, chart_prefetch, hook_request, patient

# The allow-list entry of the security review.
SERVER = "http://127.0.0.1:9399/fhir"
FIRST_PAGE = r"http://127\.0\.0\.1:9399/fhir/Condition\?patient=pt-1&_count=500$"
NEXT_PAGES = r"http://127\.0\.0\.1:9399/fhir/Condition\?page=\d+$"

BAD_FHIR_SERVERS = [
    # 500 before: httpx.InvalidURL is not an httpx.HTTPError; urlsplit raises on "[127.0.0.1]".
    "http://127.0.0.1:abc",
    "http://127.0.0.1:9302.evil",
    "http://[127.0.0.1]:9399",
    "http://127.0.0.1:9399/fhir\r\nX-Injected: 1",
    "http://127.0.0.1:9399/fhir\x00",
    # Path escape and silent query rewriting under the allow-list entry.
    "http://127.0.0.1:9399/fhir/../admin",
    "http://127.0.0.1:9399/fhir/%2e%2e/admin",
    "http://127.0.0.1:9399/fhir/%2E%2E/admin",
    "http://127.0.0.1:9399/fhir/./Patient",
    "http://127.0.0.1:9399/fhir#frag",
    "http://127.0.0.1:9399/fhir?x=",
    # The other rules.
    "http://user:secret@127.0.0.1:9399/fhir",
    "http://127.0.0.1:0/fhir",
    "http://127.0.0.1:65536/fhir",
    "http://127.0.0.1:/fhir",
    "http://127.0.0.1:9399\\@evil.example/fhir",
    "http://127.0.0.1:9399/fh ir",
    "http://127.0.0.1:9399/fhir\t",
    "http://127.0.0.1:9399/fhir/%2fadmin",
    "http://[::1%25lo]:9399/fhir",
    "ftp://127.0.0.1:9399/fhir",
    "127.0.0.1:9399/fhir",
]

BAD_NEXT_LINKS = [
    "http://127.0.0.1:abc/fhir/Condition?page=2",
    "http://127.0.0.1:9302.evil/fhir/Condition?page=2",
    "http://[127.0.0.1]:9399/fhir/Condition?page=2",
    "http://127.0.0.1:9399/fhir/Condition?page=2\r\nX-Injected: 1",
    "http://127.0.0.1:9399/fhir/Condition?page=2\x00",
    "http://127.0.0.1:9399/fhir/../admin/Condition?page=2",
    "http://127.0.0.1:9399/fhir/%2e%2e/admin/Condition?page=2",
    "http://127.0.0.1:9399/fhir/Condition?page=2#frag",
    "http://127.0.0.1:9399/admin/Condition?page=2",
    "http://127.0.0.1:9399/fhirX/Condition?page=2",
    "http://127.0.0.1:9400/fhir/Condition?page=2",
    "https://127.0.0.1:9399/fhir/Condition?page=2",
    "http://127.0.0.1:9399@evil.example/fhir/Condition?page=2",
    "http://evil.example/fhir/Condition?page=2",
    "/fhir/Condition?page=2",
]


class Hosts:
    """A respx router that answers every host, so a test can prove which ones were called."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.router = router
        # Matched in this order: the two Condition routes, the rest of the server, anything else.
        self.first_page = router.get(url__regex=FIRST_PAGE)
        self.pages = router.get(url__regex=NEXT_PAGES)
        self.server = router.route(url__startswith=f"{SERVER}/")
        self.anything = router.route()
        self.pages.respond(json=bundle([]))
        self.server.respond(json=bundle([]))
        self.anything.respond(json=bundle([]))

    def called(self) -> set[str]:
        """The routes that saw a request: first_page, pages, server, anything."""
        routes = {
            "first_page": self.first_page,
            "pages": self.pages,
            "server": self.server,
            "anything": self.anything,
        }
        return {name for name, route in routes.items() if route.called}


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    with respx.MockRouter(assert_all_called=False, assert_all_mocked=True) as router:
        yield Hosts(router)


@pytest.fixture
def make_client(
    settings_factory: Callable[..., Settings], started_clients: StartedClients, hosts: Hosts
) -> Callable[..., TestClient]:
    def make(**overrides: Any) -> TestClient:
        settings = settings_factory(fhir_allowlist=[SERVER], **overrides)
        transport = httpx.MockTransport(hosts.router.async_handler)
        return started_clients.start(settings, transport=transport)

    return make


def assert_412(response: httpx.Response, expression: str | None = None) -> dict[str, Any]:
    assert response.status_code == 412, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    issue: dict[str, Any] = body["issue"][0]
    assert issue["code"] == "incomplete"
    if expression is not None:
        assert expression in issue.get("expression", []), issue
    return issue


def post(client: TestClient, body: dict[str, Any]) -> httpx.Response:
    # orjson keeps CR, LF and NUL as JSON escapes, as an EHR (or an attacker) would send them.
    return client.post(
        "/cds-services/lbp-patient-view",
        content=orjson.dumps(body),
        headers={"content-type": "application/json"},
    )


# ---- the matrix: fhirServer, prefetch `next`, the server's own `next` -------------------------


@pytest.mark.parametrize("server", BAD_FHIR_SERVERS)
def test_bad_fhir_server_is_412_and_nothing_is_contacted(
    make_client: Callable[..., TestClient], hosts: Hosts, server: str
) -> None:
    client = make_client()
    response = post(client, hook_request("patient-view", fhir_server=server, token="secret"))
    assert_412(response, "fhirServer")
    assert hosts.called() == set()


@pytest.mark.parametrize("server", BAD_FHIR_SERVERS)
def test_bad_fhir_server_is_412_even_with_everything_prefetched(
    make_client: Callable[..., TestClient], hosts: Hosts, server: str
) -> None:
    client = make_client()
    body = hook_request(
        "patient-view", prefetch=chart_prefetch([back_pain()]), fhir_server=server, token="t"
    )
    assert_412(post(client, body), "fhirServer")
    assert not hosts.anything.called


@pytest.mark.parametrize("link", BAD_NEXT_LINKS)
def test_bad_next_link_in_the_prefetch_is_412_before_any_call(
    make_client: Callable[..., TestClient], hosts: Hosts, link: str
) -> None:
    client = make_client()
    prefetch = chart_prefetch()
    prefetch["conditions"] = bundle([back_pain()], next_url=link)
    body = hook_request("patient-view", prefetch=prefetch, fhir_server=SERVER, token="secret")
    assert_412(post(client, body), "prefetch.conditions")
    assert hosts.called() == set()


@pytest.mark.parametrize("link", BAD_NEXT_LINKS)
def test_bad_next_link_from_the_fhir_server_is_412_and_not_followed(
    make_client: Callable[..., TestClient], hosts: Hosts, link: str
) -> None:
    hosts.first_page.respond(json=bundle([back_pain()], next_url=link))
    client = make_client()
    prefetch = chart_prefetch()
    del prefetch["conditions"]
    body = hook_request("patient-view", prefetch=prefetch, fhir_server=SERVER, token="secret")
    issue = assert_412(post(client, body), "prefetch.conditions")
    assert "conditions" in issue["diagnostics"]
    assert hosts.first_page.call_count == 1
    assert hosts.called() == {"first_page"}


# ---- what keeps working ------------------------------------------------------------------------


@pytest.mark.parametrize("server", [SERVER, f"{SERVER}/", "HTTP://127.0.0.1:9399/fhir"])
def test_allow_listed_server_is_queried(
    make_client: Callable[..., TestClient], hosts: Hosts, server: str
) -> None:
    hosts.first_page.respond(json=bundle([back_pain()]))
    client = make_client()
    prefetch = chart_prefetch()
    del prefetch["conditions"]
    body = hook_request("patient-view", prefetch=prefetch, fhir_server=server, token="secret")
    response = post(client, body)
    assert response.status_code == 200, response.text
    assert hosts.first_page.call_count == 1
    assert hosts.first_page.calls.last.request.headers["Authorization"] == "Bearer secret"
    assert not hosts.anything.called


def test_next_links_on_the_server_are_followed_up_to_the_page_cap(
    make_client: Callable[..., TestClient], hosts: Hosts
) -> None:
    pages = hosts.pages
    pages.side_effect = lambda request: httpx.Response(
        200,
        json=bundle(
            [back_pain()],
            next_url=f"{SERVER}/Condition?page={int(request.url.params['page']) + 1}",
        ),
    )
    hosts.first_page.respond(json=bundle([back_pain()], next_url=f"{SERVER}/Condition?page=2"))
    client = make_client(fhir_max_pages=4)
    prefetch = chart_prefetch()
    del prefetch["conditions"]
    body = hook_request("patient-view", prefetch=prefetch, fhir_server=SERVER, token="t")
    assert_412(post(client, body), "prefetch.conditions")
    assert hosts.first_page.call_count == 1
    assert pages.call_count == 3  # the first page and three `next` pages: the cap of 4
    assert [c.request.url.params["page"] for c in pages.calls] == ["2", "3", "4"]
    assert not hosts.anything.called


def test_a_next_link_in_another_spelling_of_the_server_is_followed(
    make_client: Callable[..., TestClient], hosts: Hosts
) -> None:
    """`next` stays on the server whatever its spelling of host case or scheme."""
    page2 = "HTTP://127.0.0.1:9399/fhir/Condition?page=2"
    second = hosts.pages
    prefetch = chart_prefetch()
    prefetch["conditions"] = bundle([back_pain()], next_url=page2)
    client = make_client()
    body = hook_request("patient-view", prefetch=prefetch, fhir_server=SERVER, token="t")
    assert post(client, body).status_code == 200
    assert second.call_count == 1
    assert not hosts.anything.called


# ---- answer size, counted after decompression ---------------------------------------------------


class CountingStream(httpx.AsyncByteStream):
    """A response body delivered in chunks, counting how many the client pulled."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def padded_bundle(pad_bytes: int) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "pad": "a" * pad_bytes})


def fetch_conditions(client: TestClient) -> httpx.Response:
    prefetch = chart_prefetch()
    del prefetch["conditions"]
    return post(
        client, hook_request("patient-view", prefetch=prefetch, fhir_server=SERVER, token="t")
    )


def test_gzip_answer_that_expands_beyond_the_limit_is_412_and_reading_stops(
    make_client: Callable[..., TestClient], hosts: Hosts
) -> None:
    compressed = gzip.compress(padded_bundle(50_000_000))  # 50 MB of JSON, ~50 KB on the wire
    stream = CountingStream(chunked(compressed, 1024))
    hosts.first_page.mock(
        side_effect=lambda _request: httpx.Response(
            200, headers={"content-encoding": "gzip"}, stream=stream
        )
    )
    client = make_client(fhir_max_response_bytes=100_000)
    issue = assert_412(fetch_conditions(client), "prefetch.conditions")
    assert "CDS_FHIR_MAX_RESPONSE_BYTES" in issue["diagnostics"]
    assert "conditions" in issue["diagnostics"]
    # 1 KiB of this gzip inflates to ~1 MB: the limit is passed on the first chunk.
    assert stream.pulled <= 2 < len(stream.chunks)


def test_declared_length_beyond_the_limit_is_412_before_the_body_is_read(
    make_client: Callable[..., TestClient], hosts: Hosts
) -> None:
    body = padded_bundle(300_000)
    stream = CountingStream(chunked(body, 4096))
    hosts.first_page.mock(
        side_effect=lambda _request: httpx.Response(
            200, headers={"content-length": str(len(body))}, stream=stream
        )
    )
    client = make_client(fhir_max_response_bytes=100_000)
    assert_412(fetch_conditions(client), "prefetch.conditions")
    assert stream.pulled == 0


def test_the_pages_of_one_search_count_together(
    make_client: Callable[..., TestClient], hosts: Hosts
) -> None:
    """Three pages of ~40 KB: each under the 100 KB limit, together over it."""

    def page(number: int) -> dict[str, Any]:
        body: dict[str, Any] = orjson.loads(padded_bundle(40_000))
        if number < 3:
            body["link"] = [{"relation": "next", "url": f"{SERVER}/Condition?page={number + 1}"}]
        return body

    hosts.first_page.respond(json=page(1))
    later = hosts.pages
    later.side_effect = lambda request: httpx.Response(
        200, json=page(int(request.url.params["page"]))
    )
    client = make_client(fhir_max_response_bytes=100_000)
    assert_412(fetch_conditions(client), "prefetch.conditions")
    assert later.call_count == 2
    assert not hosts.anything.called


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("identity", lambda data: data),
    ],
)
def test_compressed_answers_under_the_limit_are_read(
    make_client: Callable[..., TestClient],
    hosts: Hosts,
    encoding: str,
    encode: Callable[[bytes], bytes],
) -> None:
    wire = encode(orjson.dumps(bundle([back_pain()])))
    hosts.first_page.mock(
        side_effect=lambda _request: httpx.Response(
            200,
            headers={"content-encoding": encoding},
            stream=CountingStream(chunked(wire, 7)),
        )
    )
    client = make_client()
    response = fetch_conditions(client)
    assert response.status_code == 200, response.text
    assert [c["source"]["topic"]["code"] for c in response.json()["cards"]] == [
        "startback-screening"
    ]


@pytest.mark.parametrize(
    ("encoding", "wire"),
    [
        ("gzip", b"\x1f\x8b\x08\x00garbage"),
        ("gzip", gzip.compress(orjson.dumps(bundle([])))[:-12]),
        ("br", b"\x0b\x02\x80{}\x03"),
    ],
    ids=["corrupt", "truncated", "unsupported"],
)
def test_bad_compressed_answers_are_412(
    make_client: Callable[..., TestClient], hosts: Hosts, encoding: str, wire: bytes
) -> None:
    hosts.first_page.mock(
        side_effect=lambda _request: httpx.Response(
            200, headers={"content-encoding": encoding}, stream=CountingStream([wire])
        )
    )
    assert_412(fetch_conditions(make_client()), "prefetch.conditions")


# ---- the deadline ------------------------------------------------------------------------------


def test_an_answer_completed_after_the_deadline_is_not_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[bytes] = []
    real_loads = orjson.loads

    def spy(data: bytes) -> Any:
        parsed.append(data)
        return real_loads(data)

    monkeypatch.setattr(
        fhir_client, "orjson", SimpleNamespace(loads=spy, JSONDecodeError=orjson.JSONDecodeError)
    )

    async def run() -> None:
        transport = httpx.MockTransport(lambda _request: httpx.Response(200, json=patient()))
        async with httpx.AsyncClient(transport=transport) as http:
            client = FhirClient(
                http, parse_base(SERVER), access_token="t", max_pages=2, max_response_bytes=10_000
            )
            assert await client.read(f"Patient/{PATIENT_ID}") is not None
            client.deadline = asyncio.get_running_loop().time()  # the budget is spent
            with pytest.raises(TimeoutError):
                await client.read(f"Patient/{PATIENT_ID}")

    asyncio.run(run())
    assert len(parsed) == 1


# ---- the URL rules themselves --------------------------------------------------------------------


@pytest.mark.parametrize("server", BAD_FHIR_SERVERS)
def test_parse_base_refuses(server: str) -> None:
    with pytest.raises(UnsafeFhirUrl):
        parse_base(server)


@pytest.mark.parametrize("link", BAD_NEXT_LINKS)
def test_check_next_refuses(link: str) -> None:
    with pytest.raises(UnsafeFhirUrl):
        check_next(link, parse_base(SERVER))


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("http://127.0.0.1:9399/fhir/", "http://127.0.0.1:9399/fhir"),
        ("HTTPS://EHR.Example.org/R4", "https://ehr.example.org/R4"),
        ("http://[0:0::1]:8080/fhir", "http://[::1]:8080/fhir"),
        ("http://localhost", "http://localhost"),
    ],
)
def test_parse_base_accepts_plain_base_urls(url: str, canonical: str) -> None:
    assert str(parse_base(url)) == canonical


@pytest.mark.parametrize(
    ("url", "prefixes", "allowed"),
    [
        ("http://127.0.0.1:9999/fhir", ["http://127.0.0.1"], True),
        ("http://127.0.0.1:9399/fhir/Patient", [SERVER], True),
        ("http://127.0.0.1:9399/fhirX", [SERVER], False),
        ("http://127.0.0.1:8080/fhir", [SERVER], False),
        ("https://hapi.fhir.org:443/baseR4", ["https://hapi.fhir.org/baseR4"], True),
        ("https://hapi.fhir.org:8443/baseR4", ["https://hapi.fhir.org/baseR4"], False),
        ("http://127.0.0.1:9399/fhir/../admin", [SERVER], False),
        ("http://[127.0.0.1]:9399/fhir", ["http://127.0.0.1"], False),
        ("http://127.0.0.1:9999/fhir", ["http://127.0.0.1:abc", "http://[127.0.0.1]"], False),
    ],
)
def test_allow_list(url: str, prefixes: list[str], allowed: bool) -> None:
    assert allowed_by(url, prefixes) is allowed


@given(url=st.text(max_size=80) | st.from_regex(r"https?://[\[\]0-9a-z.:@%/?#\\]{0,40}"))
def test_url_checks_never_raise_anything_else(url: str) -> None:
    settings = Settings(fhir_allowlist=["http://127.0.0.1", SERVER])
    assert settings.fhir_server_allowed(url) in (True, False)
    for check in (parse_base, lambda u: check_next(u, parse_base(SERVER))):
        try:
            check(url)
        except UnsafeFhirUrl:
            pass


@pytest.mark.parametrize("entry", ["http://127.0.0.1:abc", "http://[127.0.0.1]", "http://h/a?x"])
def test_an_unsafe_allow_list_entry_stops_start_up(entry: str) -> None:
    with pytest.raises(ValidationError, match="CDS_FHIR_ALLOWLIST"):
        Settings(fhir_allowlist=[entry])
