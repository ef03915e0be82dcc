"""/analytics: aggregation (weeks, rates, unknown cards, override reasons), CSV, page, access."""

from __future__ import annotations

import ast
import csv
import io
import tempfile
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cds_service.analytics import aggregate
from cds_service.analytics.aggregate import Summary, Window, week_start
from cds_service.analytics.charts import reason_label
from cds_service.analytics.page import CSV_COLUMNS, render_csv, render_page
from cds_service.cards import base
from cds_service.cards.override_reasons import (
    NONOPIOID_INSUFFICIENT,
    OVERRIDE_REASON_SYSTEM,
    own_display,
)
from cds_service.store import rollup
from cds_service.store.db import CardLogEntry, Store
from tests.factories import TODAY
from tests.jwt_helpers import UNREAD_ISSUERS

# TODAY (2026-11-22) is a Sunday: its ISO week starts on Monday 2026-11-16.
THIS_MONDAY = date(2026, 11, 16)
IMAGING = "imaging-without-red-flags"
OPIOID = "opioid-order"
REASON_SYSTEM = "urn:lbp-cds:override-reason"


def at(day: date, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def card(uuid: str, topic: str, issued_at: datetime) -> dict:
    return {"card_uuid": uuid, "topic": topic, "indicator": "warning", "issued_at": issued_at}


def fb(
    uuid: str,
    outcome: str,
    *,
    topic: str | None = None,
    code: str | None = None,
    display: str | None = None,
    system: str | None = "urn:lbp-cds:override-reason",
) -> dict:
    return {
        "card_uuid": uuid,
        "outcome": outcome,
        "topic": topic,
        "override_system": system if code else None,
        "override_code": code,
        "override_display": display,
    }


def summarise(
    cards: Iterable[dict[str, Any]],
    feedback: Iterable[dict[str, Any]],
    *,
    today: date,
    weeks: int,
) -> Summary:
    """What /analytics shows for these rows: they are written to a fresh SQLite store (feedback
    in this order, received today), whose counts for the window are summarised."""
    window = Window.ending(today, weeks)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'analytics.db'}")
        try:
            store.migrate()
            store.log_cards(
                [
                    CardLogEntry(
                        c["card_uuid"],
                        "lbp-order-sign",
                        c["topic"],
                        c["indicator"],
                        "h",
                        c["issued_at"],
                    )
                    for c in cards
                ]
            )
            for n, row in enumerate(feedback):
                reason = {
                    k: row[f"override_{k}"]
                    for k in ("system", "code", "display")
                    if row[f"override_{k}"] is not None
                }
                item: dict[str, Any] = {
                    "card": row["card_uuid"],
                    "outcome": row["outcome"],
                    # Unique per row: the store keeps an item repeated verbatim once.
                    "outcomeTimestamp": f"2026-11-22T00:00:{n:02d}Z",
                }
                if reason:
                    item["overrideReason"] = {"reason": reason}
                store.save_feedback("lbp-order-sign", [item], received_at=at(today))
            counts = rollup.read_weeks(store, window.weeks[0], window.weeks[-1])
        finally:
            store.close()
    return aggregate.summarise(counts, window)


# ---- weeks ------------------------------------------------------------------------------


def test_the_window_ends_with_the_iso_week_of_today() -> None:
    assert week_start(TODAY) == THIS_MONDAY
    assert week_start(THIS_MONDAY) == THIS_MONDAY
    window = Window.ending(TODAY, 3)
    assert window.weeks == (date(2026, 11, 2), date(2026, 11, 9), THIS_MONDAY)
    assert window.since == datetime(2026, 11, 2, tzinfo=UTC)
    assert Window.ending(TODAY, 1).weeks == (THIS_MONDAY,)
    with pytest.raises(ValueError, match="at least one week"):
        Window.ending(TODAY, 0)


def test_cards_fall_in_the_week_of_their_utc_issue_time() -> None:
    sunday_night = at(THIS_MONDAY - timedelta(days=1), 23, 59, 59)  # last second of last week
    monday_midnight = at(THIS_MONDAY, 0)  # first second of this week
    # 01:00 on Monday at UTC+2 is still Sunday 23:00 UTC: last week.
    plus_two = datetime(2026, 11, 16, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    naive_monday = datetime(2026, 11, 16, 0, 30)  # SQLite returns naive UTC datetimes
    summary = summarise(
        [
            card("a", IMAGING, sunday_night),
            card("b", IMAGING, monday_midnight),
            card("c", IMAGING, plus_two),
            card("d", IMAGING, naive_monday),
        ],
        [],
        today=TODAY,
        weeks=2,
    )
    assert summary.issued(IMAGING, date(2026, 11, 9)) == 2
    assert summary.issued(IMAGING, THIS_MONDAY) == 2
    assert summary.week_total(THIS_MONDAY) == 2
    assert summary.cards_issued == 4


def test_cards_before_the_window_are_left_out() -> None:
    first_monday = date(2026, 11, 9)  # window of 2 weeks
    summary = summarise(
        [
            card("in", OPIOID, at(first_monday, 0)),
            card("out", OPIOID, at(first_monday, 0) - timedelta(seconds=1)),
        ],
        [fb("out", "accepted", topic=OPIOID)],  # feedback on a card issued before the window
        today=TODAY,
        weeks=2,
    )
    assert summary.cards_issued == 1
    assert summary.issued(OPIOID, first_monday) == 1
    assert summary.feedback_items == 0
    assert summary.unknown.items == 0


def test_every_contract_topic_is_listed_even_without_cards() -> None:
    summary = summarise([card("x", "some-new-topic", at(TODAY))], [], today=TODAY, weeks=1)
    assert summary.topics[:6] == (
        IMAGING,
        OPIOID,
        "muscle-relaxant-duration",
        "muscle-relaxant-older-adult",
        "startback-screening",
        "startback-result",
    )
    assert summary.topics[6:] == ("some-new-topic",)
    assert summary.outcomes[0].issued == 0
    assert summary.outcomes[0].acceptance_rate is None


# ---- rates --------------------------------------------------------------------------------


def test_rates_are_shares_of_the_cards_issued_and_the_last_feedback_counts() -> None:
    cards = [card(f"i{n}", IMAGING, at(TODAY - timedelta(days=n))) for n in range(4)]
    cards.append(card("o1", OPIOID, at(TODAY)))
    feedback = [
        fb("i0", "accepted", topic=IMAGING),
        fb("i1", "overridden", topic=IMAGING, code="red-flag-not-coded"),
        fb("i2", "accepted", topic=IMAGING),
        fb("i2", "overridden", topic=IMAGING, code="failed-conservative-care"),  # changed mind
        fb("o1", "accepted", topic=OPIOID),
    ]
    summary = summarise(cards, feedback, today=TODAY, weeks=1)
    imaging = summary.outcomes[0]
    assert (imaging.topic, imaging.issued, imaging.accepted, imaging.overridden) == (
        IMAGING,
        4,
        1,
        2,
    )
    assert imaging.no_feedback == 1
    assert imaging.acceptance_rate == pytest.approx(0.25)
    assert imaging.override_rate == pytest.approx(0.5)
    opioid = summary.outcomes[1]
    assert (opioid.issued, opioid.accepted, opioid.acceptance_rate) == (1, 1, 1.0)
    assert summary.feedback_items == 5


def test_feedback_for_unknown_cards_is_counted_apart() -> None:
    summary = summarise(
        [card("known", IMAGING, at(TODAY))],
        [
            fb("known", "accepted", topic=IMAGING),
            fb("ghost-1", "overridden", code="not-relevant", display="Not relevant"),
            fb("ghost-1", "accepted"),
            fb("ghost-2", "accepted"),
        ],
        today=TODAY,
        weeks=1,
    )
    assert summary.unknown.items == 3
    assert summary.unknown.cards == 2
    assert (summary.unknown.accepted, summary.unknown.overridden) == (2, 1)
    imaging = summary.outcomes[0]
    assert (imaging.issued, imaging.accepted, imaging.overridden) == (1, 1, 0)
    assert [(r.topic, r.code, r.count) for r in summary.reasons] == [(None, "not-relevant", 1)]


def test_override_reasons_are_grouped_by_topic_system_and_code_most_common_first() -> None:
    cards = [card(f"c{n}", IMAGING, at(TODAY)) for n in range(5)]
    feedback = [
        fb("c0", "overridden", topic=IMAGING, code="red-flag", display="Red flag present"),
        fb("c1", "overridden", topic=IMAGING, code="red-flag", display="Red flag present"),
        fb("c2", "overridden", topic=IMAGING, code="red-flag", display="red flag!"),
        fb("c3", "overridden", topic=IMAGING),  # no reason given
        fb("c4", "overridden", topic=IMAGING, code="red-flag", system="http://ehr.example/x"),
    ]
    summary = summarise(cards, feedback, today=TODAY, weeks=1)
    assert [(r.system, r.code, r.display, r.count) for r in summary.reasons] == [
        ("urn:lbp-cds:override-reason", "red-flag", "Red flag present", 3),
        ("http://ehr.example/x", "red-flag", None, 1),
        (None, None, None, 1),
    ]


# ---- CSV and page ------------------------------------------------------------------------------


def _sample_summary():
    cards = [
        card("i1", IMAGING, at(THIS_MONDAY - timedelta(days=3))),
        card("i2", IMAGING, at(TODAY)),
        card("o1", OPIOID, at(TODAY)),
    ]
    feedback = [
        fb("i1", "overridden", topic=IMAGING, code="x", display='=HYPERLINK("http://evil")'),
        fb("o1", "accepted", topic=OPIOID),
        fb("ghost", "accepted"),
    ]
    return summarise(cards, feedback, today=TODAY, weeks=2)


def test_csv_holds_weekly_counts_outcomes_unknown_feedback_and_reasons() -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(_sample_summary()))))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    weekly = [r for r in rows if r["section"] == "cards_per_week"]
    assert len(weekly) == 2 * 6  # two weeks x the six contract topics
    counts = {(r["topic"], r["week_start"]): int(r["count"]) for r in weekly}
    assert counts[(IMAGING, "2026-11-09")] == 1
    assert counts[(IMAGING, "2026-11-16")] == 1
    assert counts[(OPIOID, "2026-11-16")] == 1
    assert counts[("startback-result", "2026-11-16")] == 0
    outcomes = {(r["topic"], r["outcome"]): r for r in rows if r["section"] == "outcomes"}
    assert outcomes[(IMAGING, "issued")]["count"] == "2"
    assert outcomes[(IMAGING, "overridden")]["rate"] == "0.5000"
    assert outcomes[(IMAGING, "no_feedback")]["rate"] == "0.5000"
    assert outcomes[(OPIOID, "accepted")]["rate"] == "1.0000"
    assert outcomes[("startback-result", "accepted")]["rate"] == ""
    unknown = {r["outcome"]: r["count"] for r in rows if r["section"] == "unknown_card_feedback"}
    assert unknown == {"items": "1", "cards": "1", "accepted": "1", "overridden": "0"}
    (reason,) = [r for r in rows if r["section"] == "override_reasons"]
    assert reason["topic"] == IMAGING
    assert reason["reason_code"] == "x"
    # A display sent by an EHR is never a live spreadsheet formula.
    assert reason["reason_display"] == '\'=HYPERLINK("http://evil")'


def test_page_escapes_what_ehrs_sent_and_shows_every_topic() -> None:
    cards = [card("i1", IMAGING, at(TODAY))]
    feedback = [
        fb("i1", "overridden", topic=IMAGING, code="<b>", display="<script>alert(1)</script>")
    ]
    html = render_page(summarise(cards, feedback, today=TODAY, weeks=4), today=TODAY)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<svg") == 3
    for topic in (IMAGING, OPIOID, "startback-screening", "startback-result"):
        assert f">{topic}</text>" in html


# ---- store queries ------------------------------------------------------------------------------


def test_store_counts_cards_of_the_window_and_feedback_with_its_topic(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    store.migrate()
    since = datetime(2026, 11, 9, tzinfo=UTC)
    store.log_cards(
        [
            CardLogEntry(
                "old", "lbp-order-sign", IMAGING, "warning", "h1", since - timedelta(hours=1)
            ),
            CardLogEntry("new", "lbp-order-sign", IMAGING, "warning", "h2", since),
        ]
    )
    item = {"outcomeTimestamp": "2026-11-20T10:00:00Z"}
    store.save_feedback(
        "lbp-order-sign",
        [
            {**item, "card": "old", "outcome": "accepted"},
            {
                **item,
                "card": "new",
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {"system": "urn:s", "code": "c", "display": "d"},
                    "userComment": "free text that may name the patient",
                },
            },
            {**item, "card": "ghost", "outcome": "accepted"},
        ],
        received_at=datetime(2026, 11, 20, 10, tzinfo=UTC),
    )
    counts = rollup.read_weeks(store, since.date(), since.date() + timedelta(weeks=1))
    assert [(r["week"], r["topic"], r["issued"]) for r in counts["weekly"]] == [
        (since.date(), IMAGING, 1)
    ]
    assert counts["weekly"][0]["overridden"] == 1
    assert counts["weekly"][0]["feedback_items"] == 1  # the "old" card's feedback is not
    assert counts["reasons"] == [
        {"topic": IMAGING, "system": "urn:s", "code": "c", "display": "d", "count": 1}
    ]
    assert counts["unknown"] == {"items": 1, "cards": 1, "accepted": 1, "overridden": 0}
    assert "free text" not in repr(counts)
    store.close()


# ---- HTTP and access ---------------------------------------------------------------------------


def _fill(client) -> None:
    store = client.app.state.store
    store.log_cards(
        [CardLogEntry("card-1", "lbp-order-sign", IMAGING, "warning", "h", at(TODAY, 9))]
    )
    store.save_feedback(
        "lbp-order-sign",
        [{"card": "card-1", "outcome": "accepted", "outcomeTimestamp": "2026-11-22T09:01:00Z"}],
    )


def test_page_and_csv_are_open_in_local_development(client) -> None:
    _fill(client)
    page = client.get("/analytics")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert f">{IMAGING}</text>" in page.text
    export = client.get("/analytics.csv", params={"weeks": 4})
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    issued = [r for r in rows if r["section"] == "outcomes" and r["topic"] == IMAGING]
    assert {r["outcome"]: r["count"] for r in issued}["accepted"] == "1"
    assert len([r for r in rows if r["section"] == "cards_per_week"]) == 4 * 6


@pytest.mark.parametrize("weeks", ["0", "105", "many"])
def test_a_bad_window_is_a_400(client, weeks: str) -> None:
    assert client.get("/analytics", params={"weeks": weeks}).status_code == 400


def test_admin_token_is_required_when_set(client_factory) -> None:
    client = client_factory(admin_token="s3cret-admin")
    assert client.get("/analytics").status_code == 401
    assert client.get("/analytics.csv").status_code == 401
    assert client.get("/analytics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/analytics", params={"token": "s3cret-admi"}).status_code == 401
    ok = client.get("/analytics", headers={"Authorization": "Bearer s3cret-admin"})
    assert ok.status_code == 200
    by_query = client.get("/analytics", params={"token": "s3cret-admin"})
    assert by_query.status_code == 200
    # The page's own links keep the token, so the CSV export and window choice still work.
    assert "analytics.csv?weeks=12&amp;token=s3cret-admin" in by_query.text
    assert client.get("/analytics.csv", params={"token": "s3cret-admin"}).status_code == 200


def test_without_admin_token_the_page_is_closed_when_auth_is_required(client_factory) -> None:
    client = client_factory(require_auth=True, trusted_issuers=UNREAD_ISSUERS)
    response = client.get("/analytics")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.text == ""
    assert client.get("/analytics.csv", params={"token": ""}).status_code == 401
    guarded = client_factory(require_auth=True, trusted_issuers=UNREAD_ISSUERS, admin_token="t0ken")
    assert guarded.get("/analytics", params={"token": "t0ken"}).status_code == 200


# ---- override reason displays (issue 14) -------------------------------------------------------


def test_own_reason_codes_sent_without_a_display_show_the_services_display(client) -> None:
    # The CDS Hooks sandbox sends the chosen override reason as system + code, no display.
    store = client.app.state.store
    store.log_cards(
        [
            CardLogEntry("op-1", "lbp-order-select", OPIOID, "warning", "h1", at(TODAY, 9)),
            CardLogEntry("op-2", "lbp-order-select", OPIOID, "warning", "h2", at(TODAY, 9)),
        ]
    )
    item = {"outcome": "overridden", "outcomeTimestamp": "2026-11-22T09:01:00Z"}
    store.save_feedback(
        "lbp-order-select",
        [
            {
                **item,
                "card": "op-1",
                "overrideReason": {
                    "reason": {"system": REASON_SYSTEM, "code": "nonopioid-insufficient"}
                },
            },
            {
                **item,
                "card": "op-2",
                "overrideReason": {"reason": {"system": "http://ehr.example/x", "code": "other"}},
            },
        ],
    )
    page = client.get("/analytics").text
    assert "Nonopioid therapy tried and insufficient (nonopioid-insufficient)" in page
    assert "nonopioid-insufficient (nonopioid-insufficient)" not in page
    assert "<td>other</td>" in page
    assert "other (other)" not in page
    rows = list(csv.DictReader(io.StringIO(client.get("/analytics.csv").text)))
    reasons = {
        r["reason_code"]: r["reason_display"] for r in rows if r["section"] == "override_reasons"
    }
    assert reasons == {"nonopioid-insufficient": NONOPIOID_INSUFFICIENT.display, "other": ""}


def test_the_services_display_wins_for_its_own_codes_only() -> None:
    cards = [card(f"c{n}", OPIOID, at(TODAY)) for n in range(3)]
    feedback = [
        fb("c0", "overridden", topic=OPIOID, code="palliative-care", display="palliative"),
        fb("c1", "overridden", topic=OPIOID, code="unlisted-code"),
        fb("c2", "overridden", topic=OPIOID, code="palliative-care", system="urn:other"),
    ]
    summary = summarise(cards, feedback, today=TODAY, weeks=1)
    assert {(r.system, r.code): r.display for r in summary.reasons} == {
        (REASON_SYSTEM, "palliative-care"): "Cancer, palliative or end-of-life care",
        (REASON_SYSTEM, "unlisted-code"): None,
        ("urn:other", "palliative-care"): None,
    }
    labels = {reason_label(r) for r in summary.reasons}
    assert labels == {
        "Cancer, palliative or end-of-life care (palliative-care)",
        "unlisted-code",
        "palliative-care",
    }


def test_override_reason_registry_is_what_the_cards_offer() -> None:
    assert own_display(REASON_SYSTEM, "spasticity") == "Used for spasticity, not low back pain"
    assert own_display("urn:other", "spasticity") is None
    assert own_display(REASON_SYSTEM, None) is None
    # What the cards send carries the registry's system.
    assert base.override_reason(*NONOPIOID_INSUFFICIENT).system == OVERRIDE_REASON_SYSTEM
    assert OVERRIDE_REASON_SYSTEM == REASON_SYSTEM
    assert base.override_reason(*NONOPIOID_INSUFFICIENT).display == NONOPIOID_INSUFFICIENT.display
    # No card spells out a code/display pair of its own: every one comes from the registry.
    cards_dir = Path(base.__file__).parent
    for path in sorted(cards_dir.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "override_reason"
            ):
                literal = [a for a in node.args if isinstance(a, ast.Constant)]
                assert not literal, f"{path.name}:{node.lineno} spells out an override reason"
