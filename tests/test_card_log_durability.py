"""The card log survives the process being stopped under load: a SIGTERM loses no card; a
SIGKILL loses only what had not been flushed yet (never what was already written).

Each run starts `uvicorn cds_service.main:create_app --factory` on SQLite, fires patient-view
calls (one card each) from several threads, and signals the process while calls are in flight.
bench/card_log_loss.py measures the same over more runs, with the loss window.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.factories import back_pain, chart_prefetch, hook_request
from tests.servers import Service, running_service

FIRING_THREADS = 4
CARDS_BEFORE_SIGNAL = 60
EXIT_TIMEOUT_SECONDS = 30
SETTLE_DEADLINE_SECONDS = 30


@contextmanager
def service(workdir: Path) -> Iterator[Service]:
    """The service on a SQLite card log in `workdir`, no access log, none of this process's
    `CDS_*` settings."""
    with running_service(workdir, {}, access_log=False, inherit_cds_env=False) as svc:
        yield svc


@dataclass
class Firing:
    """Threads posting hook calls until the service stops answering; the cards answered."""

    base_url: str
    cards: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.threads = [threading.Thread(target=self._fire) for _ in range(FIRING_THREADS)]
        for thread in self.threads:
            thread.start()

    def _fire(self) -> None:
        url = f"{self.base_url}/cds-services/lbp-patient-view"
        with httpx.Client(timeout=10) as http:
            while not self.stopped.is_set():
                body = hook_request(
                    "patient-view", prefetch=chart_prefetch([back_pain(onset_days_ago=None)])
                )
                try:
                    response = http.post(url, json=body)
                except httpx.HTTPError:
                    return  # the service has closed its socket
                if response.status_code != 200:
                    return
                with self.lock:
                    self.cards.update(card["uuid"] for card in response.json()["cards"])

    def answered(self) -> int:
        with self.lock:
            return len(self.cards)

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + SETTLE_DEADLINE_SECONDS
        while self.answered() < count:
            assert time.monotonic() < deadline, "the service did not answer"
            time.sleep(0.01)

    def join(self) -> set[str]:
        self.stopped.set()
        for thread in self.threads:
            thread.join(timeout=30)
        with self.lock:
            return set(self.cards)


def logged(database: Path) -> set[str]:
    with sqlite3.connect(database) as conn:
        return {row[0] for row in conn.execute("SELECT card_uuid FROM card_log")}


@pytest.mark.parametrize("run", range(3))
def test_sigterm_under_load_loses_no_card(tmp_path: Path, run: int) -> None:
    with service(tmp_path) as svc:
        firing = Firing(svc.base_url)
        firing.start()
        try:
            # Vary the moment of the signal a little from run to run.
            firing.wait_for(CARDS_BEFORE_SIGNAL + 20 * run)
            svc.process.send_signal(signal.SIGTERM)
            svc.process.wait(timeout=EXIT_TIMEOUT_SECONDS)
        finally:
            issued = firing.join()
        log = svc.log_path.read_text(errors="replace")
    assert len(issued) >= CARDS_BEFORE_SIGNAL
    assert issued - logged(svc.database) == set()
    assert "card log" not in log  # no write failure, nothing reported lost


def test_sigkill_loses_nothing_already_flushed(tmp_path: Path) -> None:
    with service(tmp_path) as svc:
        firing = Firing(svc.base_url)
        firing.start()
        try:
            firing.wait_for(CARDS_BEFORE_SIGNAL)
            # Wait until a flush is observable in the database, then kill while calls continue.
            deadline = time.monotonic() + SETTLE_DEADLINE_SECONDS
            while not (observed := logged(svc.database)):
                assert time.monotonic() < deadline, "no card reached the card log"
                time.sleep(0.02)
            svc.process.send_signal(signal.SIGKILL)
            assert svc.process.wait(timeout=EXIT_TIMEOUT_SECONDS) == -signal.SIGKILL
        finally:
            firing.join()
    after = logged(svc.database)
    assert observed <= after
    with sqlite3.connect(svc.database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
