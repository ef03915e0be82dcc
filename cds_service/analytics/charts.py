"""Server-rendered SVG charts of a Summary: plain SVG text, no JavaScript, no external files.

Every label that came from outside (topics, override reason displays) is escaped, and every bar
carries a <title> with its exact figure for a tooltip and for screen readers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from cds_service.analytics.aggregate import ReasonCount, Summary

# Okabe-Ito, distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
OUTCOME_COLOURS = {"accepted": "#009E73", "overridden": "#D55E00", "no feedback": "#C8CCD2"}
FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"'


def topic_colours(topics: Sequence[str]) -> dict[str, str]:
    return {t: PALETTE[i % len(PALETTE)] for i, t in enumerate(topics)}


def _nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 x 10^k at or above `value` (at least 1), for a readable axis."""
    if value <= 1:
        return 1
    magnitude: int = 10 ** int(math.floor(math.log10(value)))
    for step in (1, 2, 5):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _text(
    x: float, y: float, body: str, *, size: int = 11, anchor: str = "start", **attrs: str
) -> str:
    extra = "".join(f' {k.rstrip("_").replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
        f"{escape(body)}</text>"
    )


def _rect(x: float, y: float, w: float, h: float, fill: str, title: str, cls: str = "") -> str:
    klass = f' class="{escape(cls)}"' if cls else ""
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
        f'fill="{fill}"{klass}><title>{escape(title)}</title></rect>'
    )


def _svg(width: int, height: int, label: str, body: list[str], chart_id: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{chart_id}" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" {FONT} '
        f'aria-labelledby="{chart_id}-title"><title id="{chart_id}-title">{escape(label)}</title>'
        + "".join(body)
        + "</svg>"
    )


def weekly_chart(summary: Summary) -> str:
    """Stacked columns: cards issued per week, one colour per topic, legend on the right."""
    width, height = 860, 320
    left, right, top, bottom = 44, 250, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    weeks = summary.window.weeks
    colours = topic_colours(summary.topics)
    peak = _nice_ceiling(max((summary.week_total(w) for w in weeks), default=0))
    body: list[str] = []
    for i in range(5):  # horizontal grid lines and y ticks
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        body.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#E3E6EA"/>'
        )
        if value == int(value):
            body.append(_text(left - 6, y + 4, f"{int(value)}", anchor="end", fill="#555"))
    band = plot_w / len(weeks)
    bar = max(min(band * 0.7, 48), 2)
    label_every = math.ceil(len(weeks) / 13)
    for i, week in enumerate(weeks):
        x = left + band * i + (band - bar) / 2
        y = top + plot_h
        for topic in summary.topics:
            count = summary.issued(topic, week)
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            title = f"{topic}, week of {week.isoformat()}: {count} card{'s' * (count != 1)}"
            body.append(_rect(x, y, bar, h, colours[topic], title, "bar"))
        if i % label_every == 0:
            body.append(
                _text(
                    left + band * (i + 0.5),
                    top + plot_h + 16,
                    week.strftime("%d %b"),
                    anchor="middle",
                    fill="#555",
                )
            )
    body.append(_text(left, height - 6, "week starting (Monday, UTC)", size=10, fill="#777"))
    legend_x = left + plot_w + 20
    for i, topic in enumerate(summary.topics):
        y = top + 8 + i * 22
        total = sum(summary.issued(topic, w) for w in weeks)
        body.append(
            f'<rect x="{legend_x}" y="{y - 9}" width="12" height="12" fill="{colours[topic]}"/>'
        )
        body.append(_text(legend_x + 18, y + 1, topic, size=12, class_="topic-label"))
        body.append(_text(width - 6, y + 1, str(total), size=12, anchor="end", fill="#555"))
    return _svg(width, height, "Cards issued per topic per week", body, "chart-weekly")


def outcomes_chart(summary: Summary) -> str:
    """One 100 % bar per topic: accepted, overridden, no feedback (share of cards issued)."""
    row, top = 30, 34
    left, bar_w = 230, 470
    width = left + bar_w + 140
    height = top + row * len(summary.outcomes) + 10
    body: list[str] = []
    x = float(left)
    for name, colour in OUTCOME_COLOURS.items():
        body.append(f'<rect x="{x}" y="8" width="12" height="12" fill="{colour}"/>')
        body.append(_text(x + 18, 18, name, size=12))
        x += 30 + 8 * len(name)
    for i, outcome in enumerate(summary.outcomes):
        y = top + i * row
        body.append(
            _text(left - 10, y + 15, outcome.topic, size=12, anchor="end", class_="topic-label")
        )
        if not outcome.issued:
            body.append(
                f'<rect x="{left}" y="{y + 3}" width="{bar_w}" height="18" fill="none" '
                f'stroke="#D5D9DE" stroke-dasharray="4 3"/>'
            )
            body.append(_text(left + 8, y + 16, "no cards issued", size=11, fill="#777"))
            continue
        x = float(left)
        parts = (
            ("accepted", outcome.accepted),
            ("overridden", outcome.overridden),
            ("no feedback", outcome.no_feedback),
        )
        for name, count in parts:
            if not count:
                continue
            w = bar_w * count / outcome.issued
            share = 100 * count / outcome.issued
            title = f"{outcome.topic}: {count} of {outcome.issued} {name} ({share:.0f} %)"
            body.append(_rect(x, y + 3, w, 18, OUTCOME_COLOURS[name], title, "bar"))
            if w > 34:
                body.append(
                    _text(
                        x + w / 2,
                        y + 16,
                        f"{share:.0f}%",
                        size=11,
                        anchor="middle",
                        fill="#fff" if name != "no feedback" else "#333",
                    )
                )
            x += w
        body.append(
            _text(left + bar_w + 10, y + 16, f"{outcome.issued} issued", size=11, fill="#555")
        )
    return _svg(width, height, "Acceptance and override per topic", body, "chart-outcomes")


def reason_label(reason: ReasonCount) -> str:
    if reason.code is None:
        return "(no reason given)"
    if not reason.display or reason.display == reason.code:
        return reason.code  # a code without a display is shown once, not "code (code)"
    return f"{reason.display} ({reason.code})"


def reasons_chart(reasons: Sequence[ReasonCount], limit: int = 10) -> str:
    """Horizontal bars: the most common override reasons (topic under each label)."""
    shown = list(reasons[:limit])
    row, top, left, bar_w = 40, 8, 400, 330
    width = left + bar_w + 60
    if not shown:
        body = [_text(8, 24, "No overrides in this window.", size=12, fill="#555")]
        return _svg(width, 36, "Most common override reasons", body, "chart-reasons")
    height = top + row * len(shown) + 4
    peak = max(r.count for r in shown)
    body = []
    for i, reason in enumerate(shown):
        y = top + i * row
        label = reason_label(reason)
        if len(label) > 52:
            label = label[:51] + "…"
        body.append(_text(left - 10, y + 14, label, size=12, anchor="end"))
        body.append(
            _text(
                left - 10,
                y + 28,
                reason.topic or "unknown card",
                size=10,
                anchor="end",
                fill="#777",
                class_="topic-label",
            )
        )
        w = bar_w * reason.count / peak
        title = f"{reason_label(reason)} [{reason.system or 'no system'}], {reason.topic or 'unknown card'}: {reason.count}"
        body.append(_rect(left, y + 6, w, 20, "#D55E00", title, "bar"))
        body.append(_text(left + w + 6, y + 21, str(reason.count), size=12, fill="#333"))
    return _svg(width, height, "Most common override reasons", body, "chart-reasons")
