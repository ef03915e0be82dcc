"""Morphine milligram equivalents per day (CDC 2022) of an opioid order.

MME/day = strength x dose per administration x administrations per day x CDC 2022 factor, per
opioid ingredient (clinical-codes.md §4c, §4e; RULES.md opioid-order "Compute"). Assumptions:
- Strength: strength.py (Medication.ingredient, else the RxNav table, else the product name). A
  dose given as a mass (mg, mcg) needs no strength.
- Dose ranges count at their upper bound and frequency at frequencyMax (dosage.py): CDC's
  "most aggressive dosing", which is what an as-needed order allows.
- Several dosage lines (v2): the daily dose is dosage.daily_dose, the one reader supply.py uses too
  (lines taken together add up, sequential steps count at the largest, maxDosePerPeriod caps).
- Fentanyl patches: CDC 2022 gives 2.4 MME per mcg/hr of delivery, whatever the change interval;
  other fentanyl forms, buprenorphine, meperidine and the rest have no CDC 2022 factor, and the
  card then says the figure cannot be computed and why (never a guessed figure).
- MME is rounded to one decimal, as the CDC calculator does, before thresholds are applied.
- An implausible order (dosage.implausible_reason: a period, frequency or dose of zero or less) or
  a result above `mme_implausible_per_day` (10,000 MME/day: more than a hundred times the CDC
  high-risk line) is a data-entry error, not a dose: its figure "cannot be computed", with the
  reason, rather than a number that would rule the total (or "inf").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cds_service.logic.config import RuleConfig
from cds_service.logic.dosage import (
    DailyDose,
    DoseNotReadable,
    daily_dose,
    order_implausible_reason,
    peak_rate,
)
from cds_service.logic.drug_tables import MmeFactor, mme_factor
from cds_service.logic.fhir import MedicationRequest, Quantity
from cds_service.logic.medications import MedicationView
from cds_service.logic.strength import (
    Strength,
    is_transdermal,
    opioid_ingredients,
    opioid_strengths,
)
from cds_service.logic.units import MASS_MG, RATE_MCG_H, VOLUME_ML, figure, is_count, unit_of


@dataclass(frozen=True)
class OrderMme:
    """MME/day of one order, or the reason it cannot be computed."""

    label: str
    reference: str | None
    active: bool
    mme_per_day: float | None
    calculation: str | None = None
    reason: str | None = None


class _CannotCompute(DoseNotReadable):
    """Why an order has no MME/day figure (the card says it in these words)."""


_DEFAULT_RULES = RuleConfig()

# Dosage lines a calculation shows before "+ N more lines" (the card's detail stays bounded).
LINES_SHOWN = 4


def order_mme(
    view: MedicationView,
    reference: str | None,
    *,
    active: bool,
    config: RuleConfig = _DEFAULT_RULES,
) -> OrderMme:
    """MME/day of one opioid order (summed over its opioid ingredients), or why not."""
    try:
        total, steps = _mme_per_day(view)
        limit = config.mme_implausible_per_day
        if not math.isfinite(total) or total > limit:
            # Not printed: the figure may be astronomically large (a dose of 1e308) or infinite.
            raise _CannotCompute(
                f"the result is above {limit:,g} MME/day, which is not a plausible dose "
                "(check the dose, its unit and the frequency)"
            )
    except DoseNotReadable as why:
        return OrderMme(view.label, reference, active, None, reason=str(why))
    return OrderMme(view.label, reference, active, round(total, 1), calculation="; ".join(steps))


def _mme_per_day(view: MedicationView) -> tuple[float, list[str]]:
    """The unrounded MME/day and one calculation step per ingredient; _CannotCompute if not."""
    strengths = opioid_strengths(view)
    names = [s.ingredient for s in strengths] or opioid_ingredients(view)
    if not names:
        raise _CannotCompute("the opioid ingredient could not be identified from the order")
    implausible = order_implausible_reason(view.request)
    if implausible is not None:
        raise _CannotCompute(implausible)
    transdermal = is_transdermal(view, strengths)
    total = 0.0
    steps: list[str] = []
    for name in dict.fromkeys(names):
        strength = next((s for s in strengths if s.ingredient == name), None)
        mme, step = _ingredient_mme(name, strength, view.request, transdermal)
        total += mme
        steps.append(step)
    return total, steps


def _factor(name: str, transdermal: bool) -> MmeFactor:
    factor = mme_factor(name)
    if factor is None:
        if name == "buprenorphine":
            raise _CannotCompute("CDC 2022 does not count buprenorphine in MME")
        raise _CannotCompute(f"CDC 2022 gives no MME conversion factor for {name}")
    if not factor.applies_to("transdermal" if transdermal else None):
        raise _CannotCompute(
            f"CDC 2022 gives {name} an MME conversion factor only for "
            f"{' or '.join(factor.dose_forms)} patches"
        )
    return factor


def _ingredient_mme(
    name: str, strength: Strength | None, request: MedicationRequest, transdermal: bool
) -> tuple[float, str]:
    """MME/day of one ingredient and its calculation step."""
    factor = _factor(name, transdermal)
    if factor.dose_unit == "mcg/h":
        rate = peak_rate(request, lambda dose: _patch_rate(name, strength, dose))
        mcg_h = rate.amount
        shown = f"{figure(mcg_h)} mcg/hr"
        if len(rate.lines) > 1:
            rates = " + ".join(figure(line.amount) for line in rate.lines[:LINES_SHOWN])
            more = len(rate.lines) - LINES_SHOWN
            shown += f" ({rates}{f' + {more} more' if more > 0 else ''})"
        return mcg_h * factor.factor, f"{name} {shown} x {figure(factor.factor)}"
    daily = daily_dose(request, lambda dose: _dose_mg(name, strength, dose))
    mme = daily.amount * factor.factor
    step = f"{name} {_daily_mg(daily)} x {figure(factor.factor)} = {figure(mme)}"
    return mme, step


def _daily_mg(daily: DailyDose) -> str:
    """How the mg per day were reached: "5 mg x 4/day" for one line, else the lines added up,
    the largest of sequential steps and any maxDosePerPeriod cap."""
    terms = [
        f"{figure(line.amount)} mg x {figure(line.per_day)}/day"
        for line in daily.lines[:LINES_SHOWN]
    ]
    if len(daily.lines) == 1 and daily.steps == 1 and daily.capped_at is None:
        return terms[0]
    more = len(daily.lines) - LINES_SHOWN
    how = " + ".join(terms) + (f" + {more} more lines" if more > 0 else "")
    if daily.steps > 1:
        how = f"the largest of {daily.steps} sequential steps: {how}"
    if daily.capped_at is not None:
        how += f", capped by maxDosePerPeriod at {figure(daily.capped_at)} mg/day"
    return f"{figure(daily.amount)} mg/day ({how})"


def _patch_rate(name: str, strength: Strength | None, dose: Quantity) -> float:
    """Delivery rate of a patch in mcg/hr: from a rate dose, or patches x the strength per hour."""
    if dose.value is None:
        raise _CannotCompute("the order gives no usable dose")
    value, dose_unit = dose.value, unit_of(dose)
    rate = RATE_MCG_H.get(dose_unit)
    if rate is not None:
        return value * rate
    if strength is not None and strength.per == "h" and is_count(dose_unit):
        return value * strength.mg * 1000
    raise _CannotCompute(f"the {name} patch strength (mcg/hr) is not known")


def _dose_mg(name: str, strength: Strength | None, dose: Quantity) -> float:
    """One administration in mg of the ingredient: a mass, or a volume or count x the strength."""
    if dose.value is None:
        raise _CannotCompute("the order gives no usable dose")
    dose_unit = unit_of(dose)
    if dose_unit in MASS_MG:
        return dose.value * MASS_MG[dose_unit]
    if dose_unit in VOLUME_ML:
        if strength is None or strength.per != "mL":
            raise _CannotCompute(f"the dose is in mL but the {name} strength per mL is not known")
        return dose.value * VOLUME_ML[dose_unit] * strength.mg
    if is_count(dose_unit):
        if strength is None or strength.per != "unit":
            raise _CannotCompute(f"the {name} strength per {dose_unit or 'unit'} is not known")
        return dose.value * strength.mg
    raise _CannotCompute(f"the dose unit {dose.unit or dose.code} cannot be read")
