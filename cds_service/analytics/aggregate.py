"""How often each card fires, and whether clinicians accept or override it. Pure: in, the counts
the database keeps per week and topic (store/rollup.py keeps them by these definitions); out, a
Summary (the page and the CSV render it).

Definitions, also printed on the page:
- Week: the ISO week (Monday to Sunday, UTC) of the card's `issued_at`. The window is the last
  N weeks up to and including the current one.
- A card's outcome is the LAST feedback received for it (an EHR may send "accepted" and later
  "overridden"); a card without feedback counts as "no feedback".
- Acceptance rate and override rate are accepted / overridden cards over the cards issued in the
  window, so accepted + overridden + no feedback = 100 %. CDS Hooks feedback is optional, so a
  large "no feedback" share usually means the EHR does not send it, not that cards were ignored.
- Override reasons: each overridden feedback item counts once (items repeated verbatim are stored
  once), grouped by topic, reason system and code; an override without a reason is its own row.
  The display shown is the service's own for its own codes (urn:lbp-cds:override-reason;
  EHRs may send none), else the display most often received with the code (of equally common
  ones, the first in alphabetical order).
- Feedback for a card uuid the card log does not hold (issued elsewhere, never issued, or
  pruned by retention) is counted apart, when received from the window's first Monday on, and
  never joins a topic's rates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from cds_service.cards.override_reasons import own_display
from cds_service.logic.findings import Topic


def week_start(day: date) -> date:
    """The Monday of the ISO week holding `day`."""
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True)
class Window:
    """The weeks shown, oldest first (their Mondays)."""

    weeks: tuple[date, ...]

    @classmethod
    def ending(cls, today: date, weeks: int) -> Window:
        if weeks < 1:
            raise ValueError("the window needs at least one week")
        last = week_start(today)
        return cls(tuple(last - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)))

    @property
    def since(self) -> datetime:
        """The first instant of the window (Monday 00:00 UTC of the oldest week)."""
        return datetime.combine(self.weeks[0], time.min, tzinfo=UTC)


@dataclass(frozen=True)
class TopicOutcome:
    topic: str
    issued: int
    accepted: int
    overridden: int

    @property
    def no_feedback(self) -> int:
        return self.issued - self.accepted - self.overridden

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.issued if self.issued else None

    @property
    def override_rate(self) -> float | None:
        return self.overridden / self.issued if self.issued else None


@dataclass(frozen=True)
class ReasonCount:
    topic: str | None  # None: feedback for a card the card log does not hold
    system: str | None
    code: str | None  # None: overridden without a reason
    display: str | None
    count: int


@dataclass(frozen=True)
class UnknownCardFeedback:
    items: int
    cards: int
    accepted: int
    overridden: int


@dataclass(frozen=True)
class Summary:
    window: Window
    topics: tuple[str, ...]
    weekly: Mapping[tuple[str, date], int]
    outcomes: tuple[TopicOutcome, ...]
    reasons: tuple[ReasonCount, ...]
    unknown: UnknownCardFeedback
    cards_issued: int
    feedback_items: int

    def issued(self, topic: str, week: date) -> int:
        return self.weekly.get((topic, week), 0)

    def week_total(self, week: date) -> int:
        return sum(self.issued(topic, week) for topic in self.topics)


def _topic_order(found: Iterable[str]) -> tuple[str, ...]:
    """Every contract topic (a topic that never fired shows as 0), then any other, sorted."""
    contract = [t.value for t in Topic]
    return (*contract, *sorted(set(found) - set(contract)))


def summarise(counts: Mapping[str, Any], window: Window) -> Summary:
    """The store's counts for `window` (store/rollup.py `read_weeks`: `weekly` rows per week and
    topic, `reasons` per topic and coding, `unknown`) -> the Summary of the window."""
    shown = set(window.weeks)
    weekly: Counter[tuple[str, date]] = Counter()
    issued: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    overridden: Counter[str] = Counter()
    items = 0
    for row in counts["weekly"]:
        topic, week = row["topic"], row["week"]
        if week not in shown or not row["issued"]:
            continue
        weekly[(topic, week)] += row["issued"]
        issued[topic] += row["issued"]
        accepted[topic] += row["accepted"]
        overridden[topic] += row["overridden"]
        items += row["feedback_items"]

    reason_counts: Counter[tuple[str | None, str | None, str | None]] = Counter()
    displays: dict[tuple[str | None, str | None, str | None], Counter[str]] = {}
    for row in counts["reasons"]:
        key = (row["topic"], row["system"], row["code"])
        reason_counts[key] += row["count"]
        if row["display"]:
            displays.setdefault(key, Counter())[row["display"]] += row["count"]

    def display(topic: str | None, system: str | None, code: str | None) -> str | None:
        sent = displays.get((topic, system, code))
        if not sent:
            return None
        return min(sent, key=lambda text: (-sent[text], text))

    topics = _topic_order(issued)
    outcomes = tuple(TopicOutcome(t, issued[t], accepted[t], overridden[t]) for t in topics)
    reasons = tuple(
        ReasonCount(
            topic=topic,
            system=system,
            code=code,
            display=own_display(system, code) or display(topic, system, code),
            count=count,
        )
        for (topic, system, code), count in sorted(
            reason_counts.items(),
            key=lambda kv: (-kv[1], kv[0][0] or "~", kv[0][2] or "~", kv[0][1] or ""),
        )
        if count
    )
    unknown = UnknownCardFeedback(**{k: int(v) for k, v in counts["unknown"].items()})
    return Summary(
        window=window,
        topics=topics,
        weekly=dict(weekly),
        outcomes=outcomes,
        reasons=reasons,
        unknown=unknown,
        cards_issued=sum(issued.values()),
        feedback_items=items + unknown.items,
    )
