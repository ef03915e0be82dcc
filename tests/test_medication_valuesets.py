"""The medication value sets and drug tables the opioid and muscle-relaxant rules read."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from cds_service.logic.drug_tables import mme_factor, strengths_for
from cds_service.logic.fhir import CodeableConcept, Coding
from cds_service.logic.terminology import ICD10CM, RXNORM, SNOMED, value_set


def rx(code: str) -> Coding:
    return Coding(system=RXNORM, code=code)


def test_suggested_naloxone_is_one_cdc_naloxone_product() -> None:
    product = value_set("naloxone-suggested-product")
    assert product.codes == frozenset({(RXNORM, "1725059")})
    assert value_set("naloxone-medications").contains(rx("1725059"))


@pytest.mark.parametrize(
    ("name", "text", "member"),
    [
        ("beers-muscle-relaxants", "cyclobenzaprine 10 mg", True),
        ("beers-muscle-relaxants", "Soma 350 mg", True),
        ("beers-muscle-relaxants", "baclofen 10 mg", False),
        ("beers-muscle-relaxants", "tizanidine 4 mg", False),
        ("skeletal-muscle-relaxants", "dantrolene 25 mg capsule", True),
        ("skeletal-muscle-relaxants", "ibuprofen 400 mg", False),
        ("benzodiazepines", "Xanax 0.5 mg", True),
        ("benzodiazepines", "zolpidem 10 mg", False),
        ("opioid-ingredients", "dihydrocodeine", True),
        ("opioid-ingredients", "naloxone", False),
        ("buprenorphine-medications", "Suboxone film", True),
    ],
)
def test_text_fallback(name: str, text: str, member: bool) -> None:
    assert value_set(name).matches(CodeableConcept(text=text)) is member


def test_beers_set_holds_the_vsac_products() -> None:
    beers = value_set("beers-muscle-relaxants")
    assert beers.contains(rx("828348"))  # cyclobenzaprine 10 mg (VSAC 1062)
    assert beers.contains(rx("21949"))  # cyclobenzaprine ingredient
    assert not beers.contains(rx("1292"))  # baclofen ingredient


@pytest.mark.parametrize(
    ("system", "code", "member"),
    [
        (ICD10CM, "F11.20", True),
        (ICD10CM, "F1120", True),
        (ICD10CM, "F12.20", False),
        (SNOMED, "75544000", True),  # opioid dependence
        (SNOMED, "295165009", False),  # opioid overdose is not OUD
    ],
)
def test_opioid_use_disorder(system: str, code: str, member: bool) -> None:
    assert value_set("opioid-use-disorder").contains(Coding(system=system, code=code)) is member


def test_buprenorphine_set_has_no_methadone() -> None:
    bup = value_set("buprenorphine-medications")
    assert bup.contains(rx("1010603"))  # Suboxone film
    assert not bup.contains(rx("864706"))  # methadone 10 mg tablet


def test_strength_table_sums_two_salts_of_one_ingredient() -> None:
    rows = strengths_for(
        "637540"
    )  # aspirin / oxycodone HCl 4.5 mg / oxycodone terephthalate 0.38 mg
    assert {r.ingredient for r in rows} == {"oxycodone"}
    assert sum(r.value for r in rows) == pytest.approx(4.88)


@pytest.mark.parametrize(
    ("ingredient", "factor"),
    [
        ("codeine", 0.15),
        ("fentanyl", 2.4),
        ("hydrocodone", 1.0),
        ("hydromorphone", 5.0),
        ("methadone", 4.7),
        ("morphine", 1.0),
        ("oxycodone", 1.5),
        ("oxymorphone", 3.0),
        ("tapentadol", 0.4),
        ("tramadol", 0.2),
    ],
)
def test_cdc_2022_factors(ingredient: str, factor: float) -> None:
    found = mme_factor(ingredient)
    assert found is not None
    assert found.factor == factor


@pytest.mark.parametrize("ingredient", ["buprenorphine", "meperidine", "levorphanol"])
def test_no_cdc_2022_factor(ingredient: str) -> None:
    assert mme_factor(ingredient) is None


def test_every_factor_ingredient_is_an_opioid_ingredient_name() -> None:
    data = json.loads(
        resources.files("cds_service.logic")
        .joinpath("data", "cdc-2022-mme-factors.json")
        .read_text()
    )
    names = {d.lower() for d in value_set("opioid-ingredients").displays.values()}
    assert set(data["factors"]) <= names
