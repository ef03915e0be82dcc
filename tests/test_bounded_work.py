"""Bounded work per request: answers linear in the drafts, a cap on drafts, large calls off the
event loop, and uvicorn's connection limits in `cds-service serve`."""

from __future__ import annotations

import argparse
import gc
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service import cli
from cds_service.hooks import service_call
from cds_service.http_protocol import HeadTimeoutH11Protocol
from tests import medication_factories as mf
from tests.conftest import call
from tests.factories import back_pain, chart_prefetch, hook_request, order_prefetch


def _opioid_drafts(count: int) -> list[dict[str, Any]]:
    products = (mf.OXYCODONE_5, mf.TRAMADOL_50, mf.HYDROCODONE_APAP_7_5)
    return [
        mf.medication_request(products[i % 3], quantity=12, request_id=f"opioid-{i}")
        for i in range(count)
    ]


def _order_sign(drafts: list[dict[str, Any]]) -> dict[str, Any]:
    return hook_request("order-sign", prefetch=order_prefetch([back_pain()]), draft_orders=drafts)


def test_answer_grows_linearly_with_the_opioid_drafts(
    client_factory: Callable[..., TestClient],
) -> None:
    client = client_factory(max_draft_orders=1000)
    sizes: dict[int, int] = {}
    for count in (100, 300, 1000):
        response = call(client, "lbp-order-sign", _order_sign(_opioid_drafts(count)))
        assert response.status_code == 200
        assert len(response.json()["cards"]) == count
        sizes[count] = len(response.content)
    # Linear: ten times the drafts, about ten times the bytes (quadratic gave ~80x).
    assert sizes[1000] / sizes[100] < 12
    assert sizes[300] / sizes[100] < 3.6


def test_other_drafts_are_one_bounded_line_with_their_combined_figure(client: TestClient) -> None:
    drafts = _opioid_drafts(7)
    response = call(client, "lbp-order-sign", _order_sign(drafts))
    cards = {c["detail"].split("\n")[0]: c for c in response.json()["cards"]}
    detail = cards["**Order:** tramadol hydrochloride 50 MG Oral Tablet."]["detail"]
    # This tramadol (40) aside: 3 oxycodone x 30 + 1 tramadol x 40 + 2 hydrocodone x 30 = 190.
    assert (
        "**Also drafted now:** 6 other opioid orders (oxycodone hydrochloride 5 MG Oral Tablet "
        "(x3); tramadol hydrochloride 50 MG Oral Tablet; acetaminophen 325 MG / hydrocodone "
        "bitartrate 7.5 MG Oral Tablet (x2)): 190 MME/day combined. Signed together: 230 MME/day."
    ) in detail
    assert detail.count("oxycodone") == 1


def test_many_other_drafts_are_named_first_few_and_counted(
    client_factory: Callable[..., TestClient],
) -> None:
    client = client_factory()
    drafts = [
        mf.medication_request(None, text=f"oxycodone 5 mg tablet lot {i}", request_id=f"o-{i}")
        for i in range(40)
    ]
    response = call(client, "lbp-order-sign", _order_sign(drafts))
    first = response.json()["cards"][0]["detail"]
    assert "39 other opioid orders (" in first
    assert "; and 36 more): 1170 MME/day combined. Signed together: 1200 MME/day." in first


@pytest.mark.parametrize(("count", "status"), [(500, 200), (501, 400)])
def test_at_most_max_draft_orders_per_call(
    client: TestClient, count: int, status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []
    real_build = getattr(service_call, "build_record")  # noqa: B009 (the module's import, patched)

    def counting_build(**kwargs: Any) -> Any:
        built.append(1)
        return real_build(**kwargs)

    monkeypatch.setattr(service_call, "build_record", counting_build)
    drafts = [
        {"resourceType": "ServiceRequest", "id": f"sr-{i}", "status": "draft", "intent": "order"}
        for i in range(count)
    ]
    response = call(client, "lbp-order-sign", _order_sign(drafts))
    assert response.status_code == status
    if status == 400:
        [issue] = response.json()["issue"]
        assert issue["expression"] == ["context.draftOrders"]
        assert "501" in issue["diagnostics"] and "500" in issue["diagnostics"]
        assert built == []  # refused before any record was built
    else:
        assert built == [1]


def test_the_cap_is_a_setting(client_factory: Callable[..., TestClient]) -> None:
    client = client_factory(max_draft_orders=2)
    response = call(client, "lbp-order-sign", _order_sign(_opioid_drafts(3)))
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["context.draftOrders"]


class ThreadLog:
    """Which thread each step ran on, and whether the collector was paused there."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.steps: list[tuple[str, int, bool]] = []
        for name in ("parse_json_object", "build_record", "resolve_data"):
            self._wrap(monkeypatch, name)

    def _wrap(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        real = getattr(service_call, name)

        def note() -> None:
            self.steps.append((name, threading.get_ident(), gc.isenabled()))

        if name == "resolve_data":

            async def async_step(*args: Any, **kwargs: Any) -> Any:
                note()
                return await real(*args, **kwargs)

            monkeypatch.setattr(service_call, name, async_step)
        else:

            def step(*args: Any, **kwargs: Any) -> Any:
                note()
                return real(*args, **kwargs)

            monkeypatch.setattr(service_call, name, step)

    def threads(self) -> dict[str, int]:
        return {name: ident for name, ident, _ in self.steps}


def _large_patient_view() -> dict[str, Any]:
    # A back-pain chart padded with unrelated Conditions past the offload threshold.
    filler = [
        {"resourceType": "Condition", "id": f"pad-{i}", "code": {"text": "x" * 200}}
        for i in range(2000)
    ]
    return hook_request("patient-view", prefetch=chart_prefetch([back_pain(), *filler]))


def test_a_large_call_is_worked_off_the_event_loop(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = ThreadLog(monkeypatch)
    small = call(
        client,
        "lbp-patient-view",
        hook_request("patient-view", prefetch=chart_prefetch([back_pain()])),
    )
    assert small.status_code == 200
    loop_thread = log.threads()
    # A small call runs inline, all on the event loop's thread.
    assert loop_thread["parse_json_object"] == loop_thread["build_record"]
    assert loop_thread["build_record"] == loop_thread["resolve_data"]

    log.steps.clear()
    body = _large_patient_view()
    large = call(client, "lbp-patient-view", body)
    assert large.status_code == 200
    threads = log.threads()
    assert threads["resolve_data"] == loop_thread["resolve_data"]  # the FHIR step stays async
    assert threads["parse_json_object"] != loop_thread["resolve_data"]
    assert threads["build_record"] != loop_thread["resolve_data"]
    # The collector stays paused in the worker thread too (GcPauseMiddleware).
    assert all(not enabled for name, _, enabled in log.steps if name == "build_record")
    # Same answer as inline: the injected clock and uuid factory still apply.
    cards = large.json()["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == [
        c["source"]["topic"]["code"] for c in small.json()["cards"]
    ]
    assert all(c["uuid"].startswith("00000000-0000-4000-8000-") for c in cards)


def test_serve_passes_the_connection_limits_to_uvicorn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn

    # serve checks the settings and migrates before uvicorn starts; it also sets
    # CDS_PUBLIC_BASE_URL for its workers (set then deleted here, so its absence is restored).
    monkeypatch.setenv("CDS_REQUIRE_AUTH", "false")
    monkeypatch.setenv("CDS_DATABASE_URL", f"sqlite:///{tmp_path / 'cds.db'}")
    monkeypatch.setenv("CDS_PUBLIC_BASE_URL", "http://127.0.0.1")
    monkeypatch.delenv("CDS_PUBLIC_BASE_URL")
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *_, **kwargs: calls.append(kwargs))
    monkeypatch.setattr("cds_service.main.create_app", lambda *_: object())
    # `--workers 2` sets PROMETHEUS_MULTIPROC_DIR for the workers: not for later tests' servers.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    assert cli.main(["serve"]) == 0
    assert cli.main(["serve", "--workers", "2", "--limit-concurrency", "50"]) == 0
    single, multi = calls
    for kwargs in (single, multi):
        assert kwargs["http"] is HeadTimeoutH11Protocol
        assert kwargs["timeout_keep_alive"] == cli.KEEP_ALIVE_SECONDS == 5
        assert kwargs["h11_max_incomplete_event_size"] == 16 * 1024
    assert single["limit_concurrency"] == cli.LIMIT_CONCURRENCY
    assert multi["limit_concurrency"] == 50
    assert multi["workers"] == 2


def test_uvicorn_limits_follow_the_arguments() -> None:
    args = argparse.Namespace(timeout_keep_alive=9, limit_concurrency=7)
    assert cli.uvicorn_limits(args) == {
        "http": HeadTimeoutH11Protocol,
        "timeout_keep_alive": 9,
        "limit_concurrency": 7,
        "h11_max_incomplete_event_size": 16384,
    }
