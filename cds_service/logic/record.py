"""PatientRecord: the one read-only view of the patient that every rule reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any

from cds_service.logic import back_pain
from cds_service.logic.dates import age_in_years, parse_fhir_date
from cds_service.logic.fhir import (
    Condition,
    DraftOrder,
    Encounter,
    Medication,
    MedicationRequest,
    Observation,
    Patient,
    Procedure,
    QuestionnaireResponse,
    ServiceRequest,
    contained_resource,
)


@dataclass(frozen=True)
class PatientRecord:
    """What the service knows about one patient for one hook call (plain, typed, read-only).

    `draft_orders` are every order of the hook's context; `orders_to_check` the ones that get
    order cards (order-select: the `selections`; order-sign: all draft orders).
    """

    today: date
    hook: str
    patient: Patient | None = None
    conditions: tuple[Condition, ...] = ()
    observations: tuple[Observation, ...] = ()
    medication_requests: tuple[MedicationRequest, ...] = ()
    medications: Mapping[str, Medication] = field(default_factory=dict)
    procedures: tuple[Procedure, ...] = ()
    questionnaire_responses: tuple[QuestionnaireResponse, ...] = ()
    encounters: tuple[Encounter, ...] = ()
    draft_orders: tuple[DraftOrder, ...] = ()
    orders_to_check: tuple[DraftOrder, ...] = ()
    # The draft orders as the EHR sent them ("Type/id" -> JSON), so an update suggestion can
    # send back the whole resource, fields the slim models do not read included.
    draft_order_json: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Resources left out because they belong to another patient (RULES.md "Whose data"): only
    # counted, for the call's log line; nothing of theirs is kept.
    other_patient_resources: int = 0

    @cached_property
    def age_years(self) -> int | None:
        birth = parse_fhir_date(self.patient.birthDate) if self.patient else None
        return age_in_years(birth, self.today) if birth else None

    @cached_property
    def conditions_by_id(self) -> dict[str, Condition]:
        return {c.id: c for c in self.conditions if c.id}

    @cached_property
    def back_pain_conditions(self) -> tuple[Condition, ...]:
        """Active (or recurrence/relapse) back-pain Conditions, not refuted or entered in error."""
        return tuple(c for c in self.conditions if back_pain.is_active_back_pain(c))

    @cached_property
    def back_pain_orders(self) -> tuple[DraftOrder, ...]:
        """Draft orders whose reasonCode or reasonReference names back pain."""
        return tuple(
            o
            for o in self.draft_orders
            if back_pain.order_has_back_pain_reason(o, self.conditions_by_id)
        )

    @cached_property
    def has_back_pain_context(self) -> bool:
        """CONTRACT.md "Back-pain context": no context, no card."""
        return bool(self.back_pain_conditions or self.back_pain_orders)

    @cached_property
    def episode_onset(self) -> date | None:
        """Earliest onset of the active back-pain Conditions; None when unknown (a new episode)."""
        return back_pain.episode_onset(self.back_pain_conditions)

    @cached_property
    def episode_days(self) -> int | None:
        onset = self.episode_onset
        return (self.today - onset).days if onset else None

    @cached_property
    def service_orders_to_check(self) -> tuple[ServiceRequest, ...]:
        return tuple(o for o in self.orders_to_check if isinstance(o, ServiceRequest))

    @cached_property
    def medication_orders_to_check(self) -> tuple[MedicationRequest, ...]:
        return tuple(o for o in self.orders_to_check if isinstance(o, MedicationRequest))

    @cached_property
    def draft_medication_requests(self) -> tuple[MedicationRequest, ...]:
        return tuple(o for o in self.draft_orders if isinstance(o, MedicationRequest))

    def medication_for(self, request: MedicationRequest) -> Medication | None:
        """The Medication a request points to: contained, or in the record by id."""
        ref = request.medicationReference.reference if request.medicationReference else None
        if not ref:
            return None
        if ref.startswith("#"):
            return contained_resource(ref, request.contained, Medication)
        med_id = ref.rsplit("/", 1)[-1]
        return self.medications.get(med_id)
