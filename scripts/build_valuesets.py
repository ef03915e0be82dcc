"""Builds the project's FHIR ValueSet files from ../shared/reference (run by hand, output committed).

Each generated file names its source in `description` and in the `urn:lbp-cds:source` extension.
The service never reads ../shared at run time; it reads only cds_service/logic/valuesets/.
Usage: python scripts/build_valuesets.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import json
import re
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
        "publisher": "lbp-cds (curated from the shared reference clinical-codes.md)",
        "description": description,
        "extension": [{"url": TEXT, "valueString": p} for p in (patterns or [])],
        "compose": {"include": includes},
    }


def _injury_stem(code: str) -> str:
    """S33.5XXA -> S33.5XX; S39.012A -> S39.012 (the 7th character is only the encounter)."""
    if code.startswith("S") and len(code.replace(".", "")) == 7:
        return code[:-1]
    return code


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
    # Category headers whose families also hold cervical or thoracic codes (M47.8 -> M47.812
    # cervical spondylosis, M48.0 -> M48.02 cervical stenosis, M51.3 -> M51.34 thoracic) are left
    # out: their lumbar, lumbosacral and sacral children are listed one by one in §1b. Injury codes
    # match on their 6-character stem, so subsequent-encounter and sequela codes (S33.5XXD,
    # S39.012S) count like the initial one.
    # The all-lumbar headers of those children (M48.06, M51.36, M51.37) are kept, since a
    # record may carry the header itself.
    mixed_headers = {"M47.8", "M48.0", "M51.3"}
    lumbar_headers = {"M48.06", "M51.36", "M51.37"}
    icd = sorted(
        {
            _injury_stem(e["code"])
            for e in codes["lbp_diagnosis_icd10cm"]
            if e.get("code") and e["code"] not in mixed_headers
        }
        | lumbar_headers
    )
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


RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CDC_VS = "http://fhir.org/guides/cdc/opioid-cds/ValueSet/"
VSAC_BEERS_RELAXANTS = "http://cts.nlm.nih.gov/fhir/ValueSet/2.16.840.1.113883.3.464.1003.1062"


def _names(names: list[str]) -> list[str]:
    """Whole-word, case-insensitive text patterns for ingredient and brand names."""
    return [rf"\b{n}\b" for n in names]


def _verified_rxnorm(entries: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {"code": e["code"], "display": e["display"].lower()}
        for e in entries
        if e.get("code") and e.get("status") == "verified"
    ]


def _cdc_expansion(shared: Path, name: str) -> list[dict[str, Any]]:
    path = shared / "reference" / "valuesets" / "cdc-opioid-cds-r4" / f"{name}.json"
    contains: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["expansion"][
        "contains"
    ]
    return contains


def medication_value_sets(codes: dict[str, Any], shared: Path) -> None:
    """Issue 4: opioid, benzodiazepine, buprenorphine, naloxone and muscle-relaxant value sets."""
    # clinical-codes.md §4a (S2 OMTKData, RxNav 2020-10-20): opioid ingredients, TTY=IN. The
    # display is the ingredient name the MME data (logic/data) is keyed by; naloxone is not one.
    opioids = _verified_rxnorm(codes["opioid_ingredients_rxnorm"])
    write(
        "opioid-ingredients",
        local_value_set(
            "opioid-ingredients",
            "Opioid ingredients (RxNorm IN)",
            "Opioid ingredients, RxNorm TTY=IN (clinical-codes.md §4a; S2 OMTKData.cql generated "
            "from RxNav 2020-10-20), with their names and common US brand names as text patterns. "
            "Products are matched by the CDC opioid-analgesics value set and the RxNav strength table.",
            [{"system": RXNORM, "concept": opioids}],
            patterns=_names([c["display"] for c in opioids])
            + _names(
                [
                    "oxycontin",
                    "percocet",
                    "roxicodone",
                    "endocet",
                    "vicodin",
                    "norco",
                    "lortab",
                    "hysingla",
                    "zohydro",
                    "dilaudid",
                    "exalgo",
                    "ms contin",
                    "kadian",
                    "duragesic",
                    "ultram",
                    "ultracet",
                    "conzip",
                    "nucynta",
                    "opana",
                    "demerol",
                    "dolophine",
                    "tylenol #?[34]",
                ]
            ),
        ),
    )
    # RULES.md opioid-order: no card for any buprenorphine product. CDC buprenorphine-and-methadone
    # products (S1) whose name contains buprenorphine, plus the ingredient and brand names.
    buprenorphine_products = [
        {"code": c["code"], "display": c["display"]}
        for c in _cdc_expansion(shared, "buprenorphine-and-methadone-medications")
        if "buprenorphine" in c["display"].lower()
    ]
    buprenorphine_in = [c for c in opioids if c["display"] == "buprenorphine"]
    write(
        "buprenorphine-medications",
        local_value_set(
            "buprenorphine-medications",
            "Buprenorphine products and ingredient",
            "Buprenorphine (RxNorm IN, clinical-codes.md §4a) and the buprenorphine products of the CDC "
            "buprenorphine-and-methadone-medications value set (S1, expansion 2025-02-24). CDC 2022 "
            "gives buprenorphine no MME factor and does not count it in the total.",
            [{"system": RXNORM, "concept": buprenorphine_in + buprenorphine_products}],
            patterns=_names(
                [
                    "buprenorphine",
                    "suboxone",
                    "subutex",
                    "zubsolv",
                    "bunavail",
                    "butrans",
                    "belbuca",
                    "sublocade",
                    "brixadi",
                ]
            ),
        ),
    )
    # RULES.md opioid-order exclusion: reasonCode / reasonReference opioid use disorder. ICD-10-CM
    # F11 family (S5) and the SNOMED opioid dependence / abuse / misuse findings of the CDC
    # conditions-documenting-substance-misuse value set (S1); overdose and "has access" are not OUD.
    oud_words = ("opioid", "opiate", "heroin", "methadone", "morphine", "diamorphine")
    use_words = ("dependence", "abuse", "misuse", "harmful")
    oud_snomed = [
        {"code": c["code"], "display": c["display"]}
        for c in _cdc_expansion(shared, "conditions-documenting-substance-misuse")
        if c["system"] == SNOMED
        and any(w in c["display"].lower() for w in oud_words)
        and any(w in c["display"].lower() for w in use_words)
        and "excluding" not in c["display"].lower()
    ]
    write(
        "opioid-use-disorder",
        local_value_set(
            "opioid-use-disorder",
            "Opioid use disorder",
            "Opioid use disorder: ICD-10-CM F11 and descendants (S5, FY2026) and SNOMED CT opioid "
            "dependence, abuse and misuse findings from the CDC conditions-documenting-substance-misuse "
            "value set (S1).",
            [
                {
                    "system": ICD10CM,
                    "filter": [{"property": "concept", "op": "is-a", "value": "F11"}],
                },
                {"system": SNOMED, "concept": oud_snomed},
            ],
            patterns=[
                r"\bopioid use disorder\b",
                r"\bopioid (?:dependence|addiction|abuse)\b",
                r"\bopiate (?:dependence|addiction|abuse)\b",
                r"\bOUD\b",
            ],
        ),
    )
    # clinical-codes.md §6: the 8 verified ingredients (S4) plus the CDC product value set (S1);
    # the 6 unverified ingredient codes are matched by name only.
    benzo_names = [
        "alprazolam",
        "chlordiazepoxide",
        "clonazepam",
        "diazepam",
        "lorazepam",
        "midazolam",
        "temazepam",
        "triazolam",
        "clorazepate",
        "estazolam",
        "flurazepam",
        "oxazepam",
        "quazepam",
        "clobazam",
    ]
    write(
        "benzodiazepines",
        local_value_set(
            "benzodiazepines",
            "Benzodiazepines (ingredients and products)",
            "Benzodiazepine ingredients, RxNorm TTY=IN verified in the US Core allergy-substance value set "
            "(clinical-codes.md §6, S4), and the CDC benzodiazepine-medications products (S1). "
            "Unverified ingredient codes (clorazepate, estazolam, flurazepam, oxazepam, quazepam, "
            "clobazam) are matched by name only.",
            [
                {
                    "system": RXNORM,
                    "concept": _verified_rxnorm(codes["benzodiazepine_ingredients_rxnorm"]),
                },
                {"valueSet": [CDC_VS + "benzodiazepine-medications"]},
            ],
            patterns=_names(
                benzo_names
                + ["xanax", "valium", "ativan", "klonopin", "restoril", "halcion", "librium"]
                + ["tranxene", "onfi", "sympazan", "seizalam", "nayzilam", "valtoco"]
            ),
        ),
    )
    # clinical-codes.md §5: the nine skeletal muscle relaxants of RULES.md muscle-relaxant-duration
    # (S4 ingredient codes; dantrolene's code is unverified, so it is matched by name only) and the
    # VSAC Beers products (S4, S15).
    relaxant_in = _verified_rxnorm(codes["skeletal_muscle_relaxant_ingredients_rxnorm"])
    relaxant_brands = [
        "flexeril",
        "amrix",
        "fexmid",
        "robaxin",
        "soma",
        "zanaflex",
        "lioresal",
        "ozobax",
        "fleqsuvy",
        "lyvispah",
        "skelaxin",
        "metaxall",
        "norflex",
        "parafon forte",
        "lorzone",
        "dantrium",
        "revonto",
    ]
    write(
        "skeletal-muscle-relaxants",
        local_value_set(
            "skeletal-muscle-relaxants",
            "Skeletal muscle relaxants",
            "Cyclobenzaprine, methocarbamol, carisoprodol, tizanidine, baclofen, metaxalone, orphenadrine, "
            "chlorzoxazone, dantrolene: RxNorm TTY=IN (clinical-codes.md §5, S4; dantrolene by name, "
            "its code is unverified), the VSAC Beers muscle-relaxant products "
            "2.16.840.1.113883.3.464.1003.1062 (S4), names and brand names.",
            [{"system": RXNORM, "concept": relaxant_in}, {"valueSet": [VSAC_BEERS_RELAXANTS]}],
            patterns=_names([c["display"] for c in relaxant_in] + ["dantrolene"] + relaxant_brands),
        ),
    )
    # AGS Beers 2023 (S15): avoid these six at 65+; baclofen, tizanidine and dantrolene are not listed.
    beers = {
        "carisoprodol",
        "chlorzoxazone",
        "cyclobenzaprine",
        "metaxalone",
        "methocarbamol",
        "orphenadrine",
    }
    beers_brands = ["flexeril", "amrix", "fexmid", "robaxin", "soma", "skelaxin", "metaxall"]
    write(
        "beers-muscle-relaxants",
        local_value_set(
            "beers-muscle-relaxants",
            "Skeletal muscle relaxants to avoid in older adults (AGS Beers 2023)",
            "VSAC Potentially Harmful Skeletal Muscle Relaxants for Older Adults "
            "2.16.840.1.113883.3.464.1003.1062 (S4) and the six Beers ingredients carisoprodol, "
            "chlorzoxazone, cyclobenzaprine, metaxalone, methocarbamol, orphenadrine (RxNorm IN, S4, S15).",
            [
                {"system": RXNORM, "concept": [c for c in relaxant_in if c["display"] in beers]},
                {"valueSet": [VSAC_BEERS_RELAXANTS]},
            ],
            patterns=_names(sorted(beers) + beers_brands + ["norflex", "parafon forte", "lorzone"]),
        ),
    )
    # CDC 2022 Rec 8: offer naloxone. Any naloxone product (S1, plus the ingredient 7242) tells
    # the opioid rule naloxone is already there; the rule ignores buprenorphine/naloxone combinations.
    write(
        "naloxone",
        local_value_set(
            "naloxone",
            "Naloxone (ingredient and products)",
            "Naloxone, RxNorm IN 7242 (clinical-codes.md §4a, S1), and the CDC naloxone-medications "
            "products (S1), with names as text patterns.",
            [
                {"system": RXNORM, "concept": _verified_rxnorm(codes["naloxone_rxnorm"])},
                {"valueSet": [CDC_VS + "naloxone-medications"]},
            ],
            patterns=_names(["naloxone", "narcan", "kloxxado", "zimhi", "rextovy"]),
        ),
    )
    # The product the naloxone suggestion creates: naloxone 4 mg/actuation (0.1 mL) nasal spray,
    # taken with its current RxNorm name from the CDC naloxone-medications value set (S1).
    suggested = [
        {"code": c["code"], "display": c["display"]}
        for c in _cdc_expansion(shared, "naloxone-medications")
        if c["code"] == "1725059"
    ]
    if len(suggested) != 1:
        raise SystemExit("RxNorm 1725059 is no longer in the CDC naloxone-medications value set")
    write(
        "naloxone-suggested-product",
        local_value_set(
            "naloxone-suggested-product",
            "Naloxone product the opioid card suggests",
            "Naloxone hydrochloride 4 MG/ACTUAT (40 MG/ML) nasal spray, RxNorm SCD 1725059, the "
            "generic of Narcan 4 mg; a member of the CDC naloxone-medications value set (S1).",
            [{"system": RXNORM, "concept": suggested}],
        ),
    )


# --- Red flags and lumbar imaging (issue 3; RULES.md "Red flags", "imaging-without-red-flags") ---

VSAC = "http://cts.nlm.nih.gov/fhir/ValueSet/"
CDC = "http://fhir.org/guides/cdc/opioid-cds/ValueSet/"
CPT = "http://www.ama-assn.org/go/cpt"
LOINC = "http://loinc.org"


def icd10cm_families(*codes: str) -> dict[str, Any]:
    """An ICD-10-CM include of each code and its descendants (is-a, matched by prefix)."""
    return {
        "system": ICD10CM,
        "filter": [{"property": "concept", "op": "is-a", "value": c} for c in codes],
    }


def concepts_of(
    codes: dict[str, Any], group: str, system: str, only: set[str] | None = None
) -> dict[str, Any]:
    """Codes of one clinical-codes.json group and system (optionally only some of them)."""
    picked = [
        {"code": e["code"], "display": e["display"]}
        for e in codes[group]
        if e["system"] == system and e.get("code") and (only is None or e["code"] in only)
    ]
    if only is not None:
        missing = only - {c["code"] for c in picked}
        if missing:
            raise SystemExit(f"{group}: codes not in clinical-codes.json: {sorted(missing)}")
    return {"system": system, "concept": picked}


def included(*urls: str) -> dict[str, Any]:
    return {"valueSet": list(urls)}


def red_flag_value_sets(codes: dict[str, Any]) -> None:
    # Conditions of each red-flag group of RULES.md (windows live in RuleConfig, not here).
    cancer_categories = [f"C{n:02d}" for n in range(97)] + ["C4A", "C7A", "C7B"]
    write(
        "red-flag-cancer",
        local_value_set(
            "red-flag-cancer",
            "Red flag: cancer, active or history",
            "RULES.md red flag 'cancer (active or history)': the CDC malignant-cancer conditions "
            "value set (opioid-cds-r4 @ b29bdcbf) and VSAC All Primary and Secondary Cancer "
            "2.16.840.1.113762.1.4.1111.161 (S4), by canonical URL; ICD-10-CM C00-C96 (every "
            "category of the chapter's malignant-neoplasm blocks, C4A, C7A and C7B included) and "
            "Z85 personal history of malignant neoplasm, with descendants (S5); SNOMED CT codes of "
            "clinical-codes.md 2b (S4; 417662000 and 429667007 history codes verified-secondary, S20).",
            [
                included(
                    f"{CDC}cdc-malignant-cancer-conditions", f"{VSAC}2.16.840.1.113762.1.4.1111.161"
                ),
                icd10cm_families(*cancer_categories, "Z85"),
                concepts_of(codes, "red_flag_cancer", SNOMED),
            ],
        ),
    )
    fever_and_infection = codes["red_flag_fever_spinal_infection"]
    infection_icd = sorted(
        e["code"]
        for e in fever_and_infection
        if e["system"] == ICD10CM and not e["code"].startswith("R50")
    )
    infection_snomed = {
        e["code"] for e in fever_and_infection if e["system"] == SNOMED and e["code"] != "386661006"
    }
    write(
        "red-flag-spinal-infection",
        local_value_set(
            "red-flag-spinal-infection",
            "Red flag: spinal infection",
            "RULES.md red flag 'spinal infection': vertebral osteomyelitis, pyogenic disc infection, "
            "discitis, other infective spondylopathies of the lumbar/lumbosacral/sacral region, "
            "intraspinal abscess and spinal tuberculosis (ICD-10-CM FY2026, S5, with descendants) and "
            "the SNOMED CT osteomyelitis / epidural abscess codes of clinical-codes.md 2b (S4).",
            [
                icd10cm_families(*infection_icd),
                concepts_of(codes, "red_flag_fever_spinal_infection", SNOMED, infection_snomed),
            ],
        ),
    )
    write(
        "red-flag-fever",
        local_value_set(
            "red-flag-fever",
            "Red flag: fever (Condition)",
            "RULES.md red flag 'fever' as a Condition: ICD-10-CM R50 fever of other and unknown "
            "origin with descendants (S5; R50.89 does not exist) and SNOMED CT 386661006 Fever "
            "(named by RULES.md; unverified in clinical-codes.md 2b). Temperatures are read from "
            "Observations in VSAC Body Temperature 2.16.840.1.113762.1.4.1045.152.",
            [
                icd10cm_families("R50"),
                concepts_of(codes, "red_flag_fever_spinal_infection", SNOMED, {"386661006"}),
            ],
        ),
    )
    write(
        "red-flag-iv-drug-use",
        local_value_set(
            "red-flag-iv-drug-use",
            "Red flag: IV drug use",
            "RULES.md red flag 'IV drug use': ICD-10-CM F11-F15 and F19 with descendants (the HEDIS "
            "IV drug abuse families quoted by payer pages, S18; S5) and SNOMED CT 228388006, 228386005, "
            "228387001 (S4), plus the drug-dependence, drug-misuse and drug-injection findings of the "
            "CDC 'conditions documenting substance misuse' value set (opioid-cds-r4 @ b29bdcbf). That "
            "set is not included whole: it also holds alcohol, laxative, vitamin and antidepressant "
            "misuse, overdoses, and negatives such as 'Never injecting drug user' and 'Patient denies "
            "drug use', which are not IV drug use. The members kept are listed below.",
            [
                icd10cm_families("F11", "F12", "F13", "F14", "F15", "F19"),
                {"system": SNOMED, "concept": substance_misuse_drug_findings()},
            ],
        ),
    )
    write(
        "red-flag-immunosuppression",
        local_value_set(
            "red-flag-immunosuppression",
            "Red flag: immunosuppression",
            "RULES.md red flag 'immunosuppression': VSAC HIV 2.16.840.1.113883.3.464.1003.120.12.1003 "
            "and Immunocompromised Conditions 2.16.840.1.113883.3.666.5.1940 (S4), by canonical URL; "
            "ICD-10-CM Z94 transplant status and Z79.6 long-term immunosuppressant use with descendants, "
            "B20, Z21 and D84.8/D84.9 immunodeficiency (S5); SNOMED CT codes of clinical-codes.md 2b (S4).",
            [
                included(
                    f"{VSAC}2.16.840.1.113883.3.464.1003.120.12.1003",
                    f"{VSAC}2.16.840.1.113883.3.666.5.1940",
                ),
                icd10cm_families("Z94", "Z79.6", "B20", "Z21", "D84.8", "D84.9"),
                concepts_of(codes, "red_flag_immunosuppression", SNOMED),
            ],
        ),
    )
    write(
        "red-flag-corticosteroid-use",
        local_value_set(
            "red-flag-corticosteroid-use",
            "Red flag: long-term systemic steroid use (Condition)",
            "RULES.md red flag 'prolonged corticosteroids' as a Condition: ICD-10-CM Z79.52 Long term "
            "(current) use of systemic steroids (S5). Orders are read with red-flag-oral-glucocorticoids.",
            [icd10cm_families("Z79.52")],
        ),
    )
    write(
        "red-flag-oral-glucocorticoids",
        local_value_set(
            "red-flag-oral-glucocorticoids",
            "Red flag: oral glucocorticoid medications",
            "RULES.md red flag 'prolonged corticosteroids' as MedicationRequests: VSAC Glucocorticoids "
            "(oral only) 2.16.840.1.113883.3.464.1003.196.12.1266 (S4; RxNorm SCD/GPCK), by canonical "
            "URL. The text pattern catches orders entered as text (a systemic glucocorticoid named "
            "without an ophthalmic, topical, inhaled, nasal, otic, rectal or injected form).",
            [included(f"{VSAC}2.16.840.1.113883.3.464.1003.196.12.1266")],
            patterns=[
                r"^(?!.*\b(?:ophthalmic|eye|topical|cream|ointment|lotion|gel|inhal\w*|nasal|otic|"
                r"rectal|enema|suppositor\w*|inject\w*|intravenous|intramuscular|intra-articular|"
                r"dental|paste)\b).*\b(?:prednisone|prednisolone|methylprednisolone|dexamethasone|"
                r"hydrocortisone|cortisone|deflazacort)\b"
            ],
        ),
    )
    write(
        "red-flag-osteoporosis",
        local_value_set(
            "red-flag-osteoporosis",
            "Red flag: osteoporosis or fragility fracture",
            "RULES.md red flag 'osteoporosis / fragility fracture': VSAC Osteoporosis "
            "2.16.840.1.113762.1.4.1248.256 (S4), by canonical URL; ICD-10-CM M80 osteoporosis with "
            "current pathological fracture, M81 osteoporosis without it, and M48.5 collapsed vertebra "
            "(the vertebral fragility fracture codes), with descendants (S5); SNOMED CT osteoporosis "
            "and osteoporotic vertebral fracture codes of clinical-codes.md 2b (S4). Traumatic "
            "vertebral fractures (S32.*) are the trauma red flag, with its 90-day window.",
            [
                included(f"{VSAC}2.16.840.1.113762.1.4.1248.256"),
                icd10cm_families("M80", "M81", "M48.5"),
                concepts_of(codes, "red_flag_osteoporosis", SNOMED),
            ],
        ),
    )
    write(
        "red-flag-trauma",
        local_value_set(
            "red-flag-trauma",
            "Red flag: significant trauma or vertebral fracture",
            "RULES.md red flag 'significant trauma / vertebral fracture': ICD-10-CM S32.0 (lumbar "
            "vertebra), S32.1 (sacrum), S32.2 (coccyx) fractures, S33.0 traumatic rupture of a lumbar "
            "disc, S34.2 lumbar/sacral nerve-root injury and S34.3 cauda equina injury, with "
            "descendants (all encounters; S5); SNOMED CT 866087009 of clinical-codes.md 2b (S4). The "
            "CMS166 Trauma value set 2.16.840.1.113883.3.464.1003.113.12.1036 could not be read.",
            [
                icd10cm_families("S32.0", "S32.1", "S32.2", "S33.0", "S34.2", "S34.3"),
                concepts_of(codes, "red_flag_trauma_fracture", SNOMED),
            ],
        ),
    )
    cauda_snomed = {
        "192970008",
        "782388003",
        "12454008",
        "8663007",
        "192971007",
        "782390002",
        "16846261000119106",
        "764272007",
        "449813001",
        "267064002",
        "236648008",
    }
    write(
        "red-flag-cauda-equina",
        local_value_set(
            "red-flag-cauda-equina",
            "Red flag: cauda equina syndrome, urinary retention or saddle anaesthesia",
            "RULES.md red flag 'cauda equina / urinary retention / saddle anaesthesia': ICD-10-CM G83.4 "
            "Cauda equina syndrome (S5); SNOMED CT 192970008 Cauda equina syndrome and the members of "
            "its family read in VSAC (incomplete CES, CES with/without neurogenic bladder, painless "
            "retention due to CES, compression of the cauda equina), 449813001 Numbness of saddle "
            "area, 267064002 and 236648008 retention of urine (S4); VSAC Urinary retention "
            "2.16.840.1.113762.1.4.1164.52 (S4), by canonical URL. Incontinence and skin-sensation "
            "codes (R32, R15.9, R20.x) are left out: alone they are too unspecific.",
            [
                included(f"{VSAC}2.16.840.1.113762.1.4.1164.52"),
                icd10cm_families("G83.4"),
                concepts_of(codes, "red_flag_cauda_equina", SNOMED, cauda_snomed),
            ],
        ),
    )
    write(
        "red-flag-neuro-deficit",
        local_value_set(
            "red-flag-neuro-deficit",
            "Red flag: severe or progressive neurological deficit",
            "RULES.md red flag 'severe or progressive neurological deficit': VSAC Neurologic "
            "impairment 2.16.840.1.113883.3.464.1003.114.12.1012 (CMS166 exclusion; S4), by canonical "
            "URL; ICD-10-CM M21.37 foot drop, G82.2 paraplegia and G83.1 monoplegia of a lower limb, "
            "with descendants (S5); SNOMED CT codes of clinical-codes.md 2b (S4).",
            [
                included(f"{VSAC}2.16.840.1.113883.3.464.1003.114.12.1012"),
                icd10cm_families("M21.37", "G82.2", "G83.1"),
                concepts_of(codes, "red_flag_neuro_deficit", SNOMED),
            ],
        ),
    )
    write(
        "red-flag-weight-loss",
        local_value_set(
            "red-flag-weight-loss",
            "Red flag: unexplained weight loss",
            "RULES.md red flag 'unexplained weight loss': ICD-10-CM R63.4 Abnormal weight loss and R64 "
            "Cachexia (S5), SNOMED CT 422868009 Unexplained weight loss and 448765001 Unintentional "
            "weight loss (S4). VSAC 2.16.840.1.113762.1.4.1248.177 is not included: it is mostly "
            "malnutrition (E40-E46, O25, Z68.1), which is not this red flag.",
            [
                concepts_of(codes, "red_flag_weight_loss", ICD10CM, {"R63.4", "R64"}),
                concepts_of(codes, "red_flag_weight_loss", SNOMED, {"422868009", "448765001"}),
            ],
        ),
    )
    write(
        "red-flag-prior-lumbar-surgery",
        local_value_set(
            "red-flag-prior-lumbar-surgery",
            "Red flag: prior lumbar surgery (Procedure)",
            "RULES.md red flag 'prior lumbar surgery' (ACR AC 2021 variant 5): CPT lumbar arthrodesis "
            "22533, 22558, 22612, 22630, 22633 and lumbar decompression / laminectomy / discectomy "
            "63005, 63012, 63017, 63030, 63042, 63047, 62380 as listed in RULES.md (descriptors "
            "paraphrased; AMA copyright; to verify against the current CPT set), and a text pattern for "
            "a lumbar or lumbosacral fusion, arthrodesis, laminectomy, laminotomy, discectomy or "
            "decompression.",
            [
                {
                    "system": CPT,
                    "concept": [
                        {"code": "22533", "display": "Lateral lumbar interbody arthrodesis"},
                        {"code": "22558", "display": "Anterior lumbar interbody arthrodesis"},
                        {
                            "code": "22612",
                            "display": "Posterior or posterolateral lumbar arthrodesis",
                        },
                        {"code": "22630", "display": "Posterior lumbar interbody arthrodesis"},
                        {
                            "code": "22633",
                            "display": "Combined posterior and interbody lumbar arthrodesis",
                        },
                        {"code": "63005", "display": "Lumbar laminectomy (decompression)"},
                        {
                            "code": "63012",
                            "display": "Lumbar laminectomy with removal of abnormal facets",
                        },
                        {"code": "63017", "display": "Laminectomy, more than 2 lumbar segments"},
                        {"code": "63030", "display": "Lumbar laminotomy with decompression"},
                        {"code": "63042", "display": "Lumbar laminotomy, re-exploration"},
                        {
                            "code": "63047",
                            "display": "Lumbar laminectomy, facetectomy and foraminotomy",
                        },
                        {"code": "62380", "display": "Endoscopic lumbar decompression"},
                    ],
                }
            ],
            patterns=[
                r"\blumb(?:ar|osacral|o-sacral)\b.*(?:fusion|arthrodesis|laminectomy|laminotomy|"
                r"dis[ck]ectomy|decompression)",
                r"(?:fusion|arthrodesis|laminectomy|laminotomy|dis[ck]ectomy|decompression)\b.*"
                r"\blumb(?:ar|osacral|o-sacral)\b",
            ],
        ),
    )


def substance_misuse_drug_findings() -> list[dict[str, str]]:
    """SNOMED CT drug dependence / misuse / injection findings of the CDC substance-misuse set.

    Kept: injection findings, and dependence/abuse/misuse of a drug (not alcohol). Dropped:
    negatives and past use (never, denies, former, in remission), alcohol, caffeine, laxatives,
    vitamins, antidepressants, steroids, overdoses, withdrawal, pregnancy-specific codes.
    """
    source = json.loads((OUT / "conditions-documenting-substance-misuse.json").read_text("utf-8"))
    injection = re.compile(
        r"inject|intravenous|groin injector|shares (?:needles|syringes)|sharing of drug injecting",
        re.I,
    )
    drug = re.compile(
        r"\b(?:opioids?|opiates?|heroin|morphine|opium|methadone|fentanyl|narcotic|cannabis|"
        r"cannabinoid|sedatives?|hypnotics?|anxiolytics?|barbiturates?|benzodiazepines?|diazepam|"
        r"chlordiazepoxide|cocaine|amphetamines?|amfetamines?|methamphetamine|psychostimulants?|"
        r"stimulants?|cathinone|ecstasy|polysubstance|poly-drug|substance|drugs?|illicit)\b",
        re.I,
    )
    misuse = re.compile(r"dependence|abuse|misuse|misuser|addict|drug user|harmful", re.I)
    excluded = re.compile(
        r"never|denies|cessation|remission|ex-drug|former|previously|reduced|concerned|overdose|"
        r"withdrawal|access|unknown|hygiene|cleans|obtains|exchange|behavior - finding|alcohol|"
        r"caffeine|laxative|antidepressant|vitamin|diuretic|nonpsychotropic|steroid|pregnan|"
        r"childbirth|puerper|postpartum|mother|prescription|medication|analgesic|embryopathy|"
        r"occasional|recreational|buprenorphine|agonist therapy",
        re.I,
    )
    out = []
    for item in source["expansion"]["contains"]:
        display = item.get("display", "")
        if item["system"] != SNOMED or excluded.search(display):
            continue
        if injection.search(display) or (drug.search(display) and misuse.search(display)):
            out.append({"code": item["code"], "display": display})
    return out


def lumbar_spine_imaging(codes: dict[str, Any]) -> None:
    # clinical-codes.md §3: the lumbar CPT family of the HEDIS 2014 LBP imaging list (S7, S18),
    # without its non-lumbar codes, the deleted 72010 and the unverified 72080-72084 / 72265.
    cpt_lumbar = {
        "72020",
        "72100",
        "72110",
        "72114",
        "72120",
        "72131",
        "72132",
        "72133",
        "72148",
        "72149",
        "72158",
        "72200",
        "72202",
        "72220",
    }
    write(
        "lumbar-spine-imaging",
        local_value_set(
            "lumbar-spine-imaging",
            "Lumbar spine imaging orders (X-ray, CT, MRI)",
            "RULES.md imaging-without-red-flags: CPT 72020-72220 lumbar family of clinical-codes.md §3 "
            "(HEDIS 2014 LBP imaging list, S7, confirmed by coder pages, S18; descriptors paraphrased, "
            "AMA copyright), LOINC lumbar XR/CT/MR radiology codes of clinical-codes.json "
            "lumbar_imaging_loinc (VSAC XRay Study 2.16.840.1.113883.3.464.1003.198.12.1034, S4). No "
            "SNOMED CT lumbar imaging procedure code could be verified (clinical-codes.md §3): "
            "SNOMED-coded or free-text orders are matched by the text patterns (lumbar / lumbosacral "
            "spine or L-spine with X-ray, radiograph, XR, CT or MRI/MR; not guided procedures, "
            "injections, biopsies or punctures).",
            [
                concepts_of(codes, "lumbar_imaging_cpt", CPT, cpt_lumbar),
                concepts_of(codes, "lumbar_imaging_loinc", LOINC),
            ],
            patterns=[
                r"^(?!.*\b(?:guided|guidance|injections?|biopsy|puncture|ablation|block|drain\w*|"
                r"myelogra\w*|plexus)\b)"
                r"(?=.*(?:\blumbar\b|\blumbosacral\b|\bl(?:[-/ ]?s)?[-/ ]?spine\b))"
                r"(?=.*(?:\bx-?[- ]?rays?\b|\bradiograph\w*|\bxr\b|\bct\b|\bcat scan\b|"
                r"\bcomputed tomography\b|\bmri\b|\bmr\b|\bmagnetic resonance\b))"
            ],
        ),
    )


# --- End-of-life care (RULES.md v2 "Whose data, and which patients") ---

HL7_DISCHARGE_DISPOSITION = "http://terminology.hl7.org/CodeSystem/discharge-disposition"


def end_of_life_value_sets() -> None:
    # The CDC sets are copied unchanged (cdc-opioid-exclusions/, opioid-cds-r4 @ b29bdcbf); these
    # two name them by canonical URL so a rule reads one value set per question.
    write(
        "end-of-life-conditions",
        local_value_set(
            "end-of-life-conditions",
            "End-of-life care: terminal or limited-life-expectancy conditions",
            "RULES.md v2 'End-of-life care: no card at all': the CDC 'conditions likely terminal for "
            "opioid prescribing' and 'limited life expectancy conditions' value sets (opioid-cds-r4 "
            "@ b29bdcbf, shared/reference/valuesets/cdc-opioid-exclusions/), by canonical URL. The "
            "terminal set's expansion holds ICD-10-CM Z51.5 (encounter for palliative care).",
            [
                included(
                    f"{CDC}conditions-likely-terminal-for-opioid-prescribing",
                    f"{CDC}limited-life-expectancy-conditions",
                )
            ],
        ),
    )
    write(
        "end-of-life-discharge-disposition",
        local_value_set(
            "end-of-life-discharge-disposition",
            "End-of-life care: discharged to hospice",
            "RULES.md v2 'End-of-life care': the CDC 'Hospice Disposition' value set (opioid-cds-r4 "
            "@ b29bdcbf, harvested from VSAC 2.16.840.1.113762.1.4.1108.15; SNOMED CT only), by "
            "canonical URL, and the FHIR R4 discharge-disposition code 'hosp' (Hospice), which EHRs "
            "send in Encounter.hospitalization.dischargeDisposition and the CDC set leaves out "
            "(cdc-opioid-exclusions.md).",
            [
                included(f"{CDC}hospice-disposition"),
                {
                    "system": HL7_DISCHARGE_DISPOSITION,
                    "concept": [{"code": "hosp", "display": "Hospice"}],
                },
            ],
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
    red_flag_value_sets(codes)
    lumbar_spine_imaging(codes)
    medication_value_sets(codes, shared)
    end_of_life_value_sets()


if __name__ == "__main__":
    main()
