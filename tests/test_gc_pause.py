"""The collector is paused while hook calls are in flight, and always comes back on.

The pause is observed from where the service does its work: the FHIR server it queries (a mock
transport) records gc.isenabled() while the hook call waits for the answer.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient

from cds_service.config import Settings
from cds_service.main import create_app
from cds_service.middleware import GcPauseMiddleware
from tests.conftest import call
from tests.factories import FHIR_BASE, back_pain, chart_prefetch, hook_request, patient

# Guards against a hang if a call never arrives; never reached when the service works.
_GUARD_SECONDS = 30


def _needs_patient_from_fhir(patient_id: str) -> dict[str, Any]:
    """A patient-view whose Patient is left out of prefetch, so the service reads it from FHIR."""
    prefetch = chart_prefetch([back_pain()])
    del prefetch["patient"]
    return hook_request(
        "patient-view", prefetch=prefetch, fhir_server=FHIR_BASE, token="t", patient_id=patient_id
    )


def test_collector_is_off_during_a_hook_call_and_on_after(
    client: TestClient, fhir_mock: respx.MockRouter
) -> None:
    seen: list[bool] = []

    def answer(_request: httpx.Request) -> httpx.Response:
        seen.append(gc.isenabled())
        return httpx.Response(200, json=patient())

    fhir_mock.get(url__regex=r".*/Patient/pt-1$").mock(side_effect=answer)
    assert gc.isenabled()
    response = call(client, "lbp-patient-view", _needs_patient_from_fhir("pt-1"))
    assert response.status_code == 200, response.text
    assert seen == [False]
    assert gc.isenabled()


def test_collector_is_on_again_after_errors(client: TestClient) -> None:
    assert client.post("/cds-services/lbp-patient-view", content=b"{broken").status_code == 400
    assert gc.isenabled()
    assert call(client, "lbp-patient-view", hook_request("patient-view")).status_code == 412
    assert gc.isenabled()


def test_overlapping_calls_keep_it_paused_until_the_last_one_ends(
    settings_factory: Callable[..., Settings],
) -> None:
    """Call A starts, call B starts and ends while A is still waiting on FHIR: the collector
    stays off for A until A ends too."""
    seen: dict[str, list[bool]] = {"a": [], "b": []}

    async def scenario() -> None:
        a_inside = asyncio.Event()
        b_done = asyncio.Event()

        async def fhir(request: httpx.Request) -> httpx.Response:
            who = request.url.path.rsplit("/", 1)[-1]
            seen[who].append(gc.isenabled())
            if who == "a":
                a_inside.set()
                await asyncio.wait_for(b_done.wait(), _GUARD_SECONDS)
                seen["a"].append(gc.isenabled())
            else:
                await asyncio.wait_for(a_inside.wait(), _GUARD_SECONDS)
            return httpx.Response(200, json=patient(patient_id=who))

        app = create_app(settings_factory(), transport=httpx.MockTransport(fhir))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as http,
        ):

            async def post(who: str) -> httpx.Response:
                return await http.post(
                    "/cds-services/lbp-patient-view", json=_needs_patient_from_fhir(who)
                )

            async def b_then_signal() -> httpx.Response:
                try:
                    return await post("b")
                finally:
                    b_done.set()

            a, b = await asyncio.gather(post("a"), b_then_signal())
            assert (a.status_code, b.status_code) == (200, 200), (a.text, b.text)
            assert gc.isenabled()

    asyncio.run(scenario())
    # A: paused when it reached FHIR, and still paused after B had ended.
    assert seen == {"a": [False, False], "b": [False]}
    assert gc.isenabled()


def _pause(**kwargs: Any) -> GcPauseMiddleware:
    async def app(_scope: Any, _receive: Any, _send: Any) -> None:
        raise AssertionError("not called")

    return GcPauseMiddleware(app, **kwargs)


def test_a_long_unbroken_pause_still_collects(monkeypatch: pytest.MonkeyPatch) -> None:
    collected: list[tuple[int, ...]] = []

    def fake_collect(*args: int) -> int:
        collected.append(args)
        return 0

    monkeypatch.setattr(gc, "collect", fake_collect)
    clock = iter([0.0, 0.0, 0.5, 2.0, 100.0])
    pause = _pause(max_pause_seconds=1.0, full_collect_seconds=60.0, monotonic=lambda: next(clock))
    pause.enter()  # t=0: pauses
    pause.enter()  # t=0.5: within the limit, nothing
    pause.enter()  # t=2.0: young generations collected
    pause.enter()  # t=100: a full collection is due
    assert collected == [(1,), ()]
    for _ in range(4):
        pause.exit()
    assert gc.isenabled()


def test_collector_left_off_by_someone_else_stays_off() -> None:
    gc.disable()
    try:
        pause = _pause()
        pause.enter()
        pause.exit()
        assert not gc.isenabled()
    finally:
        gc.enable()
