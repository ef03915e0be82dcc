from __future__ import annotations

import pytest

from cds_service.logic.fhir import CodeableConcept, Coding
from cds_service.logic.terminology import all_value_set_names, value_set, warm_up


def test_every_value_set_file_expands() -> None:
    assert warm_up() == len(all_value_set_names())
    for name in all_value_set_names():
        vs = value_set(name)
        assert vs.codes or vs.icd10cm_prefixes or vs.text_patterns, name


def test_value_set_by_canonical_url() -> None:
    vs = value_set("http://fhir.org/guides/cdc/opioid-cds/ValueSet/naloxone-medications")
    assert vs.contains(Coding(system="http://www.nlm.nih.gov/research/umls/rxnorm", code="1725059"))


def test_icd10cm_prefix_matches_descendants_only() -> None:
    vs = value_set("lbp-diagnosis")
    icd = "http://hl7.org/fhir/sid/icd-10-cm"
    assert vs.contains(Coding(system=icd, code="M54.50"))
    assert vs.contains(Coding(system=icd, code="M54.5"))
    assert not vs.contains(Coding(system=icd, code="M54"))
    assert not vs.contains(Coding(system="http://snomed.info/sct", code="M54.50"))


def test_display_text_fallback() -> None:
    vs = value_set("lbp-diagnosis")
    assert vs.matches(CodeableConcept(text="LOW BACK PAIN, acute"))
    assert vs.matches(
        CodeableConcept(coding=[Coding(system="urn:local", code="x", display="Backache")])
    )
    assert not vs.matches(CodeableConcept(text="Feedback pain"))


def test_unknown_value_set_raises() -> None:
    with pytest.raises(KeyError):
        value_set("no-such-value-set")
