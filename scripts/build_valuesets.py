"""Builds the project's FHIR ValueSet files from ../shared/reference (run by hand, output committed).

Each generated file names its source in `description` and in the `urn:lbp-cds:source` extension.
The service never reads ../shared at run time; it reads only cds_service/logic/valuesets/.
Usage: python scripts/build_valuesets.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "cds_service" / "logic" / "valuesets"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
TEXT = "urn:lbp-cds:valueset-text-pattern"


def write(name: str, resource: dict[str, Any]) -> None:
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(resource, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(OUT.parent.parent.parent)}")


def local_value_set(
    name: str,
    title: str,
    description: str,
    includes: list[dict[str, Any]],
    patterns: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "resourceType": "ValueSet",
        "id": name,
        "url": f"urn:lbp-cds:ValueSet/{name}",
        "name": name.replace("-", "_"),
        "title": title,
        "status": "active",
        "publisher": "lbp-cds (curated from ../shared/reference/clinical-codes.md)",
        "description": description,
        "extension": [{"url": TEXT, "valueString": p} for p in (patterns or [])],
        "compose": {"include": includes},
    }


def lbp_diagnosis(codes: dict[str, Any]) -> None:
    # RULES.md "Back-pain context": ICD-10-CM families of clinical-codes.md §1b (each listed code and
    # its descendants) and exactly these SNOMED codes; 23056005 / 279040009 are unverified and left out.
    snomed_members = {
        "279039007",
        "278860009",
        "161891005",
        "134407002",
        "161894002",
        "9121000119106",
    }
    icd = sorted({e["code"] for e in codes["lbp_diagnosis_icd10cm"] if e.get("code")})
    snomed = [
        {"code": e["code"], "display": e["display"]}
        for e in codes["lbp_diagnosis_snomed"]
        if e["code"] in snomed_members
    ]
    write(
        "lbp-diagnosis",
        local_value_set(
            "lbp-diagnosis",
            "Low back pain diagnoses",
            "Low back pain Conditions: ICD-10-CM families of clinical-codes.md §1b (S5, ICD-10-CM FY2026; "
            "HEDIS 2014 ICD-9 list mapped by the research helper) and SNOMED CT findings of §1c (S8, S20). "
            "The NCQA/VSAC CMS166 expansion is licensed and was not available.",
            [
                {
                    "system": ICD10CM,
                    "filter": [{"property": "concept", "op": "is-a", "value": c} for c in icd],
                },
                {"system": SNOMED, "concept": snomed},
            ],
            patterns=[
                r"\blow[- ]back pain\b",
                r"\blumbago\b",
                r"\bbackache\b",
                r"\bback pain\b",
                r"\bsciatica\b",
                r"\blumbar (?:radiculopathy|strain|sprain|pain)\b",
            ],
        ),
    )


def startback_observations(codes: dict[str, Any]) -> None:
    # clinical-codes.md §7 (S9 loinc.org): the panel and the three scored results the service reads.
    wanted = {"91349-1", "91350-9", "91351-7", "91352-5"}
    concepts = [
        {"code": e["code"], "display": e["display"]}
        for e in codes["start_back_loinc"]
        if e.get("code") in wanted
    ]
    write(
        "startback-observations",
        local_value_set(
            "startback-observations",
            "STarT Back results",
            "Keele STarT Back Screening Tool panel and its result codes (LOINC 2.77, loinc.org; "
            "clinical-codes.md §7, S9).",
            [{"system": "http://loinc.org", "concept": concepts}],
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    args = parser.parse_args()
    shared = Path(args.shared)
    codes = json.loads((shared / "reference" / "clinical-codes.json").read_text(encoding="utf-8"))
    OUT.mkdir(parents=True, exist_ok=True)
    lbp_diagnosis(codes)
    startback_observations(codes)


if __name__ == "__main__":
    main()
