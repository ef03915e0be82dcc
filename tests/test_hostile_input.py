"""Hostile input: deep or huge JSON, wrong types in every place, unicode in every string, FHIR
servers that misbehave or sit at private addresses. Never a 500, never a hang.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import httpx
import orjson
import pytest
import respx
from fastapi.testclient import TestClient

from cds_service.middleware import BodySizeLimit
from tests.contract import assert_response_contract
from tests.factories import (
    FHIR_BASE,
    PATIENT_ID,
    RXNORM,
    TODAY,
    back_pain,
    bundle,
    chart_prefetch,
    days_ago,
    hook_request,
    next_id,
    noon_utc,
    order_prefetch,
    service_request,
)

HOOK_OF = {
    "lbp-patient-view": "patient-view",
    "lbp-encounter-start": "encounter-start",
    "lbp-order-select": "order-select",
    "lbp-order-sign": "order-sign",
}
NEVER_500 = {200, 400, 404, 412, 413}


def medication_request(rxcui: str, text: str, *, per_day: int, days: int, status: str) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": next_id("mr"),
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authoredOn": days_ago(0),
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": rxcui}],
            "text": text,
        },
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
            }
        ],
        "dispenseRequest": {
            "expectedSupplyDuration": {
                "value": days,
                "unit": "days",
                "system": "http://unitsofmeasure.org",
                "code": "d",
            }
        },
    }


def rich_requests() -> list[tuple[str, dict[str, Any]]]:
    """One request per hook that reaches the imaging, opioid, relaxant and STarT Back paths."""
    relaxant = medication_request(
        "21949", "cyclobenzaprine 10 mg tablet", per_day=3, days=30, status="active"
    )
    opioid = medication_request("7804", "oxycodone 5 mg tablet", per_day=4, days=10, status="draft")
    mri = service_request()
    return [
        (
            "lbp-patient-view",
            hook_request(
                "patient-view",
                prefetch=chart_prefetch([back_pain()], age=70, medication_requests=[relaxant]),
            ),
        ),
        (
            "lbp-order-sign",
            hook_request(
                "order-sign", prefetch=order_prefetch([back_pain()]), draft_orders=[mri, opioid]
            ),
        ),
        (
            "lbp-order-select",
            hook_request(
                "order-select",
                prefetch=order_prefetch([back_pain()], age=70),
                draft_orders=[mri, copy.deepcopy(relaxant) | {"status": "draft"}],
            ),
        ),
    ]


def locations(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON document, the document itself first."""
    yield at
    if isinstance(value, dict):
        for key, child in value.items():
            yield from locations(child, (*at, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from locations(child, (*at, index))


def replaced(document: Any, at: tuple[Any, ...], new: Any) -> Any:
    if not at:
        return new
    out = copy.deepcopy(document)
    parent = out
    for step in at[:-1]:
        parent = parent[step]
    parent[at[-1]] = new
    return out


def post_raw(client: TestClient, path: str, raw: bytes) -> httpx.Response:
    return client.post(path, content=raw, headers={"content-type": "application/json"})


def check_answer(response: httpx.Response, service: str, where: Any) -> None:
    assert response.status_code in NEVER_500, (where, response.status_code, response.text[:300])
    if response.status_code == 200 and not response.request.url.path.endswith("/feedback"):
        assert_response_contract(response.json(), HOOK_OF[service])
    elif response.status_code != 200:
        assert response.json()["resourceType"] == "OperationOutcome"


class Sweep:
    """Checks many variants of a request and reports every failing one at the end."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.tried = 0
        self.failures: list[str] = []

    def post(self, service: str, path: str, document: Any, where: Any) -> None:
        self.tried += 1
        try:
            # TestClient re-raises what the app did not handle: that is the 500 case.
            response = post_raw(self.client, path, orjson.dumps(document))
            check_answer(response, service, where)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            self.failures.append(f"{service} {where!r}: {message[:200]}")

    def assert_clean(self) -> None:
        assert not self.failures, f"{len(self.failures)}/{self.tried}:\n" + "\n".join(
            self.failures[:40]
        )


# ---- deep and huge JSON ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/cds-services/lbp-order-sign", "/cds-services/lbp-order-sign/feedback"]
)
@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 10_000 + b"]" * 10_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b'{"hook":"order-sign","hookInstance":"h","context":' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    ],
    ids=["arrays", "objects", "inside-context"],
)
def test_json_nested_beyond_the_parser_limit_is_400(
    client: TestClient, path: str, raw: bytes
) -> None:
    response = post_raw(client, path, raw)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("depth", [100, 1_000])
@pytest.mark.parametrize("where", ["extension", "context", "prefetch", "draft-order"])
def test_json_nested_just_under_the_limit_is_not_a_500(
    client: TestClient, depth: int, where: str
) -> None:
    service, body = rich_requests()[1]
    marker = "NESTED-HERE"
    if where == "extension":
        body["extension"] = {"x": marker}
    elif where == "context":
        body["context"]["x"] = marker
    elif where == "prefetch":
        body["prefetch"]["conditions"]["entry"][0]["resource"]["note"] = marker
    else:
        body["context"]["draftOrders"]["entry"][0]["resource"]["code"]["coding"] = marker
    nested = b"[" * depth + b'"x"' + b"]" * depth
    raw = orjson.dumps(body).replace(f'"{marker}"'.encode(), nested)
    check_answer(post_raw(client, f"/cds-services/{service}", raw), service, (where, depth))


def test_prefetch_bundle_of_100000_entries_over_the_size_limit_is_413(
    client: TestClient,
) -> None:
    body = hook_request("patient-view", prefetch=chart_prefetch([back_pain()]))
    body["prefetch"]["conditions"]["entry"] *= 100_000
    raw = orjson.dumps(body)
    assert len(raw) > 5_000_000
    response = post_raw(client, "/cds-services/lbp-patient-view", raw)
    assert response.status_code == 413


def test_an_oversized_content_length_is_refused_before_the_body_is_read() -> None:
    """The declared length decides: not one body message is received, the app never runs."""
    app_ran = False

    async def app(_scope: Any, _receive: Any, _send: Any) -> None:
        nonlocal app_ran
        app_ran = True

    received: list[Any] = []
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        received.append(1)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": [(b"content-length", b"44000000")]}
    asyncio.run(BodySizeLimit(app, max_bytes=5_000_000)(scope, receive, send))
    assert sent[0]["status"] == 413
    assert received == []
    assert not app_ran


def test_a_body_without_length_is_read_only_up_to_the_limit() -> None:
    """Chunked (no Content-Length): reading stops at the first chunk past the limit."""
    chunks_read = 0

    async def app(_scope: Any, receive: Any, _send: Any) -> None:
        while (await receive()).get("more_body"):
            pass

    async def receive() -> dict[str, Any]:
        nonlocal chunks_read
        chunks_read += 1
        return {"type": "http.request", "body": b"x" * 65_536, "more_body": True}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": []}
    asyncio.run(BodySizeLimit(app, max_bytes=1_000_000)(scope, receive, send))
    assert sent[0]["status"] == 413
    assert chunks_read == 1_000_000 // 65_536 + 1


@pytest.mark.parametrize(
    ("service", "make", "limit"),
    [
        # 100,000 minimal Conditions plus the real one: 4.2 MB, under the default 5 MB limit.
        (
            "lbp-patient-view",
            lambda: _grow(
                hook_request("patient-view", prefetch=chart_prefetch([back_pain()])),
                ("prefetch", "conditions", "entry"),
                {"resource": {"resourceType": "Condition"}},
            ),
            5_000_000,
        ),
        # 100,000 full back-pain Conditions: 44 MB, with the limit raised to let it in.
        (
            "lbp-patient-view",
            lambda: _grow(
                hook_request("patient-view", prefetch=chart_prefetch()),
                ("prefetch", "conditions", "entry"),
                {"resource": back_pain()},
            ),
            60_000_000,
        ),
    ],
    ids=["minimal-entries", "full-entries-44MB"],
)
def test_100000_entries_are_answered(
    client_factory, service: str, make: Callable[[], dict], limit: int
) -> None:
    # How long these take is measured in bench/, not asserted here.
    client = client_factory(max_body_bytes=limit)
    raw = orjson.dumps(make())
    response = post_raw(client, f"/cds-services/{service}", raw)
    assert response.status_code == 200, response.text[:300]
    topics = assert_response_contract(response.json(), HOOK_OF[service])
    assert topics  # the one real entry still counts


def test_100000_draft_orders_are_400_before_any_work(client: TestClient) -> None:
    """CDS_MAX_DRAFT_ORDERS (500): more drafts in one call are refused, naming the field."""
    body = _grow(
        hook_request(
            "order-sign", prefetch=order_prefetch([back_pain()]), draft_orders=[service_request()]
        ),
        ("context", "draftOrders", "entry"),
        {"resource": {"resourceType": "ServiceRequest"}},
    )
    response = post_raw(client, "/cds-services/lbp-order-sign", orjson.dumps(body))
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["context.draftOrders"]


def _grow(body: dict, at: tuple[str, ...], entry: dict) -> dict:
    target: Any = body
    for step in at:
        target = target[step]
    target.extend([entry] * 100_000)
    return body


def test_a_million_junk_entries_are_skipped(client: TestClient) -> None:
    body = hook_request("patient-view", prefetch=chart_prefetch([back_pain()]))
    body["prefetch"]["conditions"]["entry"] += [1, None, {}, [], "x"] * 200_000
    raw = orjson.dumps(body)
    response = post_raw(client, "/cds-services/lbp-patient-view", raw)
    assert response.status_code == 200
    # The real back-pain Condition still counts among a million junk entries.
    assert assert_response_contract(response.json(), "patient-view") == ["startback-screening"]


# ---- wrong types everywhere --------------------------------------------------------------------

WRONG_VALUES: list[Any] = [None, -1, 1.5e308, "", [{}]]


def test_a_wrong_type_in_any_place_is_never_a_500(client: TestClient) -> None:
    sweep = Sweep(client)
    for service, body in rich_requests():
        for at in locations(body):
            for value in WRONG_VALUES:
                document = replaced(body, at, value)
                sweep.post(service, f"/cds-services/{service}", document, (*at, value))
    assert sweep.tried > 1000
    sweep.assert_clean()


def test_a_wrong_type_in_any_place_of_feedback_is_never_a_500(client: TestClient) -> None:
    body = {
        "feedback": [
            {
                "card": "00000000-0000-4000-8000-000000000001",
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {"code": "other", "system": "https://example.org/reasons"},
                    "userComment": "not today",
                },
                "acceptedSuggestions": [{"id": "s1"}],
                "outcomeTimestamp": "2026-11-22T10:00:00Z",
            }
        ]
    }
    sweep = Sweep(client)
    for at in locations(body):
        for value in WRONG_VALUES:
            document = replaced(body, at, value)
            sweep.post("lbp-order-sign", "/cds-services/lbp-order-sign/feedback", document, at)
    sweep.assert_clean()


# ---- unicode in every string -------------------------------------------------------------------

UNICODE = [
    # emoji, NUL, right-to-left override, full-width letters, combining accents, BOM, zero-width
    # space, the last code point, Hebrew
    "😀🦴\u0000\u202eｌｏｗ e\u0301\u0301\ufeff\u200b\U0010ffffדלקת",
    "𝕏" * 2000,
]


def _strings(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    for place in locations(value, at):
        target = value
        for step in place:
            target = target[step]
        if isinstance(target, str):
            yield place, target


def test_unicode_in_every_string_is_never_a_500(client: TestClient) -> None:
    sweep = Sweep(client)
    for service, body in rich_requests():
        for at, original in _strings(body):
            for text in UNICODE:
                for new in (text, original + text):
                    document = replaced(body, at, new)
                    sweep.post(service, f"/cds-services/{service}", document, (*at, new[:8]))
    sweep.assert_clean()


def test_unicode_everywhere_at_once_gives_a_valid_response(client: TestClient) -> None:
    for service, body in rich_requests():
        changed = body
        for at, original in _strings(body):
            if at[-1] in ("resourceType", "hook", "system", "code", "status", "intent"):
                continue
            changed = replaced(changed, at, original + "😀\u202e")
        response = post_raw(client, f"/cds-services/{service}", orjson.dumps(changed))
        check_answer(response, service, "all")
        orjson.loads(response.content)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"hook": "order-sign", "hookInstance": "\\ud800", "context": {}}',
        b'{"hook": "order-sign", "hookInstance": "\xff\xfe", "context": {}}',
        b'\xef\xbb\xbf{"hook": "order-sign"}',
    ],
    ids=["lone-surrogate", "invalid-utf8", "bom"],
)
def test_undecodable_text_is_400(client: TestClient, raw: bytes) -> None:
    assert post_raw(client, "/cds-services/lbp-order-sign", raw).status_code == 400


# ---- FHIR servers: private addresses, redirects, loops, garbage --------------------------------


@pytest.fixture
def any_host() -> Iterator[respx.MockRouter]:
    """Answers every host, so a test can prove the service never called one."""
    with respx.MockRouter(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def open_client(settings_factory, any_host: respx.MockRouter) -> Iterator[TestClient]:
    from cds_service.main import create_app

    app = create_app(
        settings_factory(fhir_allowlist=["http://127.0.0.1:9999/fhir"]),
        clock=lambda: noon_utc(TODAY),
        transport=httpx.MockTransport(any_host.async_handler),
    )
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize(
    "server",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/fhir",
        "http://[::ffff:169.254.169.254]/fhir",
        "http://[::1]/fhir",
        "http://0.0.0.0/fhir",
        "http://2852039166/fhir",  # 169.254.169.254 as one integer
        "http://0xa9fea9fe/fhir",
        "http://10.0.0.5/fhir",
        "http://192.168.1.1/fhir",
        "http://172.16.0.1/fhir",
        "http://metadata.google.internal/computeMetadata/v1",
        "http://127.0.0.1:9999@169.254.169.254/fhir",
        "http://169.254.169.254#@127.0.0.1:9999/fhir",
        "http://127.0.0.1:9999.evil.example/fhir",
        "http://127.0.0.1:9999/fhirX",
        "http://127.0.0.1:8080/fhir",
        "gopher://127.0.0.1:9999/fhir",
        "//127.0.0.1:9999/fhir",
        "http://127.0.0.1:9999/fhir\r\nX-Injected: 1",
    ],
)
def test_fhir_servers_off_the_allow_list_are_never_called(
    open_client: TestClient, any_host: respx.MockRouter, server: str
) -> None:
    anything = any_host.route().respond(json={"resourceType": "Bundle", "entry": []})
    body = hook_request("patient-view", fhir_server=server, token="secret")
    response = post_raw(open_client, "/cds-services/lbp-patient-view", orjson.dumps(body))
    assert response.status_code in (400, 412), response.text
    assert not anything.called


@pytest.mark.parametrize(
    "target",
    [
        f"{FHIR_BASE}/Condition?patient=other",
        "http://169.254.169.254/latest/meta-data",
    ],
    ids=["same-server", "link-local"],
)
def test_fhir_redirects_are_never_followed(
    open_client: TestClient, any_host: respx.MockRouter, target: str
) -> None:
    any_host.route(url__startswith=FHIR_BASE).respond(307, headers={"location": target})
    elsewhere = any_host.route().respond(json={"resourceType": "Bundle"})
    body = hook_request("patient-view", fhir_server=FHIR_BASE, token="secret")
    response = post_raw(open_client, "/cds-services/lbp-patient-view", orjson.dumps(body))
    assert response.status_code == 412
    assert not elsewhere.called


def test_next_links_to_a_private_address_are_not_followed(
    open_client: TestClient, any_host: respx.MockRouter
) -> None:
    prefetch = chart_prefetch([back_pain()])
    prefetch["conditions"] = bundle(
        [back_pain()], next_url="http://169.254.169.254/latest/meta-data"
    )
    fhir = any_host.route(url__startswith=FHIR_BASE).respond(json=bundle([]))
    elsewhere = any_host.route().respond(json=bundle([]))
    body = hook_request("patient-view", prefetch=prefetch, fhir_server=FHIR_BASE, token="t")
    response = post_raw(open_client, "/cds-services/lbp-patient-view", orjson.dumps(body))
    assert response.status_code in (200, 412)
    assert not elsewhere.called
    del fhir


def test_a_next_link_loop_ends(open_client: TestClient, any_host: respx.MockRouter) -> None:
    looping = bundle([back_pain()], next_url=f"{FHIR_BASE}/Condition?page=again")
    pages = any_host.route(url__startswith=f"{FHIR_BASE}/Condition").respond(json=looping)
    any_host.route(url__startswith=FHIR_BASE).respond(json=bundle([]))
    body = hook_request("patient-view", fhir_server=FHIR_BASE, token="t")
    response = post_raw(open_client, "/cds-services/lbp-patient-view", orjson.dumps(body))
    assert response.status_code == 412
    # The first page and then `next` up to the page cap (CDS_FHIR_MAX_PAGES, 20 by default).
    assert pages.call_count == open_client.app.state.settings.fhir_max_pages  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, content=b"[" * 10_000 + b"]" * 10_000),
        httpx.Response(200, content=b"\xff\xfe\x00garbage"),
        httpx.Response(200, json={"resourceType": 5, "entry": "no"}),
        httpx.Response(200, json={"resourceType": "Bundle", "entry": [1, None, "x", []]}),
        httpx.Response(200, json={"resourceType": "Bundle", "link": "next"}),
        httpx.Response(204),
        httpx.Response(404, json={"resourceType": "OperationOutcome"}),
        httpx.Response(429, headers={"retry-after": "3600"}),
    ],
    ids=["too-deep", "binary", "wrong-types", "junk-entries", "bad-link", "204", "404", "429"],
)
def test_fhir_server_garbage_is_never_a_500(
    open_client: TestClient, any_host: respx.MockRouter, answer: httpx.Response
) -> None:
    any_host.route(url__startswith=FHIR_BASE).mock(return_value=answer)
    body = hook_request("patient-view", fhir_server=FHIR_BASE, token="t")
    response = post_raw(open_client, "/cds-services/lbp-patient-view", orjson.dumps(body))
    assert response.status_code in (200, 412), response.text
    if response.status_code == 200:
        assert_response_contract(response.json(), "patient-view")
