"""The /analytics HTML page and the /analytics.csv export of a Summary.

No patient data: the card log holds card uuids, topics, indicators and times; feedback adds
outcomes and override reason codings. Clinicians' free-text comments are never shown or exported,
and card uuids are not listed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from html import escape

from cds_service.analytics.aggregate import Summary
from cds_service.analytics.charts import outcomes_chart, reason_label, reasons_chart, weekly_chart

WINDOW_CHOICES = (4, 12, 26, 52)

CSV_COLUMNS = (
    "section",
    "topic",
    "week_start",
    "outcome",
    "reason_system",
    "reason_code",
    "reason_display",
    "count",
    "rate",
)

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d232b;
       margin: 0 auto; max-width: 960px; padding: 24px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.muted { color: #5c6570; } nav a { margin-right: 10px; } nav a.current { font-weight: 600; }
.figures { display: flex; gap: 16px; margin: 16px 0; }
.figure { border: 1px solid #e1e4e8; border-radius: 6px; padding: 10px 14px; min-width: 150px; }
.figure b { display: block; font-size: 22px; }
table { border-collapse: collapse; margin-top: 8px; width: 100%; }
th, td { border-bottom: 1px solid #e6e8eb; padding: 4px 8px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
svg { max-width: 100%; height: auto; display: block; }
details { margin-top: 24px; } code { font-size: 12px; }
"""


def percent(rate: float | None) -> str:
    return "–" if rate is None else f"{100 * rate:.0f} %"


def _figure(label: str, value: str) -> str:
    return f'<div class="figure"><b>{escape(value)}</b><span class="muted">{escape(label)}</span></div>'


def _outcome_table(summary: Summary) -> str:
    rows = "".join(
        f"<tr><td>{escape(o.topic)}</td><td class=n>{o.issued}</td><td class=n>{o.accepted}</td>"
        f"<td class=n>{o.overridden}</td><td class=n>{o.no_feedback}</td>"
        f"<td class=n>{percent(o.acceptance_rate)}</td><td class=n>{percent(o.override_rate)}</td></tr>"
        for o in summary.outcomes
    )
    return (
        "<table><thead><tr><th>topic</th><th>issued</th><th>accepted</th><th>overridden</th>"
        "<th>no feedback</th><th>acceptance rate</th><th>override rate</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _reason_table(summary: Summary) -> str:
    if not summary.reasons:
        return '<p class="muted">No overrides in this window.</p>'
    rows = "".join(
        f"<tr><td>{escape(r.topic or 'unknown card')}</td><td>{escape(reason_label(r))}</td>"
        f"<td><code>{escape(r.code or '')}</code></td><td><code>{escape(r.system or '')}</code></td>"
        f"<td class=n>{r.count}</td></tr>"
        for r in summary.reasons
    )
    return (
        "<table><thead><tr><th>topic</th><th>reason</th><th>code</th><th>system</th>"
        f"<th>overrides</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def render_page(summary: Summary, *, today: date, query_suffix: str = "") -> str:
    """The whole page. `query_suffix` (e.g. "&token=...") is kept on the page's own links."""
    weeks = len(summary.window.weeks)
    nav = " ".join(
        f'<a href="?weeks={n}{escape(query_suffix)}"{" class=current" if n == weeks else ""}>'
        f"{n} weeks</a>"
        for n in WINDOW_CHOICES
    )
    first = summary.window.weeks[0].isoformat()
    unknown = summary.unknown
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Low back pain CDS: card analytics</title><style>{_STYLE}</style></head>
<body>
<h1>Low back pain CDS: card analytics</h1>
<p class="muted">Cards issued from the week of {escape(first)} to {escape(today.isoformat())}
(UTC). No patient data: topics, times, outcomes and override reason codes only.</p>
<nav>Window: {nav} &middot; <a href="analytics.csv?weeks={weeks}{escape(query_suffix)}">CSV export</a></nav>
<div class="figures">
{_figure("cards issued", str(summary.cards_issued))}
{_figure("feedback items", str(summary.feedback_items))}
{_figure("feedback for unknown cards", str(unknown.items))}
</div>
<h2>Cards issued per topic per week</h2>
{weekly_chart(summary)}
<h2>Acceptance and override per topic</h2>
<p class="muted">Share of the cards issued; a card counts with the last feedback received for it.</p>
{outcomes_chart(summary)}
{_outcome_table(summary)}
<h2>Most common override reasons</h2>
{reasons_chart(summary.reasons)}
{_reason_table(summary)}
<h2>Feedback for unknown cards</h2>
<p>{unknown.items} feedback item{"s" * (unknown.items != 1)} for {unknown.cards} card uuid{"s" * (unknown.cards != 1)}
the card log does not hold ({unknown.accepted} accepted, {unknown.overridden} overridden).
They are stored, but count in no topic's rates.</p>
<details><summary>How these figures are computed</summary>
<ul>
<li>Week: the ISO week (Monday to Sunday, UTC) in which the service issued the card.</li>
<li>Acceptance / override rate: cards whose last feedback is accepted / overridden, over the cards
issued; the rest had no feedback. CDS Hooks feedback is optional, so a large "no feedback" share
often means the EHR does not send it.</li>
<li>Override reasons: every overridden feedback item, grouped by topic, reason system and code;
the service's own reason codes show the service's display, others the display the EHR sent.</li>
</ul></details>
</body></html>
"""


def _safe(cell: str | None) -> str:
    """A cell a spreadsheet will not run as a formula (override texts come from the EHR)."""
    text = cell or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _row(section: str, **cells: str | int | None) -> Sequence[str]:
    out = dict.fromkeys(CSV_COLUMNS, "")
    out["section"] = section
    for key, value in cells.items():
        out[key] = _safe(value) if isinstance(value, str) or value is None else str(value)
    return [out[c] for c in CSV_COLUMNS]


def render_csv(summary: Summary) -> str:
    """One long table: `section` says which figures a row holds (see CSV_COLUMNS)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for week in summary.window.weeks:
        for topic in summary.topics:
            writer.writerow(
                _row(
                    "cards_per_week",
                    topic=topic,
                    week_start=week.isoformat(),
                    count=summary.issued(topic, week),
                )
            )
    for o in summary.outcomes:
        for outcome, count, rate in (
            ("issued", o.issued, None),
            ("accepted", o.accepted, o.acceptance_rate),
            ("overridden", o.overridden, o.override_rate),
            ("no_feedback", o.no_feedback, o.no_feedback / o.issued if o.issued else None),
        ):
            writer.writerow(
                _row(
                    "outcomes",
                    topic=o.topic,
                    outcome=outcome,
                    count=count,
                    rate=f"{rate:.4f}" if rate is not None else "",
                )
            )
    unknown = summary.unknown
    for outcome, count in (
        ("items", unknown.items),
        ("cards", unknown.cards),
        ("accepted", unknown.accepted),
        ("overridden", unknown.overridden),
    ):
        writer.writerow(_row("unknown_card_feedback", outcome=outcome, count=count))
    for r in summary.reasons:
        writer.writerow(
            _row(
                "override_reasons",
                topic=r.topic or "unknown card",
                reason_system=r.system,
                reason_code=r.code,
                reason_display=r.display,
                count=r.count,
            )
        )
    return buffer.getvalue()
