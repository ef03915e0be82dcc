"""The rule catalogue: which rules run on which hook, and the one `evaluate` entry point.

Each rule module exposes `evaluate(record, config) -> Sequence[Finding]`; it is registered here
once with the hooks it serves and the guidelines it rests on. No back-pain context, no finding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cds_service.logic.config import RuleConfig
from cds_service.logic.findings import Finding, Topic, most_urgent_first
from cds_service.logic.guidelines import GUIDELINES
from cds_service.logic.record import PatientRecord

RuleFunction = Callable[[PatientRecord, RuleConfig], Sequence[Finding]]

PATIENT_VIEW = "patient-view"
ENCOUNTER_START = "encounter-start"
ORDER_SELECT = "order-select"
ORDER_SIGN = "order-sign"
CHART_HOOKS = frozenset({PATIENT_VIEW, ENCOUNTER_START})
ORDER_HOOKS = frozenset({ORDER_SELECT, ORDER_SIGN})


@dataclass(frozen=True)
class Rule:
    topics: tuple[Topic, ...]
    hooks: frozenset[str]
    guideline_ids: tuple[str, ...]
    evaluate: RuleFunction


def _catalogue() -> tuple[Rule, ...]:
    # Rule modules register here as they land (issues 3, 4 and 5).
    from cds_service.logic import imaging, muscle_relaxants, opioids, startback_rules

    return (
        Rule(
            topics=(Topic.IMAGING_WITHOUT_RED_FLAGS,),
            hooks=ORDER_HOOKS,
            guideline_ids=imaging.GUIDELINE_IDS,
            evaluate=imaging.evaluate,
        ),
        Rule(
            (Topic.STARTBACK_SCREENING, Topic.STARTBACK_RESULT),
            CHART_HOOKS,
            ("nice-ng59", "keele-startback"),
            startback_rules.evaluate,
        ),
        Rule((Topic.OPIOID_ORDER,), ORDER_HOOKS, ("cdc-opioid-2022", "acp-2017"), opioids.evaluate),
        Rule(
            (Topic.MUSCLE_RELAXANT_DURATION,),
            ORDER_HOOKS,
            ("muscle-relaxant-short-course", "acp-2017"),
            muscle_relaxants.drafted_course_too_long,
        ),
        Rule(
            (Topic.MUSCLE_RELAXANT_DURATION,),
            CHART_HOOKS,
            ("muscle-relaxant-short-course", "acp-2017"),
            muscle_relaxants.active_too_long,
        ),
        Rule(
            (Topic.MUSCLE_RELAXANT_OLDER_ADULT,),
            ORDER_HOOKS,
            ("ags-beers-2023", "acp-2017"),
            muscle_relaxants.beers_older_adult,
        ),
    )


RULES: tuple[Rule, ...] = _catalogue()

for _rule in RULES:
    for _gid in _rule.guideline_ids:
        if _gid not in GUIDELINES:
            raise ValueError(f"rule {_rule.topics} cites unknown guideline {_gid}")


def evaluate(record: PatientRecord, config: RuleConfig) -> list[Finding]:
    """All findings for this hook call, most urgent first."""
    if not record.has_back_pain_context:
        return []
    findings: list[Finding] = []
    for rule in RULES:
        if record.hook in rule.hooks:
            findings.extend(rule.evaluate(record, config))
    return most_urgent_first(findings)
