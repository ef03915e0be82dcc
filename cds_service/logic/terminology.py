"""Value-set membership: system+code, ICD-10-CM hierarchy by prefix, display-text fallback.

Value sets are FHIR ValueSet JSON files in `logic/valuesets/` (codes live only there). A file
may list codes (`compose.include.concept`), carry a VSAC expansion (`expansion.contains`),
include other value sets by canonical URL (`compose.include.valueSet`), and name ICD-10-CM
families with the `is-a` filter, which is matched by code prefix (ICD-10-CM codes nest by
prefix: M54.5 > M54.50). Text patterns for display-text fallback sit in the extension
`urn:lbp-cds:valueset-text-pattern` (case-insensitive regular expressions); they catch orders
and problems that were entered as free text or with a local code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from cds_service.logic.fhir import CodeableConcept, Coding

TEXT_PATTERN_EXTENSION = "urn:lbp-cds:valueset-text-pattern"
_TEXT_CACHE_SIZE = 20_000

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
UCUM = "http://unitsofmeasure.org"

# Aliases clients use for the same code systems (OIDs, legacy URLs).
_SYSTEM_ALIASES = {
    "urn:oid:2.16.840.1.113883.6.90": ICD10CM,
    # WHO ICD-10 (some non-US feeds): its codes are the ICD-10-CM categories matched here by prefix
    # (M54.5, C79.5, G83.4), so they are read as ICD-10-CM.
    "http://hl7.org/fhir/sid/icd-10": ICD10CM,
    "urn:oid:2.16.840.1.113883.6.3": ICD10CM,
    "http://hl7.org/fhir/sid/icd-10-us": ICD10CM,
    "http://www.cms.gov/medicare/coding/icd10": ICD10CM,
    "urn:oid:2.16.840.1.113883.6.96": SNOMED,
    "http://snomed.info/sct/731000124108": SNOMED,
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "urn:oid:2.16.840.1.113883.6.88": RXNORM,
    "http://www.nlm.nih.gov/research/umls/rxnorm/": RXNORM,
    "urn:oid:2.16.840.1.113883.6.12": CPT,
    "http://www.ama-assn.org/go/cpt/": CPT,
}


def normalise_system(system: str | None) -> str:
    if not system:
        return ""
    s = system.strip()
    return _SYSTEM_ALIASES.get(s.lower(), _SYSTEM_ALIASES.get(s, s))


def normalise_code(system: str, code: str) -> str:
    """ICD-10-CM codes compare without dots and case ("m5450" == "M54.50")."""
    code = code.strip()
    if system == ICD10CM:
        return code.replace(".", "").upper()
    return code


@dataclass(frozen=True)
class ValueSet:
    """An expanded value set: exact codes, ICD-10-CM prefixes and text patterns."""

    url: str
    name: str
    title: str
    codes: frozenset[tuple[str, str]]
    icd10cm_prefixes: tuple[str, ...] = ()
    text_patterns: tuple[re.Pattern[str], ...] = ()
    displays: dict[tuple[str, str], str] = field(default_factory=dict, compare=False, hash=False)
    # All text patterns as one alternation (one regex search per text, not one per pattern),
    # and a bounded memo of texts already seen: drug and problem names recur across charts.
    text_pattern: re.Pattern[str] | None = field(default=None, compare=False, hash=False)
    _text_matches: dict[str, bool] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    _coding_matches: dict[tuple[str | None, str], bool] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    def contains(self, coding: Coding) -> bool:
        if not coding.code:
            return False
        key = (coding.system, coding.code)
        cached = self._coding_matches.get(key)
        if cached is None:
            cached = self._contains(coding.system, coding.code)
            if len(self._coding_matches) >= _TEXT_CACHE_SIZE:
                self._coding_matches.clear()
            self._coding_matches[key] = cached
        return cached

    def _contains(self, raw_system: str | None, raw_code: str) -> bool:
        system = normalise_system(raw_system)
        code = normalise_code(system, raw_code)
        if (system, code) in self.codes:
            return True
        if system == ICD10CM and self.icd10cm_prefixes:
            return code.startswith(self.icd10cm_prefixes)
        # A coding with no system: accept only an exact code match in any system of the set.
        if not system:
            return any(c == code for _, c in self.codes)
        return False

    def display_of(self, coding: Coding) -> str | None:
        """The set's display of a coding it holds (a coding without system: any system)."""
        system = normalise_system(coding.system)
        code = normalise_code(system, coding.code or "")
        if system:
            return self.displays.get((system, code))
        return next((d for (_, c), d in self.displays.items() if c == code), None)

    def matching_coding(self, concept: CodeableConcept | None) -> Coding | None:
        if concept is None:
            return None
        for coding in concept.coding:
            if self.contains(coding):
                return coding
        return None

    def matches_text(self, text: str | None) -> bool:
        if not text or self.text_pattern is None:
            return False
        cached = self._text_matches.get(text)
        if cached is None:
            cached = self.text_pattern.search(text) is not None
            if len(self._text_matches) >= _TEXT_CACHE_SIZE:
                self._text_matches.clear()
            self._text_matches[text] = cached
        return cached

    def matches(self, concept: CodeableConcept | None) -> bool:
        """A coding in the set, or (fallback) a text or display that names the concept."""
        if concept is None:
            return False
        for coding in concept.coding:
            if self.contains(coding):
                return True
        if self.text_pattern is None:
            return False
        return any(self.matches_text(t) for t in concept.texts())

    def describe(self, concept: CodeableConcept | None) -> str:
        """A short human label for a matching concept (for card detail)."""
        if concept is None:
            return self.title
        coding = self.matching_coding(concept)
        if coding is not None and coding.display:
            return coding.display
        texts = concept.texts()
        return texts[0] if texts else self.title


def _load_json(name: str) -> dict[str, Any]:
    path = resources.files("cds_service.logic").joinpath("valuesets").joinpath(name)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@cache
def _catalogue() -> dict[str, dict[str, Any]]:
    """Every ValueSet file, by file stem and by canonical URL."""
    folder = resources.files("cds_service.logic").joinpath("valuesets")
    out: dict[str, dict[str, Any]] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".json"):
            continue
        data = _load_json(entry.name)
        if data.get("resourceType") != "ValueSet":
            continue
        out[entry.name.removesuffix(".json")] = data
        if data.get("url"):
            out[data["url"]] = data
    return out


def _expand(
    data: dict[str, Any],
    seen: set[str],
    codes: set[tuple[str, str]],
    prefixes: set[str],
    patterns: list[str],
    displays: dict[tuple[str, str], str],
) -> None:
    url = data.get("url", "")
    if url in seen:
        return
    seen.add(url)
    for ext in data.get("extension", []):
        if ext.get("url") == TEXT_PATTERN_EXTENSION and ext.get("valueString"):
            patterns.append(ext["valueString"])
    compose = data.get("compose", {})
    for include in compose.get("include", []):
        system = normalise_system(include.get("system"))
        for concept in include.get("concept", []):
            key = (system, normalise_code(system, concept["code"]))
            codes.add(key)
            if concept.get("display"):
                displays[key] = concept["display"]
        for flt in include.get("filter", []):
            if system == ICD10CM and flt.get("op") in ("is-a", "descendent-of"):
                prefixes.add(normalise_code(system, flt["value"]))
            elif not data.get("expansion", {}).get("contains"):
                # Other hierarchies need a terminology server; files that use them must ship
                # their expansion (the VSAC and CDC files do), which is read below instead.
                raise ValueError(f"{url}: filter {flt} on {system} needs an expansion")
        for ref in include.get("valueSet", []):
            included = _catalogue().get(ref)
            if included is None:
                raise ValueError(f"{url}: included value set not found: {ref}")
            _expand(included, seen, codes, prefixes, patterns, displays)
    for item in _walk_expansion(data.get("expansion", {}).get("contains", [])):
        system = normalise_system(item.get("system"))
        if item.get("code"):
            key = (system, normalise_code(system, item["code"]))
            codes.add(key)
            if item.get("display"):
                displays[key] = item["display"]


def _walk_expansion(items: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for item in items:
        yield item
        yield from _walk_expansion(item.get("contains", []))


@cache
def value_set(name: str) -> ValueSet:
    """The value set in `valuesets/<name>.json` (or with that canonical URL), expanded."""
    data = _catalogue().get(name)
    if data is None:
        raise KeyError(f"unknown value set: {name}")
    codes: set[tuple[str, str]] = set()
    prefixes: set[str] = set()
    patterns: list[str] = []
    displays: dict[tuple[str, str], str] = {}
    _expand(data, set(), codes, prefixes, patterns, displays)
    return ValueSet(
        url=data.get("url", name),
        name=data.get("name", name),
        title=data.get("title", name),
        codes=frozenset(codes),
        icd10cm_prefixes=tuple(sorted(prefixes)),
        text_patterns=tuple(re.compile(p, re.IGNORECASE) for p in patterns),
        displays=displays,
        text_pattern=re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
        if patterns
        else None,
    )


def all_value_set_names() -> list[str]:
    return sorted(k for k in _catalogue() if not k.startswith(("http:", "https:", "urn:")))


def warm_up() -> int:
    """Expand every value set now, so the first request is not the slow one."""
    names = all_value_set_names()
    for name in names:
        value_set(name)
    return len(names)
