"""Days supply of one fill, and the intended course, of a MedicationRequest (RULES.md "Doses,
supplies and course lengths"). The one reader: the opioid rule (days supply), the muscle-relaxant
rule and the corticosteroid red flag (intended course) all read an order through it.

Days supply of one fill, the first source that gives one:
1. dispenseRequest.expectedSupplyDuration (any UCUM time unit);
2. the dispensed quantity / the daily dose, in the same kind of unit (tablets and tablets, mg and
   mg, mL and mL), or tablets or mL against a dose in mg through the product's one opioid strength;
   never from an implausible dosage (dosage.implausible_reason);
3. the dosage timing's bounds (boundsDuration, else boundsPeriod).
Intended course: one fill x (1 + numberOfRepeatsAllowed).

dispenseRequest.validityPeriod is never read: it is how long the prescription may be filled
(often a year), not how long the drug is taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cds_service.logic.dosage import (
    dose_per_administration,
    doses_per_day,
    duration_days,
    order_implausible_reason,
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
    dosage = primary_dosage(request)
    quantity = dispense.quantity if dispense is not None else None
    dose = dose_per_administration(dosage)
    per_day = doses_per_day(dosage)
    if (
        quantity is not None
        and quantity.value is not None
        and quantity.value > 0
        and dose is not None
        and dose.value is not None
        and per_day is not None
        and per_day > 0
        and order_implausible_reason(request) is None
    ):
        units_per_day = _dispensed_units_per_day(view, quantity, dose, per_day)
        if units_per_day and units_per_day > 0:
            days = quantity.value / units_per_day
            if math.isfinite(days) and days > 0:
                return Supply(days, "quantity and dose")
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
    """One fill x (1 + numberOfRepeatsAllowed); None when the days supply is unknown."""
    per_fill = days_supply(view)
    if per_fill is None:
        return None
    return Course(per_fill, fills(view))


def fills(view: MedicationView) -> int:
    """1 + numberOfRepeatsAllowed (a negative count reads as none)."""
    dispense = view.request.dispenseRequest
    repeats = dispense.numberOfRepeatsAllowed if dispense is not None else None
    return 1 + max(repeats or 0, 0)


def _dispensed_units_per_day(
    view: MedicationView, quantity: Quantity, dose: Quantity, per_day: float
) -> float | None:
    """How much of the dispensed quantity's unit the patient takes per day."""
    assert dose.value is not None  # checked by the caller
    q_unit, d_unit = unit_of(quantity), unit_of(dose)
    if q_unit in MASS_MG and d_unit in MASS_MG:
        return dose.value * MASS_MG[d_unit] / MASS_MG[q_unit] * per_day
    if q_unit in VOLUME_ML and d_unit in VOLUME_ML:
        return dose.value * VOLUME_ML[d_unit] / VOLUME_ML[q_unit] * per_day
    if is_count(q_unit) and is_count(d_unit):
        return dose.value * per_day
    strengths = opioid_strengths(view)
    if len(strengths) != 1 or d_unit not in MASS_MG:
        return None
    # Tablets (or mL) dispensed, dose written in mg: convert through the strength.
    strength = strengths[0]
    mg_per_day = dose.value * MASS_MG[d_unit] * per_day
    if is_count(q_unit) and strength.per == "unit":
        return mg_per_day / strength.mg
    if q_unit in VOLUME_ML and strength.per == "mL":
        return mg_per_day / strength.mg / VOLUME_ML[q_unit]
    return None
