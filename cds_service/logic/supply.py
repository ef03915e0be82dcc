"""Days supply of one fill, and the intended course, of a MedicationRequest (RULES.md "Doses,
supplies and course lengths"). The one reader: the opioid rule (days supply), the muscle-relaxant
rule and the corticosteroid red flag (intended course) all read an order through it.

Days supply of one fill, the first source that gives one:
1. dispenseRequest.expectedSupplyDuration (any UCUM time unit);
2. the dispensed quantity / the daily dose (dosage.daily_dose, the reader mme.py uses too: lines
   taken together add up, sequential steps count at the largest, maxDosePerPeriod caps), in the
   same kind of unit (tablets and tablets, mg and mg, mL and mL), or tablets or mL against a dose in
   mg through the product's one opioid strength; never from an implausible dosage
   (dosage.implausible_reason);
3. the dosage timing's bounds (boundsDuration, else boundsPeriod).
Intended course: one fill x (1 + numberOfRepeatsAllowed).

dispenseRequest.validityPeriod is never read: it is how long the prescription may be filled
(often a year), not how long the drug is taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cds_service.logic.dosage import (
    DoseNotReadable,
    daily_dose,
    duration_days,
    period_days,
    primary_dosage,
)
from cds_service.logic.fhir import Quantity
from cds_service.logic.medications import MedicationView
from cds_service.logic.strength import opioid_strengths
from cds_service.logic.units import MASS_MG, VOLUME_ML, is_count, unit_of


@dataclass(frozen=True)
class Supply:
    """Days one fill covers, and the field it was read from (for the card's detail)."""

    days: float
    basis: str


@dataclass(frozen=True)
class Course:
    """The intended course: one fill's supply times the fills allowed."""

    per_fill: Supply
    fills: int

    @property
    def days(self) -> float:
        return self.per_fill.days * self.fills

    @property
    def basis(self) -> str:
        if self.fills == 1:
            return self.per_fill.basis
        return f"{self.per_fill.basis} x {self.fills} fills"


def days_supply(view: MedicationView) -> Supply | None:
    """Days one fill covers (sources in the module docstring), or None when none gives it."""
    request = view.request
    dispense = request.dispenseRequest
    if dispense is not None:
        days = duration_days(dispense.expectedSupplyDuration)
        if days is not None and days > 0:
            return Supply(days, "expected supply duration")
    quantity = dispense.quantity if dispense is not None else None
    if quantity is not None and quantity.value is not None and quantity.value > 0:
        try:
            units_per_day = daily_dose(
                request, lambda dose: _dispensed_units(view, quantity, dose)
            ).amount
        except DoseNotReadable:
            units_per_day = 0.0
        if units_per_day > 0:
            days = quantity.value / units_per_day
            if math.isfinite(days) and days > 0:
                return Supply(days, "quantity and dose")
    dosage = primary_dosage(request)
    repeat = dosage.timing.repeat if dosage and dosage.timing else None
    if repeat is not None:
        days = duration_days(repeat.boundsDuration)
        if days is not None and days > 0:
            return Supply(days, "dosage duration")
        days = period_days(repeat.boundsPeriod)
        if days is not None:
            return Supply(days, "dosage period")
    return None


def intended_course(view: MedicationView) -> Course | None:
    """One fill x (1 + numberOfRepeatsAllowed); None when the days supply is unknown, or the
    product is too large to be a number (never `inf`)."""
    per_fill = days_supply(view)
    if per_fill is None:
        return None
    course = Course(per_fill, fills(view))
    return course if math.isfinite(course.days) else None


def fills(view: MedicationView) -> int:
    """1 + numberOfRepeatsAllowed (a negative count reads as none)."""
    dispense = view.request.dispenseRequest
    repeats = dispense.numberOfRepeatsAllowed if dispense is not None else None
    return 1 + max(repeats or 0, 0)


class _UnitsDoNotMatch(DoseNotReadable):
    """The dose cannot be expressed in the dispensed quantity's unit."""


def _dispensed_units(view: MedicationView, quantity: Quantity, dose: Quantity) -> float:
    """One administration (or a maxDosePerPeriod numerator) in the dispensed quantity's unit."""
    if dose.value is None:
        raise _UnitsDoNotMatch("the dose has no value")
    q_unit, d_unit = unit_of(quantity), unit_of(dose)
    if q_unit in MASS_MG and d_unit in MASS_MG:
        return dose.value * MASS_MG[d_unit] / MASS_MG[q_unit]
    if q_unit in VOLUME_ML and d_unit in VOLUME_ML:
        return dose.value * VOLUME_ML[d_unit] / VOLUME_ML[q_unit]
    if is_count(q_unit) and is_count(d_unit):
        return dose.value
    strengths = opioid_strengths(view)
    if len(strengths) == 1 and d_unit in MASS_MG:
        # Tablets (or mL) dispensed, dose written in mg: convert through the strength.
        strength, mg = strengths[0], dose.value * MASS_MG[d_unit]
        if not strength.mg > 0:
            raise _UnitsDoNotMatch("the product strength is not a positive figure")
        if is_count(q_unit) and strength.per == "unit":
            return mg / strength.mg
        if q_unit in VOLUME_ML and strength.per == "mL":
            return mg / strength.mg / VOLUME_ML[q_unit]
    raise _UnitsDoNotMatch("the dose and the dispensed quantity are in different units")
