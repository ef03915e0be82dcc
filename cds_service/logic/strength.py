"""Opioid ingredients of an order and their strengths (mg per unit, per mL or per hour).

Sources, best first (RULES.md opioid-order "Compute"; mme.py multiplies them out):
1. Medication.ingredient.strength (a Ratio) of the Medication the order names;
2. the RxNav 2020-10-20 strength table, by the product's RxNorm code;
3. the product name ("oxycodone hydrochloride 5 MG", Epic-style "oxyCODONE-acetaminophen 5-325 MG").
Two salts of one ingredient in the table (oxycodone HCl + terephthalate) add up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from cds_service.logic.drug_tables import strengths_for
from cds_service.logic.fhir import CodeableConcept, Ratio
from cds_service.logic.medications import OPIOID_INGREDIENTS, MedicationView
from cds_service.logic.terminology import normalise_code, normalise_system, value_set
from cds_service.logic.units import HOUR_UNITS, MASS_MG, VOLUME_ML, figure, unit_of

# "oxycodone hydrochloride 5 MG", "fentanyl 25 mcg/hr", "morphine sulfate 2 MG/ML", "10 MG/5ML".
_STRENGTH = re.compile(
    r"(\d+(?:\.\d+)?)\s*(mg|mcg|ug|µg)\b(?:\s*/\s*(\d+(?:\.\d+)?)?\s*(ml|hr|h|actuat)\b)?",
    re.IGNORECASE,
)
# Epic-style combinations: "oxyCODONE-acetaminophen 5-325 MG", "HYDROcodone-acetaminophen 10-325 mg".
_COMBINATION = re.compile(
    r"([a-z]+)-([a-z]+)\s+(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\s*(mg|mcg)\b", re.IGNORECASE
)


@dataclass(frozen=True)
class Strength:
    """Amount of one opioid ingredient: mg per unit (tablet, actuation), per mL, or per hour."""

    ingredient: str
    mg: float
    per: str  # "unit", "mL" or "h"
    source: str

    def describe(self) -> str:
        if self.per == "h":
            return f"{figure(self.mg * 1000)} mcg/hr"
        return f"{figure(self.mg)} mg" + ("/mL" if self.per == "mL" else "")


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
    factor = MASS_MG.get(unit_of(ratio.numerator))
    if factor is None:
        return None
    mg = ratio.numerator.value * factor
    denominator = ratio.denominator
    per = "unit"
    if denominator is not None and denominator.value:
        unit = unit_of(denominator)
        if unit in VOLUME_ML:
            per = "mL"
            mg /= denominator.value * VOLUME_ML[unit]
        elif unit in HOUR_UNITS:
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
            factor = MASS_MG[unit.lower()]
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
            mg = float(value) * MASS_MG[unit.lower()]
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


def is_transdermal(view: MedicationView, strengths: list[Strength]) -> bool:
    text = view.dose_form_text
    for code in view.rxnorm_codes():
        text += " " + " ".join(r.dose_form.lower() for r in strengths_for(code))
    return "transdermal" in text or "patch" in text or any(s.per == "h" for s in strengths)
