"""/analytics in headless Chromium: the service under uvicorn, a card log and feedback stored,
and the page's server-rendered SVG charts found by their topic labels (no JavaScript at all)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cds_service.analytics.aggregate import Window
from cds_service.logic.findings import Topic
from cds_service.store.db import CardLogEntry, Store
from tests.browser import chromium
from tests.servers import running_service

pytestmark = pytest.mark.browser

pytest.importorskip("playwright.sync_api")

ADMIN_TOKEN = "analytics-browser-test"
REASON_SYSTEM = "urn:lbp-cds:override-reason"
# Plausible traffic: relative weight of each topic, share accepted / overridden, override reasons.
TRAFFIC: dict[str, tuple[int, float, float, list[tuple[str, str]]]] = {
    Topic.IMAGING_WITHOUT_RED_FLAGS: (
        9,
        0.45,
        0.35,
        [
            ("red-flag-not-coded", "Red flag present but not coded"),
            ("failed-conservative-care", "Failed 6 weeks of conservative care"),
            ("surgery-candidate", "Surgery or intervention candidate"),
        ],
    ),
    Topic.OPIOID_ORDER: (
        6,
        0.5,
        0.3,
        [
            ("nonopioid-insufficient", "Nonopioid therapy tried and insufficient"),
            ("benzodiazepine-reviewed", "Benzodiazepine co-prescribing reviewed"),
        ],
    ),
    Topic.MUSCLE_RELAXANT_DURATION: (3, 0.6, 0.2, [("benefit-documented", "Benefit documented")]),
    Topic.MUSCLE_RELAXANT_OLDER_ADULT: (2, 0.5, 0.4, [("specialist-advice", "Specialist advice")]),
    Topic.STARTBACK_SCREENING: (12, 0.55, 0.1, [("not-new-episode", "Not a new episode")]),
    Topic.STARTBACK_RESULT: (4, 0.7, 0.05, [("already-discussed", "Already discussed")]),
}


WEEKS = 8


def fill_store(database_url: str, now: datetime) -> dict[str, int]:
    """Card log and feedback (with some for unknown cards) on every day of the page's `WEEKS`
    Monday-aligned weeks up to `now`, whatever weekday that is; returns the counts."""
    rng = random.Random(8)
    store = Store(database_url)
    store.migrate()
    entries: list[CardLogEntry] = []
    feedback: list[dict[str, Any]] = []
    window_start = Window.ending(now.date(), WEEKS).since
    first_day = window_start.date()
    for offset in range((now.date() - first_day).days + 1):
        day = first_day + timedelta(days=offset)
        issued = min(now, datetime.combine(day, time(hour=rng.randint(0, 8)), tzinfo=UTC))
        for topic, (weight, accept, override, reasons) in TRAFFIC.items():
            for _ in range(rng.randint(0, weight)):
                uuid = f"{topic}-{len(entries)}"
                entries.append(
                    CardLogEntry(uuid, "lbp-order-sign", topic, "warning", f"h-{uuid}", issued)
                )
                roll = rng.random()
                item: dict[str, Any] = {"card": uuid, "outcomeTimestamp": issued.isoformat()}
                if roll < accept:
                    feedback.append({**item, "outcome": "accepted"})
                elif roll < accept + override:
                    code, display = rng.choice(reasons)
                    reason = {"system": REASON_SYSTEM, "code": code, "display": display}
                    feedback.append(
                        {**item, "outcome": "overridden", "overrideReason": {"reason": reason}}
                    )
    for n in range(5):  # feedback for cards this service never issued, inside the window
        stamp = max(now - timedelta(days=n), window_start).isoformat()
        feedback.append({"card": f"unknown-{n}", "outcome": "accepted", "outcomeTimestamp": stamp})
    store.log_cards(entries)
    store.save_feedback("lbp-order-sign", feedback)
    store.close()
    return {"cards": len(entries), "feedback": len(feedback)}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, int]]]:
    workdir = tmp_path_factory.mktemp("analytics")
    database_url = f"sqlite:///{workdir / 'cds.db'}"
    counts = fill_store(database_url, datetime.now(UTC))
    with running_service(
        workdir, {"CDS_ADMIN_TOKEN": ADMIN_TOKEN, "CDS_DATABASE_URL": database_url}
    ) as running:
        yield running.base_url, counts


def test_analytics_page_renders_svg_charts_in_chromium(service, tmp_path: Path) -> None:
    base_url, counts = service
    assert httpx.get(f"{base_url}/analytics").status_code == 401  # the admin token is set
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        response = page.goto(f"{base_url}/analytics?weeks={WEEKS}&token={ADMIN_TOKEN}")
        assert response is not None and response.status == 200

        topics = {t.value for t in Topic}
        weekly = page.locator("svg#chart-weekly")
        assert set(weekly.locator("text.topic-label").all_text_contents()) == topics
        assert weekly.locator("rect.bar").count() > WEEKS * 4  # stacked columns, 8 weeks
        bar_titles = weekly.locator("rect.bar title").all_text_contents()
        assert any(t.startswith("imaging-without-red-flags, week of ") for t in bar_titles)

        outcomes = page.locator("svg#chart-outcomes")
        assert set(outcomes.locator("text.topic-label").all_text_contents()) == topics
        reasons = page.locator("svg#chart-reasons")
        labels = reasons.locator("text").all_text_contents()
        assert "Red flag present but not coded (red-flag-not-coded)" in labels
        assert page.locator("svg").count() == 3
        # Rendered: the charts have a real size on screen.
        box = weekly.bounding_box()
        assert box is not None and box["width"] > 500 and box["height"] > 200

        figures = page.locator(".figure b").all_text_contents()
        assert figures == [str(counts["cards"]), str(counts["feedback"]), "5"]
        assert page.locator("script").count() == 0
        assert errors == []  # no CSP violation or failed resource

        # The window links keep the token.
        page.click("text=4 weeks")
        assert "weeks=4" in page.url and f"token={ADMIN_TOKEN}" in page.url
        assert page.locator("svg#chart-weekly text.topic-label").count() == len(topics)
        page.goto(f"{base_url}/analytics?weeks={WEEKS}&token={ADMIN_TOKEN}")
        page.screenshot(path=str(tmp_path / "analytics.png"), full_page=True)
    assert (tmp_path / "analytics.png").stat().st_size > 10_000
