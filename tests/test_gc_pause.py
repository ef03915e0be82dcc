"""The collector is paused during hook calls only, and always comes back on."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from cds_service import gc_pause
from tests.conftest import call
from tests.factories import back_pain, chart_prefetch, hook_request


def test_collector_is_on_again_after_calls_and_errors(client: TestClient) -> None:
    assert gc.isenabled()
    assert (
        call(
            client,
            "lbp-patient-view",
            hook_request("patient-view", prefetch=chart_prefetch([back_pain()])),
        ).status_code
        == 200
    )
    assert gc.isenabled()
    assert client.post("/cds-services/lbp-patient-view", content=b"{broken").status_code == 400
    assert gc.isenabled()
    assert call(client, "lbp-patient-view", hook_request("patient-view")).status_code == 412
    assert gc.isenabled()


def test_nested_pauses_resume_only_when_the_last_call_ends() -> None:
    pause = gc_pause._Pause()
    pause.enter()
    pause.enter()
    assert not gc.isenabled()
    pause.exit()
    assert not gc.isenabled()
    pause.exit()
    assert gc.isenabled()


def test_a_long_unbroken_pause_still_collects(monkeypatch) -> None:
    pause = gc_pause._Pause()
    collected: list[tuple[int, ...]] = []

    def fake_collect(*args: int) -> int:
        collected.append(args)
        return 0

    monkeypatch.setattr(gc, "collect", fake_collect)
    clock = iter([0.0, 0.5, 2.0, 100.0])
    monkeypatch.setattr("cds_service.gc_pause.time.monotonic", lambda: next(clock))
    pause.last_full = 0.0
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
        pause = gc_pause._Pause()
        pause.enter()
        pause.exit()
        assert not gc.isenabled()
    finally:
        gc.enable()
