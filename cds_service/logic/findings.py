"""Findings: what a rule concluded, with the figures a card needs, before any wording."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cds_service.logic.guidelines import Citation
from cds_service.logic.red_flags import RedFlagReport

CARD_TOPIC_SYSTEM = "urn:lbp-cds:card-topic"


class Topic(StrEnum):
    """Card topic codes of CONTRACT.md (system urn:lbp-cds:card-topic)."""

    IMAGING_WITHOUT_RED_FLAGS = "imaging-without-red-flags"
    OPIOID_ORDER = "opioid-order"
    MUSCLE_RELAXANT_DURATION = "muscle-relaxant-duration"
    MUSCLE_RELAXANT_OLDER_ADULT = "muscle-relaxant-older-adult"
    STARTBACK_SCREENING = "startback-screening"
    STARTBACK_RESULT = "startback-result"


class Indicator(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def urgency(self) -> int:
        return {"critical": 0, "warning": 1, "info": 2}[self.value]


@dataclass(frozen=True, kw_only=True)
class Finding:
    """Base of every rule's finding: the complete clinical verdict its card words. Subclasses add
    the figures and decisions their card shows."""

    topic: Topic
    indicator: Indicator
    # "Type/id" of the draft order the finding is about, when there is one.
    order_reference: str | None = None
    # Completed by rules.evaluate: what its card cites (the Rule's citation for the topic, unless
    # the rule chose a more specific one, such as the relaxant's own label), and the red flags
    # found for it (the record's, plus this order's stated reason), computed once per call.
    citation: Citation | None = None
    red_flags: RedFlagReport | None = None


def most_urgent_first(findings: list[Finding]) -> list[Finding]:
    """critical, then warning, then info; rule order is kept within a level."""
    return sorted(findings, key=lambda f: f.indicator.urgency)
