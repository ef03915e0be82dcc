"""Slim, lenient FHIR R4 models of only the fields the rules read.

Why not fhir.resources on the hot path: validating a 1,000-entry Bundle with it costs ~200 ms,
these models ~10 ms (reference/components-measured.md §6). They ignore unknown fields and
accept the quirks real clients send (a single object where FHIR has an array, numbers as
strings), so one odd field never hides a whole resource from the rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

T = TypeVar("T")


def _as_list(value: Any) -> Any:
    """FHIR arrays sometimes arrive as one value (sandbox `category` and `reasonCode`, LIB
    `doseAndRate`, a lone `timeOfDay` string): read it as the one-element array it means."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return value
    return [value]


def _as_float(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return value


ListOf = Annotated[list[T], BeforeValidator(_as_list)]
Decimal = Annotated[float | None, BeforeValidator(_as_float)]


class FhirModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Coding(FhirModel):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class CodeableConcept(FhirModel):
    coding: ListOf[Coding] = Field(default_factory=list)
    text: str | None = None

    def texts(self) -> list[str]:
        """The human-readable strings: text, then every coding display."""
        out = [self.text] if self.text else []
        out.extend(c.display for c in self.coding if c.display)
        return out


class Reference(FhirModel):
    reference: str | None = None
    display: str | None = None


class Period(FhirModel):
    start: str | None = None
    end: str | None = None


class Quantity(FhirModel):
    value: Decimal = None
    unit: str | None = None
    system: str | None = None
    code: str | None = None


class Range(FhirModel):
    low: Quantity | None = None
    high: Quantity | None = None


class Ratio(FhirModel):
    numerator: Quantity | None = None
    denominator: Quantity | None = None


class Patient(FhirModel):
    resourceType: str = "Patient"
    id: str | None = None
    birthDate: str | None = None
    gender: str | None = None


class Condition(FhirModel):
    resourceType: str = "Condition"
    id: str | None = None
    clinicalStatus: CodeableConcept | None = None
    verificationStatus: CodeableConcept | None = None
    category: ListOf[CodeableConcept] = Field(default_factory=list)
    code: CodeableConcept | None = None
    onsetDateTime: str | None = None
    onsetPeriod: Period | None = None
    abatementDateTime: str | None = None
    recordedDate: str | None = None


class ObservationComponent(FhirModel):
    code: CodeableConcept | None = None
    valueQuantity: Quantity | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueInteger: int | None = None


class Observation(FhirModel):
    resourceType: str = "Observation"
    id: str | None = None
    status: str | None = None
    code: CodeableConcept | None = None
    valueQuantity: Quantity | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueInteger: int | None = None
    valueString: str | None = None
    effectiveDateTime: str | None = None
    effectivePeriod: Period | None = None
    effectiveInstant: str | None = None
    issued: str | None = None
    component: ListOf[ObservationComponent] = Field(default_factory=list)

    @property
    def when(self) -> str | None:
        """When it was observed: effectiveDateTime, else effectivePeriod.start, else
        effectiveInstant, else (when the observation itself is undated) issued."""
        return (
            self.effectiveDateTime
            or (self.effectivePeriod.start if self.effectivePeriod else None)
            or self.effectiveInstant
            or self.issued
        )


class MedicationIngredient(FhirModel):
    itemCodeableConcept: CodeableConcept | None = None
    itemReference: Reference | None = None
    isActive: bool | None = None
    strength: Ratio | None = None


class Medication(FhirModel):
    resourceType: str = "Medication"
    id: str | None = None
    code: CodeableConcept | None = None
    form: CodeableConcept | None = None
    ingredient: ListOf[MedicationIngredient] = Field(default_factory=list)


class TimingRepeat(FhirModel):
    boundsDuration: Quantity | None = None
    boundsPeriod: Period | None = None
    boundsRange: Range | None = None
    count: int | None = None
    countMax: int | None = None
    duration: Decimal = None
    durationUnit: str | None = None
    frequency: int | None = None
    frequencyMax: int | None = None
    period: Decimal = None
    periodMax: Decimal = None
    periodUnit: str | None = None
    timeOfDay: ListOf[str] = Field(default_factory=list)


class Timing(FhirModel):
    repeat: TimingRepeat | None = None
    code: CodeableConcept | None = None


class DoseAndRate(FhirModel):
    type: CodeableConcept | None = None
    doseQuantity: Quantity | None = None
    doseRange: Range | None = None


class Dosage(FhirModel):
    # Lines sharing a sequence (or with none) run together; different sequences follow one another.
    sequence: Decimal = None
    text: str | None = None
    timing: Timing | None = None
    asNeededBoolean: bool | None = None
    route: CodeableConcept | None = None
    doseAndRate: ListOf[DoseAndRate] = Field(default_factory=list)
    maxDosePerPeriod: Ratio | None = None


class DispenseRequest(FhirModel):
    validityPeriod: Period | None = None
    numberOfRepeatsAllowed: int | None = None
    quantity: Quantity | None = None
    expectedSupplyDuration: Quantity | None = None


class MedicationRequest(FhirModel):
    resourceType: str = "MedicationRequest"
    id: str | None = None
    status: str | None = None
    intent: str | None = None
    category: ListOf[CodeableConcept] = Field(default_factory=list)
    medicationCodeableConcept: CodeableConcept | None = None
    medicationReference: Reference | None = None
    subject: Reference | None = None
    authoredOn: str | None = None
    reasonCode: ListOf[CodeableConcept] = Field(default_factory=list)
    reasonReference: ListOf[Reference] = Field(default_factory=list)
    dosageInstruction: ListOf[Dosage] = Field(default_factory=list)
    dispenseRequest: DispenseRequest | None = None
    # Only contained Medications and Conditions matter to the rules; others are dropped.
    contained: ListOf[dict[str, Any]] = Field(default_factory=list)


class ServiceRequest(FhirModel):
    resourceType: str = "ServiceRequest"
    id: str | None = None
    status: str | None = None
    intent: str | None = None
    code: CodeableConcept | None = None
    subject: Reference | None = None
    authoredOn: str | None = None
    reasonCode: ListOf[CodeableConcept] = Field(default_factory=list)
    reasonReference: ListOf[Reference] = Field(default_factory=list)
    contained: ListOf[dict[str, Any]] = Field(default_factory=list)


class Procedure(FhirModel):
    resourceType: str = "Procedure"
    id: str | None = None
    status: str | None = None
    code: CodeableConcept | None = None
    performedDateTime: str | None = None
    performedPeriod: Period | None = None


class EncounterHospitalization(FhirModel):
    dischargeDisposition: CodeableConcept | None = None


class Encounter(FhirModel):
    resourceType: str = "Encounter"
    id: str | None = None
    status: str | None = None
    period: Period | None = None
    hospitalization: EncounterHospitalization | None = None


class QuestionnaireAnswer(FhirModel):
    valueCoding: Coding | None = None
    valueBoolean: bool | None = None
    valueInteger: int | None = None
    valueDecimal: Decimal = None
    valueString: str | None = None


class QuestionnaireResponseItem(FhirModel):
    linkId: str | None = None
    definition: str | None = None
    text: str | None = None
    answer: ListOf[QuestionnaireAnswer] = Field(default_factory=list)
    item: ListOf[QuestionnaireResponseItem] = Field(default_factory=list)


# Only these QuestionnaireResponse statuses are finished answers (RULES.md): in-progress,
# stopped and entered-in-error are not.
FINISHED_RESPONSE_STATUSES = frozenset({"completed", "amended"})


class QuestionnaireResponse(FhirModel):
    resourceType: str = "QuestionnaireResponse"
    id: str | None = None
    status: str | None = None
    questionnaire: str | None = None
    authored: str | None = None
    item: ListOf[QuestionnaireResponseItem] = Field(default_factory=list)

    @property
    def finished(self) -> bool:
        return (self.status or "").strip().lower() in FINISHED_RESPONSE_STATUSES

    def all_items(self) -> Iterator[QuestionnaireResponseItem]:
        """Every item, nested ones (groups) included, in document order."""

        def walk(items: Iterable[QuestionnaireResponseItem]) -> Iterator[QuestionnaireResponseItem]:
            for item in items:
                yield item
                yield from walk(item.item)

        return walk(self.item)


DraftOrder = MedicationRequest | ServiceRequest

M = TypeVar("M", bound=FhirModel)


def contained_resource(
    reference: str, contained: Iterable[Mapping[str, Any]], model: type[M]
) -> M | None:
    """The contained resource a local reference ("#id") names, read as `model`; None when the
    reference is not local, nothing of that type has the id, or it cannot be read."""
    if not reference.startswith("#"):
        return None
    kind = model.model_fields["resourceType"].default
    for item in contained:
        if item.get("resourceType") == kind and item.get("id") == reference[1:]:
            try:
                return model.model_validate(item)
            except ValueError:
                return None
    return None
