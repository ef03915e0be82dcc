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
        is longer than 21 days: expectedSupplyDuration, else validityPeriod, else the dosage's
        bounds, else quantity / (dose x doses per day); times 1 + numberOfRepeatsAllowed
        (dosage.course_length). 21 days exactly does not fire; 22 does.
  When (patient-view, encounter-start): an active relaxant authored more than 21 days ago.
  Then: `warning` "Muscle relaxants are for short courses (2-3 weeks) only"; on a draft, a
        suggestion to update it to a 14-day course.
muscle-relaxant-older-adult
  When (order-select, order-sign): a drafted Beers-list relaxant (VSAC 2.16.840.1.113883.3.464.1003.1062
        or the six ingredients) and the patient is 65 or older by Patient.birthDate.
  Then: `warning` citing AGS Beers 2023.
Both need back-pain context (checked by rules.evaluate). The order rules read drafted orders only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cds_service.logic.config import RuleConfig
from cds_service.logic.dates import parse_fhir_date
from cds_service.logic.dosage import CourseLength, course_length, supply_days_per_dispense
from cds_service.logic.fhir import MedicationRequest
from cds_service.logic.findings import Finding, Indicator, Topic
from cds_service.logic.medications import (
    identify,
    is_active,
    is_beers_muscle_relaxant,
    is_muscle_relaxant,
)
from cds_service.logic.record import PatientRecord


@dataclass(frozen=True, kw_only=True)
class RelaxantDurationFinding(Finding):
    """A relaxant course longer than the limit: drafted (intended course) or active (days on it)."""

    medication: str
    days: float
    basis: str
    drafted: bool
    per_dispense: CourseLength | None = None
    fills: int = 1


@dataclass(frozen=True, kw_only=True)
class RelaxantOlderAdultFinding(Finding):
    medication: str
    age_years: int


def _reference(request: MedicationRequest) -> str | None:
    return f"MedicationRequest/{request.id}" if request.id else None


def drafted_course_too_long(record: PatientRecord, config: RuleConfig) -> Sequence[Finding]:
    """Order hooks: drafted relaxants whose intended course exceeds the limit."""
    findings: list[Finding] = []
    for request in record.medication_orders_to_check:
        view = identify(request, record)
        if not is_muscle_relaxant(view):
            continue
        course = course_length(request)
        # Rounded so that 66 tablets at 3 a day is 22 days, not 21.999...; unknown course: no card.
        if course is None or round(course.days, 2) <= config.muscle_relaxant_max_days:
            continue
        repeats = request.dispenseRequest.numberOfRepeatsAllowed if request.dispenseRequest else 0
        findings.append(
            RelaxantDurationFinding(
                topic=Topic.MUSCLE_RELAXANT_DURATION,
                indicator=Indicator.WARNING,
                order_reference=_reference(request),
                medication=view.label,
                days=course.days,
                basis=course.basis,
                drafted=True,
                per_dispense=supply_days_per_dispense(request),
                fills=1 + max(repeats or 0, 0),
            )
        )
    return findings


def active_too_long(record: PatientRecord, config: RuleConfig) -> Sequence[Finding]:
    """Chart hooks: active relaxants authored more than the limit ago.

    Assumption: an active order without authoredOn cannot be dated, so it does not fire."""
    findings: list[Finding] = []
    for request in record.medication_requests:
        if not is_active(request):
            continue
        authored = parse_fhir_date(request.authoredOn)
        if authored is None:
            continue
        days = (record.today - authored).days
        if days <= config.muscle_relaxant_max_days:
            continue
        view = identify(request, record)
        if not is_muscle_relaxant(view):
            continue
        findings.append(
            RelaxantDurationFinding(
                topic=Topic.MUSCLE_RELAXANT_DURATION,
                indicator=Indicator.WARNING,
                order_reference=_reference(request),
                medication=view.label,
                days=float(days),
                basis=f"active since {authored.isoformat()}",
                drafted=False,
            )
        )
    return findings


def beers_older_adult(record: PatientRecord, config: RuleConfig) -> Sequence[Finding]:
    """Order hooks: a drafted Beers-list relaxant for a patient at or over the Beers age.

    Assumption: without a birthDate the age is unknown and the rule does not fire."""
    age = record.age_years
    if age is None or age < config.beers_age_years:
        return []
    findings: list[Finding] = []
    for request in record.medication_orders_to_check:
        view = identify(request, record)
        if is_beers_muscle_relaxant(view):
            findings.append(
                RelaxantOlderAdultFinding(
                    topic=Topic.MUSCLE_RELAXANT_OLDER_ADULT,
                    indicator=Indicator.WARNING,
                    order_reference=_reference(request),
                    medication=view.label,
                    age_years=age,
                )
            )
    return findings
