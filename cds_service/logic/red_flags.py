"""Red flags: what makes early imaging of the lumbar spine reasonable (RULES.md "Red flags").

Recommendation (ACP 2011 high-value care, Table 2; ACR Appropriateness Criteria LBP 2021,
variants 4-7; Choosing Wisely / NASS; CMS166 exclusion windows):
  When the record holds cancer (active or history), spinal infection, fever, IV drug use,
  immunosuppression, prolonged corticosteroid use, osteoporosis or a fragility fracture,
  significant trauma or a vertebral fracture, cauda equina signs (urinary retention, saddle
  anaesthesia), a severe or progressive neurological deficit, unexplained weight loss or prior
  lumbar surgery,
  Then early imaging may be justified: the imaging warning is not shown, and other cards may
  name the flags found.

How each is read (codes live in the `red-flag-*` value sets, windows and thresholds in RuleConfig):
- Conditions never count when verificationStatus is refuted or entered-in-error. Unconfirmed,
  provisional and differential diagnoses do count: a *suspected* cauda equina syndrome is exactly
  when imaging is right. "Any time" flags count in any clinicalStatus. A flag with a window counts
  when the Condition is still active (active / recurrence / relapse, whatever its onset) or when
  its onset (onsetDateTime, else onsetPeriod.start, else recordedDate) lies inside the window.
  Assumption: a Condition without clinicalStatus is judged by its onset; only when it has no date
  and no abatement at all is it taken as a current problem-list entry.
- Fever Observations (VSAC Body Temperature): effectiveDateTime, else effectivePeriod.start, else
  issued, inside the fever window, and a value >= fever_celsius (UCUM Cel or [degF], also written
  C, °C, F, °F). A value without a unit is read as Celsius from 25 to 45 and Fahrenheit from 77 to
  113 (the only plausible readings of a body temperature); anything else is ignored.
- Oral glucocorticoid MedicationRequests (any status but entered-in-error, cancelled, draft): each
  course (dosage.course_length, as the muscle-relaxant rule reads it) starts at authoredOn (else
  dispenseRequest.validityPeriod.start); the part before the window is clipped off and the rest
  added up; >= corticosteroid_cumulative_days is a red flag. The intended course counts in full
  after its start: a 90-day prescription is prolonged use from the day it is written.
- Completed Procedures of prior lumbar surgery, any time (codes or a lumbar surgery text).
- The draft order's own reasonCode, and the Conditions its reasonReference names: the prescriber's
  stated reason for this order, so no window applies.
- (v2) Each "yes" on a counting red-flag screen (logic/red_flag_screen.py; the Chart adds them),
  named by its item; three flags (night pain, pulsating abdominal mass, bony tenderness) are
  found only there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from cds_service.logic.back_pain import (
    condition_onset,
    is_clinically_active,
    is_excluded_verification,
    resolve_condition,
)
from cds_service.logic.config import RuleConfig
from cds_service.logic.dates import parse_fhir_date, within_days
from cds_service.logic.fhir import (
    CodeableConcept,
    Condition,
    DraftOrder,
    MedicationRequest,
    Observation,
    Procedure,
    Quantity,
)
from cds_service.logic.medication_orders import MedicationOrder
from cds_service.logic.record import PatientRecord
from cds_service.logic.terminology import value_set


class RedFlag(StrEnum):
    CANCER = "cancer"
    SPINAL_INFECTION = "spinal-infection"
    FEVER = "fever"
    IV_DRUG_USE = "iv-drug-use"
    IMMUNOSUPPRESSION = "immunosuppression"
    CORTICOSTEROIDS = "prolonged-corticosteroids"
    OSTEOPOROSIS = "osteoporosis"
    TRAUMA = "trauma"
    CAUDA_EQUINA = "cauda-equina"
    NEURO_DEFICIT = "neurological-deficit"
    WEIGHT_LOSS = "weight-loss"
    PRIOR_LUMBAR_SURGERY = "prior-lumbar-surgery"
    # Found only on a red-flag screen (RULES.md v2 "Red-flag screen"): records rarely code them,
    # so no coded check looks for them.
    NIGHT_PAIN = "night-pain"
    ABDOMINAL_MASS = "pulsating-abdominal-mass"
    BONY_TENDERNESS = "bony-tenderness"


# Condition value set of each flag (prior lumbar surgery is a Procedure set, read the same way
# when it appears in an order's reason).
CONDITION_VALUE_SETS: dict[RedFlag, str] = {
    RedFlag.CANCER: "red-flag-cancer",
    RedFlag.SPINAL_INFECTION: "red-flag-spinal-infection",
    RedFlag.FEVER: "red-flag-fever",
    RedFlag.IV_DRUG_USE: "red-flag-iv-drug-use",
    RedFlag.IMMUNOSUPPRESSION: "red-flag-immunosuppression",
    RedFlag.CORTICOSTEROIDS: "red-flag-corticosteroid-use",
    RedFlag.OSTEOPOROSIS: "red-flag-osteoporosis",
    RedFlag.TRAUMA: "red-flag-trauma",
    RedFlag.CAUDA_EQUINA: "red-flag-cauda-equina",
    RedFlag.NEURO_DEFICIT: "red-flag-neuro-deficit",
    RedFlag.WEIGHT_LOSS: "red-flag-weight-loss",
}
PROCEDURE_VALUE_SET = "red-flag-prior-lumbar-surgery"

# A short name per group, for a one-line list of the groups checked (the imaging card, v2).
SHORT_LABELS: dict[RedFlag, str] = {
    RedFlag.CANCER: "cancer",
    RedFlag.SPINAL_INFECTION: "spinal infection",
    RedFlag.FEVER: "fever",
    RedFlag.IV_DRUG_USE: "IV drug use",
    RedFlag.IMMUNOSUPPRESSION: "immunosuppression",
    RedFlag.CORTICOSTEROIDS: "steroids",
    RedFlag.OSTEOPOROSIS: "osteoporosis",
    RedFlag.TRAUMA: "trauma/fracture",
    RedFlag.CAUDA_EQUINA: "cauda equina",
    RedFlag.NEURO_DEFICIT: "neuro deficit",
    RedFlag.WEIGHT_LOSS: "weight loss",
    RedFlag.PRIOR_LUMBAR_SURGERY: "lumbar surgery",
}
# How the cards name the flags only a red-flag screen records (the coded ones are named by their
# RedFlagCheck label).
SCREEN_ONLY_LABELS: dict[RedFlag, str] = {
    RedFlag.NIGHT_PAIN: "night pain or constant non-mechanical pain",
    RedFlag.ABDOMINAL_MASS: "pulsating abdominal mass (aortic aneurysm?)",
    RedFlag.BONY_TENDERNESS: "severe bony tenderness, local redness or heat",
}
GLUCOCORTICOID_VALUE_SET = "red-flag-oral-glucocorticoids"
BODY_TEMPERATURE_VALUE_SET = "valueset-2.16.840.1.113762.1.4.1045.152"

_IGNORED_ORDER_STATUSES = frozenset({"entered-in-error", "cancelled", "draft"})
_IGNORED_OBSERVATION_STATUSES = frozenset({"entered-in-error", "cancelled"})
_CELSIUS_UNITS = frozenset({"cel", "c", "°c", "degc", "deg c", "celsius", "℃"})
_FAHRENHEIT_UNITS = frozenset({"[degf]", "f", "°f", "degf", "deg f", "fahrenheit", "℉"})


@dataclass(frozen=True)
class RedFlagCheck:
    """One red flag the service looks for, and how far back (None: any time)."""

    flag: RedFlag
    label: str
    window_days: int | None

    @property
    def short_label(self) -> str:
        """A few words for a one-line list of the groups checked: "spinal infection"."""
        return SHORT_LABELS[self.flag]

    @property
    def described(self) -> str:
        """The label with its look-back, for card detail: "spinal infection (last 12 months)"."""
        return f"{self.label} ({_window_text(self.window_days)})"


@dataclass(frozen=True)
class RedFlagHit:
    """A red flag found, with the evidence a clinician can check in the chart."""

    flag: RedFlag
    evidence: str
    source: str
    on: date | None = None


@dataclass(frozen=True)
class RedFlagReport:
    checked: tuple[RedFlagCheck, ...]
    found: tuple[RedFlagHit, ...]

    @property
    def present(self) -> bool:
        return bool(self.found)

    @property
    def flags(self) -> frozenset[RedFlag]:
        return frozenset(hit.flag for hit in self.found)

    def label_of(self, flag: RedFlag) -> str:
        """The flag's name in card detail: its check's label, else its screen-only label."""
        for check in self.checked:
            if check.flag is flag:
                return check.label
        return SCREEN_ONLY_LABELS.get(flag, flag.value.replace("-", " "))

    def with_hits(self, hits: Sequence[RedFlagHit]) -> RedFlagReport:
        """This report plus `hits` (found elsewhere: an order's reason, a red-flag screen)."""
        return RedFlagReport(checked=self.checked, found=self.found + tuple(hits)) if hits else self


def _window_text(days: int | None) -> str:
    if days is None:
        return "any time"
    if days % 365 == 0:
        years = days // 365
        return "last 12 months" if years == 1 else f"last {years * 12} months"
    return f"last {days} days"


def red_flag_checks(config: RuleConfig) -> tuple[RedFlagCheck, ...]:
    """Every red flag of RULES.md, in its order, with the windows of this configuration."""
    return (
        RedFlagCheck(RedFlag.CANCER, "cancer, active or history", None),
        RedFlagCheck(
            RedFlag.SPINAL_INFECTION, "spinal infection", config.spinal_infection_window_days
        ),
        RedFlagCheck(
            RedFlag.FEVER,
            f"fever: temperature ≥ {config.fever_celsius:.1f} °C or a fever diagnosis",
            config.fever_window_days,
        ),
        RedFlagCheck(RedFlag.IV_DRUG_USE, "IV drug use", config.iv_drug_use_window_days),
        RedFlagCheck(
            RedFlag.IMMUNOSUPPRESSION,
            "immunosuppression: HIV, transplant, immunosuppressants",
            None,
        ),
        RedFlagCheck(
            RedFlag.CORTICOSTEROIDS,
            f"prolonged corticosteroids: ≥ {config.corticosteroid_cumulative_days} days of oral "
            "glucocorticoids or long-term steroid use",
            config.corticosteroid_window_days,
        ),
        RedFlagCheck(RedFlag.OSTEOPOROSIS, "osteoporosis or fragility fracture", None),
        RedFlagCheck(
            RedFlag.TRAUMA, "significant trauma or vertebral fracture", config.trauma_window_days
        ),
        RedFlagCheck(
            RedFlag.CAUDA_EQUINA,
            "cauda equina syndrome, urinary retention or saddle anaesthesia",
            config.cauda_equina_window_days,
        ),
        RedFlagCheck(
            RedFlag.NEURO_DEFICIT,
            "severe or progressive neurological deficit",
            config.neuro_deficit_window_days,
        ),
        RedFlagCheck(
            RedFlag.WEIGHT_LOSS, "unexplained weight loss", config.weight_loss_window_days
        ),
        RedFlagCheck(RedFlag.PRIOR_LUMBAR_SURGERY, "prior lumbar surgery", None),
    )


def record_red_flags(
    record: PatientRecord, config: RuleConfig, orders: Sequence[MedicationOrder]
) -> RedFlagReport:
    """The red flags in the patient's record (the part every draft order shares); `orders` are
    the call's medication orders (medication_orders.py), read for corticosteroid courses."""
    checks = red_flag_checks(config)
    windows = {check.flag: check.window_days for check in checks}
    found: list[RedFlagHit] = []
    found.extend(_condition_flags(record.conditions, windows, record.today))
    found.extend(_fever_observations(record.observations, config, record.today))
    found.extend(_corticosteroid_courses(record.today, orders, config))
    found.extend(_lumbar_surgery(record.procedures))
    return RedFlagReport(checked=checks, found=tuple(found))


def with_order_reason(
    report: RedFlagReport, order: DraftOrder, record: PatientRecord
) -> RedFlagReport:
    """`report` plus the red flags named in one draft order's reasonCode / reasonReference."""
    return report.with_hits(tuple(_order_reason_flags(order, record)))


def _reference(resource_type: str, resource_id: str | None) -> str:
    return f"{resource_type}/{resource_id}" if resource_id else resource_type


def _is_current(condition: Condition, onset: date | None) -> bool:
    """Counts whatever the window: still active, or an undated entry with no status at all."""
    if condition.clinicalStatus is not None:
        return is_clinically_active(condition)
    return onset is None and condition.abatementDateTime is None


def _condition_flags(
    conditions: Iterable[Condition], windows: dict[RedFlag, int | None], today: date
) -> Iterable[RedFlagHit]:
    for condition in conditions:
        if condition.code is None or is_excluded_verification(condition):
            continue
        onset = condition_onset(condition)
        current = _is_current(condition, onset)
        for flag, vs_name in CONDITION_VALUE_SETS.items():
            window = windows[flag]
            if window is not None and not current and not within_days(onset, today, window):
                continue
            vs = value_set(vs_name)
            if vs.matches(condition.code):
                yield RedFlagHit(
                    flag=flag,
                    evidence=vs.describe(condition.code),
                    source=_reference("Condition", condition.id),
                    on=onset,
                )


def temperature_celsius(quantity: Quantity | None) -> float | None:
    """A body temperature in degrees Celsius, or None when the unit cannot be read."""
    if quantity is None or quantity.value is None:
        return None
    value = quantity.value
    units = [u.strip().lower() for u in (quantity.code, quantity.unit) if u and u.strip()]
    for unit in units:
        if unit in _CELSIUS_UNITS:
            return value
        if unit in _FAHRENHEIT_UNITS:
            return (value - 32.0) * 5.0 / 9.0
    if units:
        return None
    if 25.0 <= value <= 45.0:
        return value
    if 77.0 <= value <= 113.0:
        return (value - 32.0) * 5.0 / 9.0
    return None


def _fever_observations(
    observations: Iterable[Observation], config: RuleConfig, today: date
) -> Iterable[RedFlagHit]:
    temperature_codes = value_set(BODY_TEMPERATURE_VALUE_SET)
    for observation in observations:
        if (observation.status or "").lower() in _IGNORED_OBSERVATION_STATUSES:
            continue
        if temperature_codes.matching_coding(observation.code) is None:
            continue
        when = parse_fhir_date(observation.when)
        if not within_days(when, today, config.fever_window_days):
            continue
        celsius = temperature_celsius(observation.valueQuantity)
        # Rounded to 0.01 °C so that 100.4 °F reads as the 38.0 °C it stands for.
        if celsius is None or round(celsius, 2) < config.fever_celsius:
            continue
        recorded = observation.valueQuantity
        assert recorded is not None and recorded.value is not None  # read above
        unit = recorded.unit or recorded.code or ""
        yield RedFlagHit(
            flag=RedFlag.FEVER,
            evidence=f"temperature {recorded.value:g} {unit}".rstrip() + f" ({celsius:.1f} °C)",
            source=_reference("Observation", observation.id),
            on=when,
        )


def _course_start(request: MedicationRequest) -> date | None:
    validity = request.dispenseRequest.validityPeriod if request.dispenseRequest else None
    return parse_fhir_date(request.authoredOn) or parse_fhir_date(
        validity.start if validity else None
    )


def _corticosteroid_courses(
    today: date, orders: Sequence[MedicationOrder], config: RuleConfig
) -> Iterable[RedFlagHit]:
    glucocorticoids = value_set(GLUCOCORTICOID_VALUE_SET)
    window_start = today - timedelta(days=config.corticosteroid_window_days)
    total = 0.0
    sources: list[str] = []
    names: list[str] = []
    for order in orders:
        if order.drafted or (order.request.status or "").lower() in _IGNORED_ORDER_STATUSES:
            continue
        concept = order.concept
        if not glucocorticoids.matches(concept):
            continue
        start = _course_start(order.request)
        course = order.course
        # Without a start date or a course length the order cannot be placed in the window.
        if start is None or course is None or start > today:
            continue
        days = course.days - max(0, (window_start - start).days)
        if days <= 0:
            continue
        total += days
        sources.append(_reference("MedicationRequest", order.request.id))
        name = glucocorticoids.describe(concept)
        if name not in names:
            names.append(name)
    if sources and total >= config.corticosteroid_cumulative_days:
        yield RedFlagHit(
            flag=RedFlag.CORTICOSTEROIDS,
            evidence=f"{', '.join(names)}: {total:.0f} days of oral glucocorticoids in the "
            f"{_window_text(config.corticosteroid_window_days)}",
            source=", ".join(sources),
        )


def _lumbar_surgery(procedures: Iterable[Procedure]) -> Iterable[RedFlagHit]:
    surgery = value_set(PROCEDURE_VALUE_SET)
    for procedure in procedures:
        if (procedure.status or "").lower() != "completed":
            continue
        if surgery.matches(procedure.code):
            performed = procedure.performedDateTime or (
                procedure.performedPeriod.start if procedure.performedPeriod else None
            )
            yield RedFlagHit(
                flag=RedFlag.PRIOR_LUMBAR_SURGERY,
                evidence=surgery.describe(procedure.code),
                source=_reference("Procedure", procedure.id),
                on=parse_fhir_date(performed),
            )


def _order_reason_flags(order: DraftOrder, record: PatientRecord) -> Iterable[RedFlagHit]:
    order_ref = _reference(order.resourceType, order.id)
    reasons: list[tuple[CodeableConcept, str]] = [
        (reason, f"{order_ref} reasonCode") for reason in order.reasonCode
    ]
    for ref in order.reasonReference:
        condition = resolve_condition(ref.reference, order.contained, record.conditions_by_id)
        if condition is not None and condition.code is not None:
            if not is_excluded_verification(condition):
                reasons.append((condition.code, f"{order_ref} reasonReference"))
    value_sets = {**CONDITION_VALUE_SETS, RedFlag.PRIOR_LUMBAR_SURGERY: PROCEDURE_VALUE_SET}
    for concept, source in reasons:
        for flag, vs_name in value_sets.items():
            vs = value_set(vs_name)
            if vs.matches(concept):
                yield RedFlagHit(flag=flag, evidence=vs.describe(concept), source=source)
