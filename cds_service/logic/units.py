"""Units of dose, dispense and strength quantities (UCUM codes and the free text EHRs send)."""

from __future__ import annotations

from cds_service.logic.fhir import Quantity

# mg per unit of mass, mL per unit of volume, mcg/h per unit of a delivery rate.
MASS_MG = {
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
VOLUME_ML = {"ml": 1.0, "milliliter": 1.0, "milliliters": 1.0, "millilitre": 1.0, "l": 1000.0}
RATE_MCG_H = {
    "mcg/h": 1.0,
    "ug/h": 1.0,
    "mcg/hr": 1.0,
    "ug/hr": 1.0,
    "µg/h": 1.0,
    "mg/h": 1000.0,
    "mg/hr": 1000.0,
}
HOUR_UNITS = {"h", "hr", "hour", "hours"}


def unit_of(quantity: Quantity | None) -> str:
    """The quantity's unit, lower case, without UCUM braces or spaces ("{tablet}" -> "tablet")."""
    if quantity is None:
        return ""
    raw = (quantity.code or quantity.unit or "").strip().lower()
    return raw.strip("{}").replace(" ", "")


def is_count(unit: str) -> bool:
    """Tablets, capsules, films, patches, sprays...: anything that is not a mass, volume or rate."""
    return unit not in MASS_MG and unit not in VOLUME_ML and "/" not in unit


def figure(value: float) -> str:
    """A quantity as a calculation shows it: at most two decimals, no trailing zeros."""
    return f"{round(value, 2):g}"
