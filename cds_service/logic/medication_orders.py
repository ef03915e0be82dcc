"""The medication orders of one call, each read once: what it prescribes, which drug classes of
the rules it belongs to, whether it is drafted now or already active, its days supply and its
intended course. Every rule and the red-flag check read orders through this one view, so an order
is identified and measured the same way everywhere (and only once per call).
"""

from __future__ import annotations

from datetime import date
from functools import cached_property

from cds_service.logic.dates import parse_fhir_date
from cds_service.logic.dosage import order_implausible_reason
from cds_service.logic.fhir import CodeableConcept, MedicationRequest
from cds_service.logic.medications import (
    MedicationView,
    identify,
    is_active,
    is_beers_muscle_relaxant,
    is_benzodiazepine,
    is_buprenorphine,
    is_long_acting_opioid,
    is_muscle_relaxant,
    is_opioid_analgesic,
    is_rescue_naloxone,
)
from cds_service.logic.record import PatientRecord
from cds_service.logic.supply import Course, Supply, days_supply, fills, intended_course


class MedicationOrder:
    """One MedicationRequest of the call. What it prescribes, its drug classes and figures are
    computed on first use and kept (a record can hold thousands of orders; most are never asked
    about). `drafted`: a draft order of the hook's context (not yet signed); `to_check`: a draft
    that gets order cards (order-select: in `selections`; order-sign: every draft)."""

    def __init__(
        self,
        request: MedicationRequest,
        record: PatientRecord,
        *,
        drafted: bool = False,
        to_check: bool = False,
    ) -> None:
        self.request = request
        self._record = record
        self.drafted = drafted
        self.to_check = to_check
        # FHIR status `active`: an order of the record the patient is on, not a draft.
        self.active = not drafted and is_active(request)
        self._medication: MedicationView | None = None

    @property
    def concept(self) -> CodeableConcept | None:
        """The prescribed product's code: the request's own CodeableConcept when it has one (no
        need to identify the order further), else the identified Medication's code."""
        if self.request.medicationCodeableConcept is not None:
            return self.request.medicationCodeableConcept
        return self.medication.concept

    @property
    def medication(self) -> MedicationView:
        """What the order prescribes (medications.identify), read on first use. Every order of a
        record is scanned for red flags, so this stays cheaper than a cached_property."""
        if self._medication is None:
            self._medication = identify(self.request, self._record)
        return self._medication

    @property
    def reference(self) -> str | None:
        """ "MedicationRequest/<id>", as findings and suggestions name the order."""
        return f"MedicationRequest/{self.request.id}" if self.request.id else None

    @property
    def label(self) -> str:
        return self.medication.label

    @cached_property
    def authored(self) -> date | None:
        return parse_fhir_date(self.request.authoredOn)

    @cached_property
    def opioid_analgesic(self) -> bool:
        return is_opioid_analgesic(self.medication)

    @cached_property
    def buprenorphine(self) -> bool:
        return is_buprenorphine(self.medication)

    @cached_property
    def long_acting_opioid(self) -> bool:
        return is_long_acting_opioid(self.medication)

    @cached_property
    def benzodiazepine(self) -> bool:
        return is_benzodiazepine(self.medication)

    @cached_property
    def rescue_naloxone(self) -> bool:
        return is_rescue_naloxone(self.medication)

    @cached_property
    def muscle_relaxant(self) -> bool:
        return is_muscle_relaxant(self.medication)

    @cached_property
    def beers_muscle_relaxant(self) -> bool:
        return is_beers_muscle_relaxant(self.medication)

    @cached_property
    def supply(self) -> Supply | None:
        """Days one fill covers (supply.py, the one reader)."""
        return days_supply(self.medication)

    @cached_property
    def course(self) -> Course | None:
        """The intended course: one fill x (1 + refills)."""
        return intended_course(self.medication)

    @property
    def fills(self) -> int:
        return fills(self.medication)

    @cached_property
    def dosage_problem(self) -> str | None:
        """Why a dosage line cannot be a real instruction (dosage.implausible_reason), if one."""
        return order_implausible_reason(self.request)


def medication_orders(record: PatientRecord) -> tuple[MedicationOrder, ...]:
    """Every MedicationRequest of the call: the drafts first (in context order), then the record's."""
    checked = {id(o) for o in record.medication_orders_to_check}
    drafts = tuple(
        MedicationOrder(r, record, drafted=True, to_check=id(r) in checked)
        for r in record.draft_medication_requests
    )
    return drafts + tuple(MedicationOrder(r, record) for r in record.medication_requests)
