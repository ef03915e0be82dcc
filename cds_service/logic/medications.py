"""What a MedicationRequest prescribes, and which drug classes of the rules it belongs to.

A request names its medication by `medicationCodeableConcept`, or by `medicationReference` to a
contained Medication or one in the record (then `Medication.code` and `Medication.ingredient` count,
and the reference's `display` when nothing else is there). Membership of a class, in this order
(RULES.md opioid-order "When"):
1. a coding of the product or of an ingredient in the class's value set (RxNorm SCD/SBD or IN);
2. an ingredient: `Medication.ingredient.itemCodeableConcept`, or the opioid ingredients the RxNav
   strength table gives for the product's RxNorm code;
3. as a last resort, the display text (ingredient or brand names; orders typed as free text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from cds_service.logic.drug_tables import strengths_for
from cds_service.logic.fhir import CodeableConcept, Coding, Medication, MedicationRequest
from cds_service.logic.record import PatientRecord
from cds_service.logic.terminology import RXNORM, normalise_system, value_set

# Value set names (files in logic/valuesets/).
OPIOID_ANALGESIC_PRODUCTS = "opioid-analgesics-with-ambulatory-misuse-potential"
EXTENDED_RELEASE_OPIOIDS = "extended-release-opioid-with-ambulatory-misuse-potential"
OPIOID_INGREDIENTS = "opioid-ingredients"
BUPRENORPHINE = "buprenorphine-medications"
BENZODIAZEPINES = "benzodiazepines"
NALOXONE = "naloxone"
MUSCLE_RELAXANTS = "skeletal-muscle-relaxants"
BEERS_MUSCLE_RELAXANTS = "beers-muscle-relaxants"
OPIOID_USE_DISORDER = "opioid-use-disorder"
# The one naloxone product the opioid card suggests (4 mg nasal spray; in the CDC naloxone set).
NALOXONE_PRODUCT = "naloxone-suggested-product"

_LONG_ACTING_WORDS = re.compile(
    r"extended[- ]release|\b(?:er|xr|sr|cr|xl)\b|\b\d+ ?hr?\b|transdermal|\bpatch|contin\b"
)


@dataclass(slots=True)
class MedicationView:
    """A request's medication, however the request names it (read-only by convention: built
    once per order of every record, so without the cost of a frozen dataclass)."""

    request: MedicationRequest
    concept: CodeableConcept | None
    medication: Medication | None = None
    reference_display: str | None = None

    def texts(self) -> list[str]:
        """Human-readable names: the concept's text and displays, then the reference display."""
        out = self.concept.texts() if self.concept else []
        if self.reference_display:
            out.append(self.reference_display)
        return out

    def names(self) -> list[str]:
        """Every name the order gives its drug: `texts()`, then its ingredients' names."""
        return self.texts() + [t for c in self.ingredient_concepts() for t in c.texts()]

    def ingredient_concepts(self) -> list[CodeableConcept]:
        if self.medication is None:
            return []
        return [i.itemCodeableConcept for i in self.medication.ingredient if i.itemCodeableConcept]

    def rxnorm_codes(self) -> list[str]:
        if self.concept is None:
            return []
        return [
            c.code.strip()
            for c in self.concept.coding
            if c.code and normalise_system(c.system) == RXNORM
        ]

    @property
    def label(self) -> str:
        """A name for the card: the text, else a coding display, else an ingredient."""
        names = self.texts()
        if names:
            return names[0]
        for concept in self.ingredient_concepts():
            if concept.texts():
                return concept.texts()[0]
        if self.concept is not None:
            for coding in self.concept.coding:
                if coding.code:
                    return f"{coding.system or 'code'} {coding.code}"
        return "the medication"

    @property
    def dose_form_text(self) -> str:
        """Dose-form words found on the Medication or in the names (to tell a patch)."""
        parts = self.texts()
        if self.medication is not None and self.medication.form is not None:
            parts.extend(self.medication.form.texts())
        return " ".join(parts).lower()


def identify(request: MedicationRequest, record: PatientRecord) -> MedicationView:
    """The medication a request prescribes: its CodeableConcept, or the referenced Medication."""
    if request.medicationCodeableConcept is not None:
        return MedicationView(request, request.medicationCodeableConcept)
    medication = record.medication_for(request)
    display = request.medicationReference.display if request.medicationReference else None
    return MedicationView(
        request,
        medication.code if medication is not None else None,
        medication,
        display,
    )


def drug_name_in(view: MedicationView, value_set_name: str) -> str | None:
    """The first ingredient (else brand) of a value set's text patterns that the order's names
    give, as written there: "oxycodone" in "Oxycodone Hydrochloride 5 MG Oral Tablet". The
    patterns list ingredients before brands, so an ingredient wins."""
    texts = view.names()
    for pattern in value_set(value_set_name).text_patterns:
        for text in texts:
            found = pattern.search(text)
            if found:
                return found.group(0)
    return None


def in_value_set(view: MedicationView, name: str) -> bool:
    """Product or ingredient coded in the set; else an ingredient it names; else its text."""
    concepts = [c for c in (view.concept, *view.ingredient_concepts()) if c is not None]
    codings = tuple((c.system, c.code) for concept in concepts for c in concept.coding)
    texts = tuple(view.names())
    return _member(name, codings, tuple(view.rxnorm_codes()), texts)


@lru_cache(maxsize=65_536)
def _member(
    name: str,
    codings: tuple[tuple[str | None, str | None], ...],
    rxnorm_codes: tuple[str, ...],
    texts: tuple[str, ...],
) -> bool:
    # Memoised on the medication's codes and names: the same drugs recur in every chart, and
    # the answer depends on nothing else (value sets and the strength table are fixed data).
    vs = value_set(name)
    if any(vs.contains(Coding(system=system, code=code)) for system, code in codings):
        return True
    for code in rxnorm_codes:
        if any(vs.matches_text(s.ingredient) for s in strengths_for(code)):
            return True
    return any(vs.matches_text(t) for t in texts)


def is_opioid_analgesic(view: MedicationView) -> bool:
    """CDC opioid-analgesic product, or an opioid ingredient (RULES.md opioid-order)."""
    if value_set(OPIOID_ANALGESIC_PRODUCTS).matching_coding(view.concept) is not None:
        return True
    return in_value_set(view, OPIOID_INGREDIENTS)


def is_long_acting_opioid(view: MedicationView) -> bool:
    """Extended-release / long-acting: the CDC ER value set, or the product name says so
    (CDC 2022 counts transdermal patches among ER/LA opioids)."""
    if value_set(EXTENDED_RELEASE_OPIOIDS).matching_coding(view.concept) is not None:
        return True
    return _LONG_ACTING_WORDS.search(view.dose_form_text) is not None


def is_buprenorphine(view: MedicationView) -> bool:
    return in_value_set(view, BUPRENORPHINE)


def is_benzodiazepine(view: MedicationView) -> bool:
    return in_value_set(view, BENZODIAZEPINES)


def is_rescue_naloxone(view: MedicationView) -> bool:
    """Naloxone on its own: buprenorphine/naloxone and other opioid combinations do not count."""
    return in_value_set(view, NALOXONE) and not is_opioid_analgesic(view)


def is_muscle_relaxant(view: MedicationView) -> bool:
    return in_value_set(view, MUSCLE_RELAXANTS)


def is_beers_muscle_relaxant(view: MedicationView) -> bool:
    return in_value_set(view, BEERS_MUSCLE_RELAXANTS)


def is_active(request: MedicationRequest) -> bool:
    """An order the patient is on now: FHIR status `active`."""
    return (request.status or "").strip().lower() == "active"


def suggested_naloxone() -> Coding:
    """The naloxone product to suggest (CDC 2022 Recommendation 8): the one RxNorm code of the
    naloxone-suggested-product value set, with its display."""
    product = value_set(NALOXONE_PRODUCT)
    (system, code), *_ = sorted(product.codes)
    if system != RXNORM:
        raise ValueError(f"{NALOXONE_PRODUCT} must hold one RxNorm product")
    return Coding(system=system, code=code, display=product.displays[(system, code)])
