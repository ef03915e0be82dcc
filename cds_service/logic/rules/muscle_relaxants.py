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
  Then: `warning` citing AGS Beers 2023, with a suggestion that deletes the draft (Beers: avoid).
  One card per order (RULES.md v2): the finding also gives the intended course (and whether it
        is over the limit), and the drafted-course rule skips every order this rule takes, so
        "avoid" and "shorten to 14 days" never appear side by side.
Citations: a duration card cites the drug's own label when that label gives the short-course
limit (cyclobenzaprine, carisoprodol: "up to two or three weeks"), else ACP 2017; never another
drug's label. Decided here, on the finding (rules.evaluate keeps a finding's own citation).
Both need back-pain context (checked by rules.evaluate). The order rules read drafted orders only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from cds_service.logic.chart import Chart
from cds_service.logic.config import RuleConfig
from cds_service.logic.findings import Finding, Indicator, Topic
from cds_service.logic.guidelines import Citation
from cds_service.logic.medication_orders import MedicationOrder
from cds_service.logic.medications import MUSCLE_RELAXANTS, drug_name_in
from cds_service.logic.rules.rule import CHART_HOOKS, ORDER_HOOKS, Rule
from cds_service.logic.supply import Supply
from cds_service.logic.terminology import normalise_code, normalise_system, value_set

# What a duration card cites: the drug's own label where that label gives the short-course limit
# ("should be used only for short periods (up to two or three weeks)"), with ACP 2017; for every
# other relaxant ACP 2017 alone (RULES.md: that drug's own label, never another drug's).
_LABEL_CITATIONS: tuple[tuple[re.Pattern[str], Citation], ...] = (
    (
        re.compile(r"\b(?:cyclobenzaprine|flexeril|amrix|fexmid)\b", re.IGNORECASE),
        Citation("muscle-relaxant-short-course", ("muscle-relaxant-short-course", "acp-2017")),
    ),
    (
        re.compile(r"\b(?:carisoprodol|soma)\b", re.IGNORECASE),
        Citation("carisoprodol-label", ("carisoprodol-label", "acp-2017")),
    ),
)
GUIDELINE_CITATION = Citation("acp-2017", ("acp-2017",))


def duration_citation(order: MedicationOrder) -> Citation:
    """The order's own label when it gives the limit (by the order's names, its ingredients'
    names, or the value-set display of its code), else ACP 2017."""
    texts = order.medication.names()
    relaxants = value_set(MUSCLE_RELAXANTS)
    concept = order.concept
    coding = relaxants.matching_coding(concept)
    if coding is not None and coding.code:
        system = normalise_system(coding.system)
        display = relaxants.displays.get((system, normalise_code(system, coding.code)))
        if display:
            texts.append(display)
    for pattern, citation in _LABEL_CITATIONS:
        if any(pattern.search(text) for text in texts):
            return citation
    return GUIDELINE_CITATION


@dataclass(frozen=True, kw_only=True)
class RelaxantDurationFinding(Finding):
    """A relaxant course longer than the limit: drafted (intended course, `days`) or active
    (`days` since it was ordered, `basis` "authoredOn <date>")."""

    medication: str
    # The ingredient (or brand) the order's name gives, as written there, for a short summary.
    drug_name: str | None = None
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
    """A Beers-list relaxant drafted for a patient at or over the Beers age: the one card for
    this order (RULES.md v2), so it also carries the intended course."""

    medication: str
    drug_name: str | None = None
    age_years: int
    from_age_years: int
    # The intended course (one fill x fills), None when it cannot be computed.
    course_days: float | None = None
    course_basis: str | None = None
    limit_days: int = 0
    # The course is longer than limit_days (what the duration card would have said).
    course_over_limit: bool = False


def _beers_applies(chart: Chart, order: MedicationOrder) -> bool:
    """The older-adult rule takes this drafted order (so the duration rule leaves it)."""
    age = chart.record.age_years
    return age is not None and age >= chart.config.beers_age_years and order.beers_muscle_relaxant


def _over_limit(days: float, limit: int) -> bool:
    # Rounded so that 66 tablets at 3 a day is 22 days, not 21.999...
    return round(days, 2) > limit


def drafted_course_too_long(chart: Chart) -> Sequence[Finding]:
    """Order hooks: drafted relaxants whose intended course exceeds the limit."""
    config = chart.config
    findings: list[Finding] = []
    for order in chart.medications_to_check:
        # One card per order (RULES.md v2): a Beers order gets the older-adult card only.
        if not order.muscle_relaxant or _beers_applies(chart, order):
            continue
        course = order.course
        # Unknown course: no card.
        if course is None or not _over_limit(course.days, config.muscle_relaxant_max_days):
            continue
        findings.append(
            _duration_finding(
                order,
                config,
                days=course.days,
                basis=course.basis,
                drafted=True,
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
            _duration_finding(
                order,
                config,
                days=float(days),
                basis=f"authoredOn {authored.isoformat()}",
                drafted=False,
            )
        )
    return findings


def _duration_finding(
    order: MedicationOrder,
    config: RuleConfig,
    *,
    days: float,
    basis: str,
    drafted: bool,
    per_dispense: Supply | None = None,
    fills: int = 1,
) -> RelaxantDurationFinding:
    """The finding of either duration rule: a drafted course, or an order active too long."""
    return RelaxantDurationFinding(
        topic=Topic.MUSCLE_RELAXANT_DURATION,
        indicator=Indicator.WARNING,
        order_reference=order.reference,
        citation=duration_citation(order),
        medication=order.label,
        drug_name=drug_name_in(order.medication, MUSCLE_RELAXANTS),
        days=days,
        basis=basis,
        drafted=drafted,
        limit_days=config.muscle_relaxant_max_days,
        suggested_days=config.muscle_relaxant_suggested_days,
        per_dispense=per_dispense,
        fills=fills,
    )


def beers_older_adult(chart: Chart) -> Sequence[Finding]:
    """Order hooks: a drafted Beers-list relaxant for a patient at or over the Beers age.

    Assumption: without a birthDate the age is unknown and the rule does not fire."""
    age, config = chart.record.age_years, chart.config
    if age is None:
        return []
    findings: list[Finding] = []
    for order in chart.medications_to_check:
        if not _beers_applies(chart, order):
            continue
        course = order.course
        findings.append(
            RelaxantOlderAdultFinding(
                topic=Topic.MUSCLE_RELAXANT_OLDER_ADULT,
                indicator=Indicator.WARNING,
                order_reference=order.reference,
                medication=order.label,
                drug_name=drug_name_in(order.medication, MUSCLE_RELAXANTS),
                age_years=age,
                from_age_years=config.beers_age_years,
                course_days=course.days if course is not None else None,
                course_basis=course.basis if course is not None else None,
                limit_days=config.muscle_relaxant_max_days,
                course_over_limit=course is not None
                and _over_limit(course.days, config.muscle_relaxant_max_days),
            )
        )
    return findings


# The Rule's citation for a duration finding that brings none; duration_citation gives each
# finding its drug's own (rules.evaluate keeps it).
_DURATION_CITATION = GUIDELINE_CITATION

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
