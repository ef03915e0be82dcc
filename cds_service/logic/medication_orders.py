"""The medication orders of one call, each read once: what it prescribes, which drug classes of
the rules it belongs to, whether it is drafted now or already active, its days supply and its
intended course. Every rule and the red-flag check read orders through this one view, so an order
is identified and measured the same way everywhere (and only once per call).

Current orders (RULES.md v2 "Current orders"): where a rule speaks of an *active* order it means
status `active` and current, decided here only (`MedicationOrder.is_current`):
- with a days supply (supply.py): supplied days = ceil(one fill's days x (1 + refills)), rounded
  to 0.01 first (66 tablets at 3 a day is 22 days, not 21.999...). authoredOn is the first
  supplied day, so the last one is authoredOn + supplied days - 1; the order is current while that
  day is today or later, i.e. while (today - authoredOn) < supplied days. A 30-day supply authored
  29 days ago ends today (current); authored 30 days ago it ended yesterday (stale);
- without a days supply: current when authoredOn is at most `current_order_days` (90) days ago;
- no authoredOn (or one that cannot be read): current. An authoredOn after today: current.
dispenseRequest.validityPeriod plays no part (it is how long the order may be filled).
"""

from __future__ import annotations

import math
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
    def supplied_days(self) -> int | None:
        """Whole days the order supplies from authoredOn: ceil(one fill x fills), None when no
        days supply can be computed."""
        supply = self.supply
        if supply is None:
            return None
        days = round(supply.days * self.fills, 2)
        return math.ceil(days) if math.isfinite(days) else None

    def is_current(self, today: date, current_order_days: int) -> bool:
        """Status `active` and current on `today` (module docstring: the one test of RULES.md
        "Current orders"). A draft is never a current order of the record."""
        if not self.active:
            return False
        authored = self.authored
        if authored is None:
            return True
        elapsed = (today - authored).days
        if elapsed < 0:
            return True
        supplied = self.supplied_days
        if supplied is not None:
            return elapsed < supplied
        if self.supply is not None:  # a supply too large to count in days: still running
            return True
        return elapsed <= current_order_days

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
