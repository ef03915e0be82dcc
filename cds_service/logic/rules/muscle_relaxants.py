"""muscle-relaxant-duration and muscle-relaxant-older-adult (RULES.md).

Recommendations:
- Cyclobenzaprine prescribing information: "should be used only for short periods (up to two or
  three weeks)"; ACP 2017: for acute or subacute low back pain, NSAIDs or skeletal muscle relaxants
  if a drug is wanted (evidence is for short courses).
- AGS Beers Criteria 2023: avoid carisoprodol, chlorzoxazone, cyclobenzaprine, metaxalone,
  methocarbamol and orphenadrine in adults 65 and older (anticholinergic effects, sedation, risk of
  falls and fracture; effectiveness at tolerated doses is questionable). Strong recommendation,
  moderate evidence. Baclofen, tizanidine and dantrolene are not on the list (used for spasticity).

muscle-relaxant-duration
  When (order-select, order-sign): a drafted skeletal muscle relaxant to check whose intended course
        (supply.py: one fill's days supply x (1 + numberOfRepeatsAllowed); never the
        validityPeriod) is longer than 21 days. 21 days exactly does not fire; 22 does.
  When (patient-view, encounter-start): an active relaxant authored more than 21 days ago;
        "active" is status active and current (medication_orders.py, RULES.md v2 "Current
        orders"): a stale record (its supply ran out, or no supply and authored over 90 days
        ago) is no course the patient is on.
  Then: `warning` "Muscle relaxants are for short courses (2-3 weeks) only"; on a draft, a
        suggestion to update it to a 14-day course; on the chart hooks the card says how long
        ago the order was written ("ordered N days ago and still active"), not how long the
        patient took it (RULES.md v2).
muscle-relaxant-older-adult
  When (order-select, order-sign): a drafted Beers-list relaxant (VSAC 2.16.840.1.113883.3.464.1003.1062
        or the six ingredients) and the patient is 65 or older by Patient.birthDate.
  Then: `warning` citing AGS Beers 2023.
Both need back-pain context (checked by rules.evaluate). The order rules read drafted orders only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cds_service.logic.chart import Chart
from cds_service.logic.findings import Finding, Indicator, Topic
from cds_service.logic.guidelines import Citation
from cds_service.logic.medication_orders import MedicationOrder
from cds_service.logic.rules.rule import CHART_HOOKS, ORDER_HOOKS, Rule
from cds_service.logic.supply import Supply


@dataclass(frozen=True, kw_only=True)
class RelaxantDurationFinding(Finding):
    """A relaxant course longer than the limit: drafted (intended course, `days`) or active
    (`days` since it was ordered, `basis` "authoredOn <date>")."""

    medication: str
    days: float
    basis: str
    drafted: bool
    limit_days: int
    # What the update suggestion shortens a drafted course to (days, no refills).
    suggested_days: int
    per_dispense: Supply | None = None
    fills: int = 1


@dataclass(frozen=True, kw_only=True)
class RelaxantOlderAdultFinding(Finding):
    medication: str
    age_years: int
    from_age_years: int


def drafted_course_too_long(chart: Chart) -> Sequence[Finding]:
    """Order hooks: drafted relaxants whose intended course exceeds the limit."""
    config = chart.config
    findings: list[Finding] = []
    for order in chart.medications_to_check:
        if not order.muscle_relaxant:
            continue
        course = order.course
        # Rounded so that 66 tablets at 3 a day is 22 days, not 21.999...; unknown course: no card.
        if course is None or round(course.days, 2) <= config.muscle_relaxant_max_days:
            continue
        findings.append(
            RelaxantDurationFinding(
                topic=Topic.MUSCLE_RELAXANT_DURATION,
                indicator=Indicator.WARNING,
                order_reference=order.reference,
                medication=order.label,
                days=course.days,
                basis=course.basis,
                drafted=True,
                limit_days=config.muscle_relaxant_max_days,
                suggested_days=config.muscle_relaxant_suggested_days,
                per_dispense=course.per_fill,
                fills=course.fills,
            )
        )
    return findings


def active_too_long(chart: Chart) -> Sequence[Finding]:
    """Chart hooks: current active relaxants authored more than the limit ago.

    Assumption: an active order without authoredOn cannot be dated, so it does not fire."""
    today, limit = chart.record.today, chart.config.muscle_relaxant_max_days

    def ordered_too_long_ago(order: MedicationOrder) -> bool:
        # Dated first: an order is identified only when its age could matter.
        authored = order.authored
        return authored is not None and (today - authored).days > limit and order.muscle_relaxant

    config = chart.config
    findings: list[Finding] = []
    for order in chart.active_of(ordered_too_long_ago).current:
        authored = order.authored
        assert authored is not None  # ordered_too_long_ago
        days = (today - authored).days
        findings.append(
            RelaxantDurationFinding(
                topic=Topic.MUSCLE_RELAXANT_DURATION,
                indicator=Indicator.WARNING,
                order_reference=order.reference,
                medication=order.label,
                days=float(days),
                basis=f"authoredOn {authored.isoformat()}",
                drafted=False,
                limit_days=config.muscle_relaxant_max_days,
                suggested_days=config.muscle_relaxant_suggested_days,
            )
        )
    return findings


def beers_older_adult(chart: Chart) -> Sequence[Finding]:
    """Order hooks: a drafted Beers-list relaxant for a patient at or over the Beers age.

    Assumption: without a birthDate the age is unknown and the rule does not fire."""
    age, from_age = chart.record.age_years, chart.config.beers_age_years
    if age is None or age < from_age:
        return []
    return [
        RelaxantOlderAdultFinding(
            topic=Topic.MUSCLE_RELAXANT_OLDER_ADULT,
            indicator=Indicator.WARNING,
            order_reference=order.reference,
            medication=order.label,
            age_years=age,
            from_age_years=from_age,
        )
        for order in chart.medications_to_check
        if order.beers_muscle_relaxant
    ]


# The label that says relaxants are for short courses, and ACP 2017's place for them.
_DURATION_CITATION = Citation(
    "muscle-relaxant-short-course", ("muscle-relaxant-short-course", "acp-2017")
)

DRAFTED_COURSE_RULE = Rule(
    id="muscle-relaxant-duration-drafted",
    hooks=ORDER_HOOKS,
    topics={Topic.MUSCLE_RELAXANT_DURATION: _DURATION_CITATION},
    evaluate=drafted_course_too_long,
)
ACTIVE_COURSE_RULE = Rule(
    id="muscle-relaxant-duration-active",
    hooks=CHART_HOOKS,
    topics={Topic.MUSCLE_RELAXANT_DURATION: _DURATION_CITATION},
    evaluate=active_too_long,
)
OLDER_ADULT_RULE = Rule(
    id="muscle-relaxant-older-adult",
    hooks=ORDER_HOOKS,
    topics={
        Topic.MUSCLE_RELAXANT_OLDER_ADULT: Citation(
            "ags-beers-2023", ("ags-beers-2023", "acp-2017")
        )
    },
    evaluate=beers_older_adult,
)
