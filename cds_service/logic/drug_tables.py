"""The drug data tables in `logic/data/`: RxNav opioid strengths and the CDC 2022 MME factors.

Both are package data read once through importlib.resources (see `logic/data/SOURCES.md`):
- the RxNav 2020-10-20 extract maps an RxNorm drug code to its opioid ingredients, each with its
  strength and the product's dose form (a drug with two salts of one ingredient has two rows);
- the CDC 2022 table gives each ingredient's factor, per mg/day, or per mcg/hr for fentanyl patches.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

STRENGTH_TABLE = "opioid-drug-ingredients-rxnav-2020-10-20.csv"
MME_FACTORS = "cdc-2022-mme-factors.json"


@dataclass(frozen=True)
class TableStrength:
    """One opioid ingredient of an RxNorm drug, as RxNav gives it."""

    ingredient: str  # lower-case ingredient name, as in the opioid-ingredients value set
    value: float
    unit: str  # MG, MG/ML, MG/HR or MG/ACTUAT
    dose_form: str  # RxNorm dose form name, e.g. "Oral Tablet", "Transdermal System"
    drug_name: str


@dataclass(frozen=True)
class MmeFactor:
    ingredient: str
    factor: float
    dose_unit: str  # "mg" (per mg/day) or "mcg/h" (per mcg/hr of a patch)
    dose_forms: tuple[str, ...] = ()  # when set, the factor applies only to these forms

    def applies_to(self, dose_form: str | None) -> bool:
        if not self.dose_forms:
            return True
        form = (dose_form or "").lower()
        return any(f in form for f in self.dose_forms)


def _read(name: str) -> str:
    return resources.files("cds_service.logic").joinpath("data").joinpath(name).read_text("utf-8")


@cache
def _strengths() -> dict[str, tuple[TableStrength, ...]]:
    rows: dict[str, list[TableStrength]] = {}
    for row in csv.DictReader(io.StringIO(_read(STRENGTH_TABLE))):
        rows.setdefault(row["drug_rxcui"], []).append(
            TableStrength(
                ingredient=row["ingredient"].strip().lower(),
                value=float(row["strength_value"]),
                unit=row["strength_unit"].strip().upper(),
                dose_form=row["dose_form"].strip(),
                drug_name=row["drug_name"].strip(),
            )
        )
    return {code: tuple(items) for code, items in rows.items()}


def strengths_for(rxnorm_code: str) -> tuple[TableStrength, ...]:
    """The opioid ingredients of an RxNorm drug code; empty when the table does not know it."""
    return _strengths().get(rxnorm_code.strip(), ())


@cache
def _factors() -> dict[str, MmeFactor]:
    data: dict[str, Any] = json.loads(_read(MME_FACTORS))
    return {
        name: MmeFactor(
            ingredient=name,
            factor=float(entry["factor"]),
            dose_unit=entry["dose_unit"],
            dose_forms=tuple(entry.get("dose_forms", ())),
        )
        for name, entry in data["factors"].items()
    }


def mme_factor(ingredient: str) -> MmeFactor | None:
    """The CDC 2022 factor of an ingredient, or None when CDC 2022 gives it none."""
    return _factors().get(ingredient.strip().lower())
