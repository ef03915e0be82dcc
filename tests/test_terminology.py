"""Value-set membership, checked against what the ValueSet files say and what their sources say.

Members and non-members below come from the files' provenance (valuesets/SOURCES.md: VSAC
expansions, the CDC Opioid CDS value sets, the project's curated sets) and from the code systems
themselves (e.g. CPT 72141 is an MRI of the cervical spine, ICD-10-CM M54.2 is cervicalgia), not
from how terminology.py stores them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest

from cds_service.logic.fhir import CodeableConcept, Coding
from cds_service.logic.terminology import all_value_set_names, value_set

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
# An ICD-10-CM code (a category such as M54 or a subcategory such as M54.50).
_ICD10CM_CODE = re.compile(r"^[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?$")


def _files() -> dict[str, dict[str, Any]]:
    folder = resources.files("cds_service.logic").joinpath("valuesets")
    return {
        entry.name.removesuffix(".json"): json.loads(entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    }


def _walk(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _walk(item.get("contains", []))


def _listed(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The (system, code) pairs a ValueSet resource names as members, read as FHIR defines it:
    compose.include.concept, an ICD-10-CM `is-a` filter's own code, and expansion.contains."""
    for include in data.get("compose", {}).get("include", []):
        system = include.get("system", "")
        for concept in include.get("concept", []):
            yield system, concept["code"]
        for flt in include.get("filter", []):
            if system == ICD10CM and flt.get("op") == "is-a" and _ICD10CM_CODE.match(flt["value"]):
                yield system, flt["value"]
    for item in _walk(data.get("expansion", {}).get("contains", [])):
        yield item["system"], item["code"]


FILES = _files()


def test_every_file_is_a_value_set_by_its_name() -> None:
    assert sorted(FILES) == all_value_set_names()


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_code_a_file_lists_is_a_member(name: str) -> None:
    data = FILES[name]
    listed = set(_listed(data))
    included = [
        ref for inc in data.get("compose", {}).get("include", []) for ref in inc.get("valueSet", [])
    ]
    assert listed or included, f"{name} names no members"
    # The same set by its file name and by its canonical URL.
    for vs in (value_set(name), value_set(data["url"])):
        missing = [(s, c) for s, c in listed if not vs.contains(Coding(system=s, code=c))]
        assert not missing, missing[:10]
        # A value set that includes another by canonical URL holds that one's members too.
        for ref in included:
            by_url = next(d for d in FILES.values() if d.get("url") == ref)
            sample = sorted(_listed(by_url))[:50]
            assert sample, ref
            assert all(vs.contains(Coding(system=s, code=c)) for s, c in sample), ref


@pytest.mark.parametrize(
    ("name", "system", "code", "member"),
    [
        # Low back pain (finding); ICD-10-CM M54.50 low back pain, unspecified.
        ("lbp-diagnosis", SNOMED, "279039007", True),
        ("lbp-diagnosis", ICD10CM, "M54.50", True),
        # Cervicalgia and neck pain are not low back pain.
        ("lbp-diagnosis", ICD10CM, "M54.2", False),
        ("lbp-diagnosis", SNOMED, "81680005", False),
        # CPT 72148 MRI lumbar spine without contrast; 72141 is the cervical spine.
        ("lumbar-spine-imaging", CPT, "72148", True),
        ("lumbar-spine-imaging", CPT, "72141", False),
        # CDC: oxycodone hydrochloride 5 MG Oral Tablet; naloxone 40 MG/ML nasal spray is not one.
        ("opioid-analgesics-with-ambulatory-misuse-potential", RXNORM, "1049621", True),
        ("opioid-analgesics-with-ambulatory-misuse-potential", RXNORM, "1725059", False),
        ("naloxone-medications", RXNORM, "1725059", True),
        # CDC: diazepam 5 MG Oral Tablet; cyclobenzaprine 10 MG Oral Tablet is a relaxant (VSAC).
        ("benzodiazepine-medications", RXNORM, "197591", True),
        ("benzodiazepine-medications", RXNORM, "828348", False),
        ("skeletal-muscle-relaxants", RXNORM, "828348", True),
        ("skeletal-muscle-relaxants", RXNORM, "1049621", False),
        # ICD-10-CM C79.51 secondary malignant neoplasm of bone (the C79 family).
        ("red-flag-cancer", ICD10CM, "C79.51", True),
        ("red-flag-cancer", ICD10CM, "M54.50", False),
        # VSAC body temperature: LOINC 8310-5 Body temperature; 8867-4 is heart rate.
        ("valueset-2.16.840.1.113762.1.4.1045.152", LOINC, "8310-5", True),
        ("valueset-2.16.840.1.113762.1.4.1045.152", LOINC, "8867-4", False),
    ],
)
def test_known_members_and_non_members(name: str, system: str, code: str, member: bool) -> None:
    assert value_set(name).contains(Coding(system=system, code=code)) is member


def test_value_set_by_canonical_url() -> None:
    vs = value_set("http://fhir.org/guides/cdc/opioid-cds/ValueSet/naloxone-medications")
    assert vs.contains(Coding(system=RXNORM, code="1725059"))


def test_code_system_aliases_and_icd_spelling() -> None:
    vs = value_set("lbp-diagnosis")
    # The SNOMED CT and ICD-10-CM OIDs name the same code systems.
    assert vs.contains(Coding(system="urn:oid:2.16.840.1.113883.6.96", code="279039007"))
    assert vs.contains(Coding(system="urn:oid:2.16.840.1.113883.6.90", code="M54.50"))
    # ICD-10-CM codes are often sent without the dot or in lower case.
    assert vs.contains(Coding(system=ICD10CM, code="m5450"))


def test_icd10cm_prefix_matches_descendants_only() -> None:
    vs = value_set("lbp-diagnosis")
    assert vs.contains(Coding(system=ICD10CM, code="M54.50"))
    assert vs.contains(Coding(system=ICD10CM, code="M54.5"))
    assert not vs.contains(Coding(system=ICD10CM, code="M54"))
    assert not vs.contains(Coding(system=SNOMED, code="M54.50"))


@pytest.mark.parametrize(
    ("name", "text", "member"),
    [
        ("lbp-diagnosis", "LOW BACK PAIN, acute", True),
        ("lbp-diagnosis", "Feedback pain", False),
        ("lbp-diagnosis", "Neck pain", False),
        ("lumbar-spine-imaging", "MRI L-spine w/o contrast", True),
        ("lumbar-spine-imaging", "CT guided lumbar biopsy", False),
        ("lumbar-spine-imaging", "MRI cervical spine", False),
        ("skeletal-muscle-relaxants", "Flexeril 10 mg tab", True),
        ("benzodiazepines", "Valium 5 mg", True),
        ("benzodiazepines", "Flexeril 10 mg tab", False),
        ("red-flag-oral-glucocorticoids", "prednisone 20 mg tablet", True),
        ("red-flag-oral-glucocorticoids", "hydrocortisone 1% cream", False),
    ],
)
def test_free_text_names_the_concept(name: str, text: str, member: bool) -> None:
    vs = value_set(name)
    assert vs.matches(CodeableConcept(text=text)) is member
    # A local code with the same display is read the same way.
    local = CodeableConcept(coding=[Coding(system="urn:local", code="x", display=text)])
    assert vs.matches(local) is member


def test_a_code_outside_the_set_is_not_rescued_by_a_display_that_does_not_name_it() -> None:
    vs = value_set("lbp-diagnosis")
    neck = CodeableConcept(coding=[Coding(system=SNOMED, code="81680005", display="Neck pain")])
    assert not vs.matches(neck)


def test_unknown_value_set_raises() -> None:
    with pytest.raises(KeyError):
        value_set("no-such-value-set")
