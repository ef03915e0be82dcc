"""Morphine milligram equivalents per day (CDC 2022) and days supply of an opioid order.

MME/day = strength x dose per administration x administrations per day x CDC 2022 factor, per
opioid ingredient (clinical-codes.md §4c, §4e; RULES.md opioid-order "Compute"). Assumptions:
- Strength comes from Medication.ingredient.strength, else the RxNav 2020-10-20 table by the
  product's RxNorm code, else the product name ("oxycodone hydrochloride 5 MG", Epic-style
  "oxyCODONE-acetaminophen 5-325 MG"). A dose given as a mass (mg, mcg) needs no strength.
- Dose ranges count at their upper bound and frequency at frequencyMax (dosage.py): CDC's
  "most aggressive dosing", which is what an as-needed order allows.
- Fentanyl patches: CDC 2022 gives 2.4 MME per mcg/hr of delivery, whatever the change interval;
  other fentanyl forms, buprenorphine, meperidine and the rest have no CDC 2022 factor, and the
  card then says the figure cannot be computed and why (never a guessed figure).
- MME is rounded to one decimal, as the CDC calculator does, before thresholds are applied.
- An implausible order (dosage.implausible_reason: a period, frequency or dose of zero or less) or
  a result above `mme_implausible_per_day` (10,000 MME/day: more than a hundred times the CDC
  high-risk line) is a data-entry error, not a dose: its figure "cannot be computed", with the
  reason, rather than a number that would rule the total (or "inf").

Days supply (per dispense): dispenseRequest.expectedSupplyDuration; else quantity / daily dose
(in the same units, or through the strength when one is in tablets and the other in mg; never
from an implausible dosage); else the dosage's own bounds. A validityPeriod is when the prescription may be filled, not a supply,
so it is not read here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache

from cds_service.logic.config import RuleConfig
from cds_service.logic.dosage import (
    dose_per_administration,
    doses_per_day,
    duration_days,
    order_implausible_reason,
    period_days,
    primary_dosage,
)
from cds_service.logic.drug_tables import mme_factor, strengths_for
from cds_service.logic.fhir import CodeableConcept, Quantity, Ratio
from cds_service.logic.medications import OPIOID_INGREDIENTS, MedicationView
from cds_service.logic.terminology import normalise_code, normalise_system, value_set

_MASS_MG = {
    "mg": 1.0,
    "milligram": 1.0,
    "milligrams": 1.0,
    "mcg": 0.001,
    "ug": 0.001,
    "µg": 0.001,
    "microgram": 0.001,
    "micrograms": 0.001,
    "g": 1000.0,
}
_VOLUME_ML = {"ml": 1.0, "milliliter": 1.0, "milliliters": 1.0, "millilitre": 1.0, "l": 1000.0}
_RATE_MCG_H = {
    "mcg/h": 1.0,
    "ug/h": 1.0,
    "mcg/hr": 1.0,
    "ug/hr": 1.0,
    "µg/h": 1.0,
    "mg/h": 1000.0,
    "mg/hr": 1000.0,
}
_HOUR_UNITS = {"h", "hr", "hour", "hours"}

# "oxycodone hydrochloride 5 MG", "fentanyl 25 mcg/hr", "morphine sulfate 2 MG/ML", "10 MG/5ML".
_STRENGTH = re.compile(
    r"(\d+(?:\.\d+)?)\s*(mg|mcg|ug|µg)\b(?:\s*/\s*(\d+(?:\.\d+)?)?\s*(ml|hr|h|actuat)\b)?",
    re.IGNORECASE,
)
# Epic-style combinations: "oxyCODONE-acetaminophen 5-325 MG", "HYDROcodone-acetaminophen 10-325 mg".
_COMBINATION = re.compile(
    r"([a-z]+)-([a-z]+)\s+(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\s*(mg|mcg)\b", re.IGNORECASE
)


def _unit(quantity: Quantity | None) -> str:
    if quantity is None:
        return ""
    raw = (quantity.code or quantity.unit or "").strip().lower()
    return raw.strip("{}").replace(" ", "")


def _fmt(value: float) -> str:
    return f"{round(value, 2):g}"


@dataclass(frozen=True)
class Strength:
    """Amount of one opioid ingredient: mg per unit (tablet, actuation), per mL, or per hour."""

    ingredient: str
    mg: float
    per: str  # "unit", "mL" or "h"
    source: str

    def describe(self) -> str:
        if self.per == "h":
            return f"{_fmt(self.mg * 1000)} mcg/hr"
        return f"{_fmt(self.mg)} mg" + ("/mL" if self.per == "mL" else "")


@dataclass(frozen=True)
class OrderMme:
    """MME/day of one order, or the reason it cannot be computed."""

    label: str
    reference: str | None
    active: bool
    mme_per_day: float | None
    calculation: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class SupplyDays:
    days: float
    basis: str


@cache
def ingredient_names() -> tuple[str, ...]:
    """Opioid ingredient names (lower case) from the opioid-ingredients value set, longest first."""
    vs = value_set(OPIOID_INGREDIENTS)
    return tuple(sorted({d.lower() for d in vs.displays.values()}, key=len, reverse=True))


def _names_in(text: str) -> list[tuple[int, str]]:
    """(position, ingredient) of each whole-word opioid ingredient name in a text."""
    found: list[tuple[int, str]] = []
    lowered = text.lower()
    for name in ingredient_names():
        for match in re.finditer(rf"\b{re.escape(name)}\b", lowered):
            found.append((match.start(), name))
    return sorted(found)


def _ingredient_of(concept: CodeableConcept) -> str | None:
    """The opioid ingredient a concept names: by its code (the set's display), else by text."""
    vs = value_set(OPIOID_INGREDIENTS)
    coding = vs.matching_coding(concept)
    if coding is not None and coding.code:
        system = normalise_system(coding.system)
        display = vs.displays.get((system, normalise_code(system, coding.code)))
        if display:
            return display.lower()
    for text in concept.texts():
        names = _names_in(text)
        if names:
            return names[0][1]
    return None


def _ratio_strength(ingredient: str, ratio: Ratio | None) -> Strength | None:
    if ratio is None or ratio.numerator is None or ratio.numerator.value is None:
        return None
    factor = _MASS_MG.get(_unit(ratio.numerator))
    if factor is None:
        return None
    mg = ratio.numerator.value * factor
    denominator = ratio.denominator
    per = "unit"
    if denominator is not None and denominator.value:
        unit = _unit(denominator)
        if unit in _VOLUME_ML:
            per = "mL"
            mg /= denominator.value * _VOLUME_ML[unit]
        elif unit in _HOUR_UNITS:
            per = "h"
            mg /= denominator.value
        else:
            mg /= denominator.value
    return Strength(ingredient, mg, per, "Medication.ingredient")


def _from_medication(view: MedicationView) -> list[Strength]:
    out: list[Strength] = []
    if view.medication is None:
        return out
    for item in view.medication.ingredient:
        if item.itemCodeableConcept is None:
            continue
        name = _ingredient_of(item.itemCodeableConcept)
        strength = _ratio_strength(name, item.strength) if name else None
        if strength is not None:
            out.append(strength)
    return out


def _from_table(view: MedicationView) -> list[Strength]:
    for code in view.rxnorm_codes():
        rows = strengths_for(code)
        if not rows:
            continue
        totals: dict[tuple[str, str], float] = {}
        for row in rows:
            # Two salts of one ingredient (oxycodone HCl + terephthalate) add up.
            per = {"MG/ML": "mL", "MG/HR": "h"}.get(row.unit, "unit")
            totals[(row.ingredient, per)] = totals.get((row.ingredient, per), 0.0) + row.value
        return [
            Strength(name, mg, per, "RxNav strength table") for (name, per), mg in totals.items()
        ]
    return []


def _from_name(view: MedicationView) -> list[Strength]:
    for text in view.texts():
        combination = _COMBINATION.search(text)
        if combination is not None:
            first, second, a, b, unit = combination.groups()
            factor = _MASS_MG[unit.lower()]
            pairs = [(first.lower(), float(a)), (second.lower(), float(b))]
            found = [
                Strength(name, value * factor, "unit", "product name")
                for name, value in pairs
                if name in ingredient_names()
            ]
            if found:
                return found
        out: list[Strength] = []
        # RxNorm names list ingredients as "A 325 MG / B 5 MG": read each part on its own.
        for part in re.split(r"\s/\s|,|;|\swith\s", text):
            names = _names_in(part)
            if not names:
                continue
            position, name = names[0]
            match = _STRENGTH.search(part, position)
            if match is None:
                continue
            value, unit, per_value, per_unit = match.groups()
            mg = float(value) * _MASS_MG[unit.lower()]
            per = "unit"
            if per_unit and per_unit.lower() == "ml":
                per = "mL"
                mg /= float(per_value) if per_value else 1.0
            elif per_unit and per_unit.lower() in ("h", "hr"):
                per = "h"
            out.append(Strength(name, mg, per, "product name"))
        if out:
            return out
    return []


def opioid_strengths(view: MedicationView) -> list[Strength]:
    """The order's opioid ingredients with their strengths, from the best source available."""
    return _from_medication(view) or _from_table(view) or _from_name(view)


def opioid_ingredients(view: MedicationView) -> list[str]:
    """Opioid ingredient names, with or without a known strength."""
    names = [s.ingredient for s in opioid_strengths(view)]
    if names:
        return list(dict.fromkeys(names))
    for concept in [*view.ingredient_concepts(), view.concept]:
        if concept is not None:
            name = _ingredient_of(concept)
            if name:
                return [name]
    for text in view.texts():
        found = _names_in(text)
        if found:
            return [found[0][1]]
    return []


def _is_transdermal(view: MedicationView, strengths: list[Strength]) -> bool:
    text = view.dose_form_text
    for code in view.rxnorm_codes():
        text += " " + " ".join(r.dose_form.lower() for r in strengths_for(code))
    return "transdermal" in text or "patch" in text or any(s.per == "h" for s in strengths)


_DEFAULT_RULES = RuleConfig()


def order_mme(
    view: MedicationView,
    reference: str | None,
    *,
    active: bool,
    config: RuleConfig = _DEFAULT_RULES,
) -> OrderMme:
    """MME/day of one opioid order (summed over its opioid ingredients), or why not."""
    label = view.label

    def cannot(reason: str) -> OrderMme:
        return OrderMme(label, reference, active, None, reason=reason)

    strengths = opioid_strengths(view)
    names = [s.ingredient for s in strengths] or opioid_ingredients(view)
    if not names:
        return cannot("the opioid ingredient could not be identified from the order")
    implausible = order_implausible_reason(view.request)
    if implausible is not None:
        return cannot(implausible)
    transdermal = _is_transdermal(view, strengths)
    dosage = primary_dosage(view.request)
    dose = dose_per_administration(dosage)
    per_day = doses_per_day(dosage)
    dose_unit = _unit(dose)

    total = 0.0
    steps: list[str] = []
    for name in dict.fromkeys(names):
        factor = mme_factor(name)
        if factor is None:
            if name == "buprenorphine":
                return cannot("CDC 2022 does not count buprenorphine in MME")
            return cannot(f"CDC 2022 gives no MME conversion factor for {name}")
        form = "transdermal" if transdermal else None
        if not factor.applies_to(form):
            return cannot(
                f"CDC 2022 gives {name} an MME conversion factor only for "
                f"{' or '.join(factor.dose_forms)} patches"
            )
        strength = next((s for s in strengths if s.ingredient == name), None)
        if dose is None or dose.value is None:
            return cannot("the order gives no usable dose")
        if factor.dose_unit == "mcg/h":
            rate = _RATE_MCG_H.get(dose_unit)
            if rate is not None:
                mcg_h = dose.value * rate
            elif strength is not None and strength.per == "h" and _is_count(dose_unit):
                mcg_h = dose.value * strength.mg * 1000
            else:
                return cannot(f"the {name} patch strength (mcg/hr) is not known")
            total += mcg_h * factor.factor
            steps.append(f"{name} {_fmt(mcg_h)} mcg/hr x {_fmt(factor.factor)}")
            continue
        if per_day is None or per_day <= 0:
            return cannot("the order gives no usable frequency")
        if dose_unit in _MASS_MG:
            mg = dose.value * _MASS_MG[dose_unit]
        elif dose_unit in _VOLUME_ML:
            if strength is None or strength.per != "mL":
                return cannot(f"the dose is in mL but the {name} strength per mL is not known")
            mg = dose.value * _VOLUME_ML[dose_unit] * strength.mg
        elif _is_count(dose_unit):
            if strength is None or strength.per != "unit":
                return cannot(f"the {name} strength per {dose_unit or 'unit'} is not known")
            mg = dose.value * strength.mg
        else:
            return cannot(f"the dose unit {dose.unit or dose.code} cannot be read")
        total += mg * per_day * factor.factor
        steps.append(
            f"{name} {_fmt(mg)} mg x {_fmt(per_day)}/day x {_fmt(factor.factor)}"
            f" = {_fmt(mg * per_day * factor.factor)}"
        )
    limit = config.mme_implausible_per_day
    if not math.isfinite(total) or total > limit:
        # Not printed: the figure may be astronomically large (a dose of 1e308) or infinite.
        return cannot(
            f"the result is above {limit:,g} MME/day, which is not a plausible dose "
            "(check the dose, its unit and the frequency)"
        )
    return OrderMme(label, reference, active, round(total, 1), calculation="; ".join(steps))


def _is_count(unit: str) -> bool:
    """Tablets, capsules, films, patches, sprays...: anything that is not a mass, volume or rate."""
    return unit not in _MASS_MG and unit not in _VOLUME_ML and "/" not in unit


def days_supply(view: MedicationView) -> SupplyDays | None:
    """Days one dispense covers (see the module docstring for the order of sources)."""
    request = view.request
    dispense = request.dispenseRequest
    if dispense is not None:
        days = duration_days(dispense.expectedSupplyDuration)
        if days is not None and days > 0:
            return SupplyDays(days, "expected supply duration")
    dosage = primary_dosage(request)
    # An implausible dosage gives no daily dose to divide by (dose_per_administration and
    # doses_per_day return None for it).
    quantity = dispense.quantity if dispense is not None else None
    dose = dose_per_administration(dosage)
    per_day = doses_per_day(dosage)
    if (
        quantity is not None
        and quantity.value is not None
        and quantity.value > 0
        and dose is not None
        and dose.value is not None
        and dose.value > 0
        and per_day is not None
        and per_day > 0
    ):
        units_per_day = _dispense_units_per_day(view, quantity, dose, dose.value, per_day)
        if units_per_day and units_per_day > 0 and order_implausible_reason(request) is None:
            days = quantity.value / units_per_day
            if math.isfinite(days) and days > 0:
                return SupplyDays(days, "quantity and dose")
    repeat = dosage.timing.repeat if dosage and dosage.timing else None
    if repeat is not None:
        days = duration_days(repeat.boundsDuration)
        if days is not None and days > 0:
            return SupplyDays(days, "dosage duration")
        days = period_days(repeat.boundsPeriod)
        if days is not None:
            return SupplyDays(days, "dosage period")
    return None


def _dispense_units_per_day(
    view: MedicationView, quantity: Quantity, dose: Quantity, dose_value: float, per_day: float
) -> float | None:
    """How much of the dispensed quantity's unit the patient takes per day."""
    q_unit, d_unit = _unit(quantity), _unit(dose)
    if q_unit in _MASS_MG and d_unit in _MASS_MG:
        return dose_value * _MASS_MG[d_unit] / _MASS_MG[q_unit] * per_day
    if q_unit in _VOLUME_ML and d_unit in _VOLUME_ML:
        return dose_value * _VOLUME_ML[d_unit] / _VOLUME_ML[q_unit] * per_day
    if _is_count(q_unit) and _is_count(d_unit):
        return dose_value * per_day
    strengths = opioid_strengths(view)
    if len(strengths) != 1 or d_unit not in _MASS_MG:
        return None
    # Tablets (or mL) dispensed, dose written in mg: convert through the strength.
    strength = strengths[0]
    mg_per_day = dose_value * _MASS_MG[d_unit] * per_day
    if _is_count(q_unit) and strength.per == "unit":
        return mg_per_day / strength.mg
    if q_unit in _VOLUME_ML and strength.per == "mL":
        return mg_per_day / strength.mg / _VOLUME_ML[q_unit]
    return None
