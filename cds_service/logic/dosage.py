"""Dose and frequency of a MedicationRequest's dosage lines (FHIR R4 Dosage), and Duration and
Period lengths in days. supply.py builds days supply and courses on them, mme.py MME/day.

Assumptions, from the CDC opioid MME calculator (clinical-codes.md §4e, §5):
- each dosageInstruction's first doseAndRate of type null or "ordered" gives its dose;
- a dose range counts at its upper bound ("most aggressive dosing"); `range_note` names it;
- doses per day use frequencyMax (else frequency) per the shorter of period / periodMax; else the
  count of timeOfDay entries; else a timing code (BID, TID, QID, Q4H, Q6H, Q8H, Q12H, QD, QOD,
  QAM...); PRN orders are taken at their maximum frequency;
- Duration units: a = 365 d, mo = 30 d, wk = 7 d, d = 1, h = 1/24, min = 1/1440.

Implausible lines (RULES.md "Doses", v2): a period or frequency of zero or less, or a dose of zero
or less (or a value that is not a finite number), is not an instruction anyone can follow but a
data-entry error. Such a line is never read in a convenient way ("every 0 h" as once a day): the
dose and frequency readers return None for it, and `implausible_reason` says why, so the figure
built on it is "cannot be computed" and the card can say so.

Daily dose of an order (RULES.md "Doses", v2), `daily_dose`, the one reader mme.py and supply.py
share: each dosage line gives dose x administrations per day. Lines that share a `sequence`, or
have none, run together: they add up. Lines with different `sequence` values follow one another:
the largest step counts. Lines with no `sequence` beside sequenced ones run alongside every step
(the higher reading). A `maxDosePerPeriod` (numerator per denominator duration) lower than a
step's total caps that step; a maxDosePerPeriod that cannot be read (no value, zero or less, a unit
the caller cannot convert) caps nothing. Lines with neither a dose nor a frequency (text only)
add nothing; one implausible line makes the whole order unreadable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from cds_service.logic.dates import parse_fhir_date
from cds_service.logic.fhir import Dosage, DoseAndRate, MedicationRequest, Period, Quantity, Ratio

_DAYS_PER_UNIT = {
    "a": 365.0,
    "year": 365.0,
    "years": 365.0,
    "mo": 30.0,
    "month": 30.0,
    "months": 30.0,
    "wk": 7.0,
    "week": 7.0,
    "weeks": 7.0,
    "d": 1.0,
    "day": 1.0,
    "days": 1.0,
    "h": 1.0 / 24,
    "hour": 1.0 / 24,
    "hours": 1.0 / 24,
    "min": 1.0 / 1440,
    "s": 1.0 / 86400,
}

# HL7 v3 GTSAbbreviation timing codes -> administrations per day.
_TIMING_CODES = {
    "QD": 1.0,
    "AM": 1.0,
    "PM": 1.0,
    "QAM": 1.0,
    "QPM": 1.0,
    "QHS": 1.0,
    "HS": 1.0,
    "BID": 2.0,
    "TID": 3.0,
    "QID": 4.0,
    "QOD": 0.5,
    "Q1H": 24.0,
    "Q2H": 12.0,
    "Q3H": 8.0,
    "Q4H": 6.0,
    "Q6H": 4.0,
    "Q8H": 3.0,
    "Q12H": 2.0,
    "WK": 1.0 / 7,
    "MO": 1.0 / 30,
}


def duration_days(quantity: Quantity | None) -> float | None:
    """A Duration (value + UCUM unit) in days, or None when it cannot be read."""
    if quantity is None or quantity.value is None:
        return None
    unit = (quantity.code or quantity.unit or "").strip().lower()
    if unit == "mo" or unit.startswith("month"):
        factor = 30.0
    else:
        factor = _DAYS_PER_UNIT.get(unit, _DAYS_PER_UNIT.get(unit.rstrip("s"), 0.0))
    if not factor or quantity.value < 0:
        return None
    days = quantity.value * factor
    return days if math.isfinite(days) else None


def primary_dosage(request: MedicationRequest) -> Dosage | None:
    return request.dosageInstruction[0] if request.dosageInstruction else None


def _ordered_dose_and_rate(dosage: Dosage) -> DoseAndRate | None:
    for item in dosage.doseAndRate:
        kind = item.type.coding[0].code if item.type and item.type.coding else None
        if kind in (None, "ordered"):
            return item
    return dosage.doseAndRate[0] if dosage.doseAndRate else None


def _positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def _shown(value: float) -> str:
    """A value as the card may print it (never "inf" or "nan")."""
    return f"{value:g}" if math.isfinite(value) else "not a finite number"


def implausible_reason(dosage: Dosage) -> str | None:
    """Why one dosage line cannot be a real instruction (RULES.md "Doses"), or None when it can.

    Only values that are present are judged: a missing frequency or dose is "not given", which the
    callers report in their own words."""
    repeat = dosage.timing.repeat if dosage.timing else None
    if repeat is not None:
        for name, count in (("frequency", repeat.frequency), ("frequencyMax", repeat.frequencyMax)):
            if count is not None and count <= 0:
                return f"the dosage gives a {name} of {count} (zero or less is not plausible)"
        unit = f" {repeat.periodUnit}" if repeat.periodUnit else ""
        for name, period in (("period", repeat.period), ("periodMax", repeat.periodMax)):
            if period is not None and not _positive(period):
                return (
                    f"the dosage gives a {name} of {_shown(period)}{unit} "
                    "(zero or less is not plausible)"
                )
    for item in dosage.doseAndRate:
        doses = [item.doseQuantity]
        if item.doseRange is not None:
            doses += [item.doseRange.low, item.doseRange.high]
        for dose in doses:
            if dose is not None and dose.value is not None and not _positive(dose.value):
                unit = f" {dose.unit or dose.code}" if dose.unit or dose.code else ""
                return (
                    f"the dosage gives a dose of {_shown(dose.value)}{unit} "
                    "(zero or less is not plausible)"
                )
    return None


def order_implausible_reason(request: MedicationRequest) -> str | None:
    """The first implausible dosage line of an order: one such line spoils the order's figure."""
    for dosage in request.dosageInstruction:
        reason = implausible_reason(dosage)
        if reason is not None:
            return reason
    return None


def dose_per_administration(dosage: Dosage | None) -> Quantity | None:
    """doseQuantity, or the upper bound of doseRange; None when it is not a positive number."""
    if dosage is None:
        return None
    item = _ordered_dose_and_rate(dosage)
    if item is None:
        return None
    if item.doseQuantity is not None and item.doseQuantity.value is not None:
        return item.doseQuantity if _positive(item.doseQuantity.value) else None
    if item.doseRange is not None:
        high = item.doseRange.high or item.doseRange.low
        if high is not None and high.value is not None:
            return high if _positive(high.value) else None
    return None


def doses_per_day(dosage: Dosage | None) -> float | None:
    """Administrations per day at the maximum frequency the order allows."""
    if dosage is None or dosage.timing is None:
        return None
    if implausible_reason(dosage) is not None:
        return None  # "every 0 h" is an error, not "once a day"
    repeat = dosage.timing.repeat
    if repeat is not None:
        frequency = repeat.frequencyMax or repeat.frequency
        # The shortest period gives the most administrations: CDC's "most aggressive dosing".
        periods = [p for p in (repeat.period, repeat.periodMax) if p is not None]
        period = min(periods) if periods else None
        if frequency and period and repeat.periodUnit:
            days = duration_days(Quantity(value=period, code=repeat.periodUnit))
            if days is not None and days > 0:
                per_day = frequency / days
                return per_day if math.isfinite(per_day) else None
        if repeat.timeOfDay:
            return float(len(repeat.timeOfDay))
        if frequency and period is None:
            return float(frequency)  # "frequency N" with no period: N a day is the usual reading
    code = dosage.timing.code
    if code is not None:
        for coding in code.coding:
            if coding.code and coding.code.upper() in _TIMING_CODES:
                return _TIMING_CODES[coding.code.upper()]
        if code.text and code.text.strip().upper() in _TIMING_CODES:
            return _TIMING_CODES[code.text.strip().upper()]
    return None


def period_days(period: Period | None) -> float | None:
    """Whole days from a Period's start to its end; None when either is missing or unreadable,
    or the end comes first."""
    if period is None:
        return None
    start, end = parse_fhir_date(period.start), parse_fhir_date(period.end)
    if start is None or end is None or end < start:
        return None
    return float((end - start).days)


class DoseNotReadable(Exception):
    """Why an order's daily dose cannot be read, in words a card can show. A caller's conversion
    (`Amount`) raises it, or a subclass, for a dose it cannot express in its unit."""


# One administration's dose (or a maxDosePerPeriod numerator) in the caller's unit: mg of an
# ingredient for MME, the dispensed unit for days supply. Raises DoseNotReadable when it cannot.
Amount = Callable[[Quantity], float]


@dataclass(frozen=True)
class LineDose:
    """One dosage line as counted: the dose per administration in the caller's unit, and how many
    administrations a day."""

    amount: float
    per_day: float

    @property
    def daily(self) -> float:
        return self.amount * self.per_day


@dataclass(frozen=True)
class DailyDose:
    """An order's daily dose in the caller's unit, and how it was reached (for the card)."""

    amount: float
    # The lines of the step that counts (the largest), in order.
    lines: tuple[LineDose, ...]
    # How many steps follow one another (1 when no line has a different `sequence`).
    steps: int = 1
    # The maxDosePerPeriod that capped the counted step, per day, when one did.
    capped_at: float | None = None


def _sequence(dosage: Dosage) -> float | None:
    value = dosage.sequence
    return value if value is not None and math.isfinite(value) else None


def _gives_a_dose(dosage: Dosage) -> bool:
    """A line the daily dose reads: one with a dose or a frequency. A line with neither (text
    only, or a timing that gives only its bounds) adds nothing."""
    return bool(dosage.doseAndRate) or doses_per_day(dosage) is not None


def _cap_per_day(ratio: Ratio | None, amount: Amount) -> float | None:
    """A maxDosePerPeriod as an amount per day, or None when it cannot be read."""
    if ratio is None or ratio.numerator is None or not _positive(ratio.numerator.value):
        return None
    denominator = ratio.denominator
    if denominator is None:
        return None
    if denominator.value is None:  # "per day" written without a number: one of the unit
        denominator = denominator.model_copy(update={"value": 1.0})
    days = duration_days(denominator)
    if days is None or not days > 0:
        return None
    try:
        per_day = amount(ratio.numerator) / days
    except DoseNotReadable:
        return None
    return per_day if _positive(per_day) else None


def _steps(
    request: MedicationRequest, line_value: Callable[[Dosage], LineDose], amount: Amount | None
) -> DailyDose:
    """Combine the lines: add those that run together, take the largest of those that follow one
    another, cap each step by the lowest maxDosePerPeriod among its lines (when `amount` is
    given to read it)."""
    reason = order_implausible_reason(request)
    if reason is not None:
        raise DoseNotReadable(reason)
    lines = [d for d in request.dosageInstruction if _gives_a_dose(d)]
    if not lines:
        raise DoseNotReadable("the order gives no usable dose")
    alongside: list[tuple[LineDose, float | None]] = []
    sequenced: dict[float, list[tuple[LineDose, float | None]]] = {}
    for dosage in lines:
        counted = (
            line_value(dosage),
            _cap_per_day(dosage.maxDosePerPeriod, amount) if amount else None,
        )
        sequence = _sequence(dosage)
        if sequence is None:
            alongside.append(counted)
        else:
            sequenced.setdefault(sequence, []).append(counted)
    groups = [group + alongside for group in sequenced.values()] or [alongside]
    best: DailyDose | None = None
    for group in groups:
        total = sum(line.daily for line, _ in group)
        caps = [cap for _, cap in group if cap is not None]
        cap = min(caps) if caps else None
        capped = cap is not None and cap < total
        step = DailyDose(
            amount=cap if capped and cap is not None else total,
            lines=tuple(line for line, _ in group),
            steps=len(groups),
            capped_at=cap if capped else None,
        )
        if best is None or step.amount > best.amount:
            best = step
    assert best is not None  # groups is never empty
    return best


def daily_dose(request: MedicationRequest, amount: Amount) -> DailyDose:
    """The order's daily dose in `amount`'s unit (module docstring); DoseNotReadable, with the
    reason, when a line gives no usable dose or frequency, a dose `amount` cannot convert, or an
    implausible value."""

    def line_value(dosage: Dosage) -> LineDose:
        dose = dose_per_administration(dosage)
        if dose is None:
            raise DoseNotReadable("the order gives no usable dose")
        per_day = doses_per_day(dosage)
        if per_day is None or not per_day > 0:
            raise DoseNotReadable("the order gives no usable frequency")
        return LineDose(amount(dose), per_day)

    return _steps(request, line_value, amount)


def peak_rate(request: MedicationRequest, rate: Amount) -> DailyDose:
    """For a continuous delivery (a patch): the rate of the lines worn together, the largest of the
    steps; the frequency (when the patch is changed) does not enter. `rate` reads one line's dose
    as a rate (DoseNotReadable when it cannot)."""

    def line_value(dosage: Dosage) -> LineDose:
        dose = dose_per_administration(dosage)
        if dose is None:
            raise DoseNotReadable("the order gives no usable dose")
        return LineDose(rate(dose), 1.0)

    return _steps(request, line_value, None)


def range_note(request: MedicationRequest) -> str | None:
    """ "1-2 tablets: 2 used" for each line whose dose is a range (RULES.md "Doses": the card says
    the upper bound was used); None when no line gives a range, or the order is implausible."""
    if order_implausible_reason(request) is not None:
        return None
    notes: list[str] = []
    for dosage in request.dosageInstruction:
        item = _ordered_dose_and_rate(dosage)
        if item is None or item.doseRange is None:
            continue
        if item.doseQuantity is not None and item.doseQuantity.value is not None:
            continue  # the dose given counts, not the range
        low, high = item.doseRange.low, item.doseRange.high
        if low is None or high is None or not (_positive(low.value) and _positive(high.value)):
            continue
        assert low.value is not None and high.value is not None
        unit = _plural(
            (high.unit or high.code or low.unit or low.code or "").strip("{} "), high.value
        )
        note = f"{low.value:g}-{high.value:g}{' ' + unit if unit else ''}: {high.value:g} used"
        if note not in notes:
            notes.append(note)
    more = len(notes) - RANGES_NAMED
    return "; ".join(notes[:RANGES_NAMED]) + (f"; and {more} more" if more > 0 else "") or None


# Dose ranges a note names before "and N more" (a card's detail stays bounded, RULES.md v2).
RANGES_NAMED = 3
_MEASURES = {"mg", "mcg", "ug", "g", "ml", "l", "meq", "iu"}


def _plural(unit: str, value: float) -> str:
    """ "tablet" -> "tablets" for a count above one; units of measure ("mg", "mL") stay."""
    if value == 1 or not unit or unit.lower() in _MEASURES or "/" in unit or unit.endswith("s"):
        return unit
    if unit.endswith(("ch", "sh", "x")):
        return unit + "es"
    return unit + "s"
