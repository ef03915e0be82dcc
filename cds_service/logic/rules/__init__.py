"""The rules, and the one `evaluate` entry point.

Each rule module ends with its `RULE` record (logic/rules/rule.py): hooks, topics with what each
card cites, and its evaluate function. `evaluate` runs the rules of the hook over one Chart and
completes each finding with what its Rule cites and the red flags found for it, so the cards
only word findings. No back-pain context, no finding; nor for a patient these guidelines do
not address (RULES.md v2): a child, or a patient in end-of-life care.
"""

from __future__ import annotations

from dataclasses import replace

from cds_service.logic import end_of_life
from cds_service.logic.chart import Chart
from cds_service.logic.config import RuleConfig
from cds_service.logic.findings import Finding, most_urgent_first
from cds_service.logic.record import PatientRecord
from cds_service.logic.rules import imaging, muscle_relaxants, opioids, startback
from cds_service.logic.rules.rule import Rule

RULES: tuple[Rule, ...] = (
    imaging.RULE,
    startback.RULE,
    opioids.RULE,
    muscle_relaxants.DRAFTED_COURSE_RULE,
    muscle_relaxants.ACTIVE_COURSE_RULE,
    muscle_relaxants.OLDER_ADULT_RULE,
)


def evaluate(record: PatientRecord, config: RuleConfig) -> list[Finding]:
    """Every finding of the rules that run on this hook, most urgent first."""
    if not record.has_back_pain_context:
        return []
    # Adults only: every guideline behind the cards is for adults (birthDate unknown = adult).
    if record.age_years is not None and record.age_years < config.min_age_years:
        return []
    if end_of_life.in_end_of_life_care(record, config):
        return []
    chart = Chart(record, config)
    findings: list[Finding] = []
    for rule in RULES:
        if record.hook not in rule.hooks:
            continue
        for finding in rule.evaluate(chart):
            findings.append(
                replace(
                    finding,
                    # A finding may bring its own (a duration card cites its drug's label).
                    citation=finding.citation or rule.topics[finding.topic],
                    red_flags=chart.red_flags_for(finding.order_reference),
                )
            )
    return most_urgent_first(findings)
