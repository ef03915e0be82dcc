"""Chart: what the rules read in one hook call, and what is derived from it once.

The PatientRecord and the thresholds, plus the views every rule shares, each built at most once
per call: the medication orders (identified, classified and measured once), the active orders of
a drug class split into current and stale (RULES.md v2 "Current orders"), and the red flags (the
record's coded ones and its counting red-flag screen, and each draft order's stated reason on top).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from cds_service.logic.config import RuleConfig
from cds_service.logic.fhir import DraftOrder
from cds_service.logic.medication_orders import MedicationOrder, medication_orders
from cds_service.logic.record import PatientRecord
from cds_service.logic.red_flag_screen import RedFlagScreen, latest_screen
from cds_service.logic.red_flags import RedFlagReport, record_red_flags, with_order_reason


@dataclass(frozen=True)
class ActiveOrders:
    """The record's status-`active` orders of one drug class: `current` are what the rules call
    active; `stale` are left out, and a card that would have used them says how many."""

    current: tuple[MedicationOrder, ...] = ()
    stale: tuple[MedicationOrder, ...] = ()


class Chart:
    def __init__(self, record: PatientRecord, config: RuleConfig) -> None:
        self.record = record
        self.config = config
        self._order_red_flags: dict[int, RedFlagReport] = {}

    @cached_property
    def medication_orders(self) -> tuple[MedicationOrder, ...]:
        """Every MedicationRequest of the call: the drafts first, then the record's."""
        return medication_orders(self.record)

    @cached_property
    def drafted_medications(self) -> tuple[MedicationOrder, ...]:
        return tuple(o for o in self.medication_orders if o.drafted)

    @cached_property
    def medications_to_check(self) -> tuple[MedicationOrder, ...]:
        """The drafts that get order cards (order-select: the selections; order-sign: all)."""
        return tuple(o for o in self.medication_orders if o.to_check)

    @cached_property
    def status_active_medications(self) -> tuple[MedicationOrder, ...]:
        """The record's orders with status `active`, current or stale: rules read `active_of`."""
        return tuple(o for o in self.medication_orders if o.active)

    def active_of(self, in_class: Callable[[MedicationOrder], bool]) -> ActiveOrders:
        """The status-active orders of one class, split by MedicationOrder.is_current (the class
        is tested first: an order of no class a rule reads is never measured)."""
        today, days = self.record.today, self.config.current_order_days
        current: list[MedicationOrder] = []
        stale: list[MedicationOrder] = []
        for order in self.status_active_medications:
            if in_class(order):
                (current if order.is_current(today, days) else stale).append(order)
        return ActiveOrders(tuple(current), tuple(stale))

    @cached_property
    def red_flag_screen(self) -> RedFlagScreen | None:
        """The counting red-flag screen of this episode (red_flag_screen.py), or None."""
        return latest_screen(
            self.record.questionnaire_responses,
            self.record.today,
            self.config.red_flag_screen_days,
            self.record.episode_onset,
        )

    @cached_property
    def red_flags(self) -> RedFlagReport:
        """The red flags in the record (what every order shares): the coded ones and each "yes"
        on the counting red-flag screen."""
        report = record_red_flags(self.record, self.config, self.medication_orders)
        screen = self.red_flag_screen
        return report.with_hits(screen.hits()) if screen else report

    @cached_property
    def _draft_orders(self) -> dict[str, DraftOrder]:
        return {f"{o.resourceType}/{o.id}": o for o in self.record.draft_orders if o.id}

    def red_flags_for(self, order_reference: str | None) -> RedFlagReport:
        """The red flags of the draft order named "Type/id" (the record's when none is named)."""
        order = self._draft_orders.get(order_reference) if order_reference else None
        return self.red_flags_of(order)

    def red_flags_of(self, order: DraftOrder | None) -> RedFlagReport:
        """The record's red flags plus those in the order's reasonCode / reasonReference."""
        if order is None:
            return self.red_flags
        if id(order) not in self._order_red_flags:
            self._order_red_flags[id(order)] = with_order_reason(self.red_flags, order, self.record)
        return self._order_red_flags[id(order)]
