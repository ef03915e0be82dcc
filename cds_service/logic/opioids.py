"""opioid-order: an opioid drafted for low back pain (RULES.md "opioid-order").

Recommendation (CDC Clinical Practice Guideline for Prescribing Opioids for Pain, 2022, Recs 1, 2,
4, 6, 8 and 11; ACP 2017 noninvasive treatment of low back pain): "Nonopioid therapies are at least
as effective as opioids for many common types of acute pain ... maximize use of nonpharmacologic and
nonopioid pharmacologic therapies"; when opioids are started, prescribe immediate-release opioids
at the lowest effective dose, "no greater quantity than needed for the expected duration of pain
severe enough to require opioids" (a few days or less; more than 7 days rarely), pause and reassess
before >= 50 MME/day, offer naloxone, and use particular caution with benzodiazepines.

When: a draft MedicationRequest to check (order-select: the selections; order-sign: all drafts)
      whose medication is an opioid analgesic (CDC opioid-analgesic product, opioid ingredient by
      code, Medication.ingredient or the RxNav strength table, or text naming an opioid);
      back-pain context (checked by rules.evaluate).
      Not for buprenorphine products, nor for an order whose reasonCode / reasonReference is
      opioid use disorder (treatment of OUD is not an analgesic prescription).
Then: `warning` "Opioids are not first-line for low back pain"; `critical` when the total MME/day
      (this order + the active opioid orders, as RULES.md defines it) is >= 90, or when a
      benzodiazepine is active or drafted (any draft, not only the selections). When a figure
      cannot be computed the card says why, and stays `warning` (`critical` with a benzodiazepine).
      Suggestions: days supply > 7 -> update the draft to a 7-day supply; MME/day >= 50 or a
      benzodiazepine -> create a naloxone MedicationRequest (unless naloxone is already ordered).
      Other opioids drafted in the same call are summed up (how many, the first few names, their
      combined MME/day), never detailed one by one: a card per draft that listed every other
      draft would make the answer grow with the square of the drafts (RULES.md v2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cds_service.logic import back_pain
from cds_service.logic.config import RuleConfig
from cds_service.logic.dosage import order_implausible_reason
from cds_service.logic.fhir import MedicationRequest
from cds_service.logic.findings import Finding, Indicator, Topic
from cds_service.logic.medications import (
    OPIOID_USE_DISORDER,
    MedicationView,
    identify,
    is_active,
    is_benzodiazepine,
    is_buprenorphine,
    is_long_acting_opioid,
    is_muscle_relaxant,
    is_opioid_analgesic,
    is_rescue_naloxone,
)
from cds_service.logic.mme import OrderMme, SupplyDays, days_supply, order_mme
from cds_service.logic.record import PatientRecord
from cds_service.logic.terminology import value_set

# How many other drafted opioids a card names before "and N more".
CO_DRAFTED_NAMED = 3


@dataclass(frozen=True)
class CoDrafted:
    """The other opioids drafted in the same call, in one line's worth of data.

    RULES.md counts this order plus the active orders; the drafted others are shown, not counted
    in that total, so the prescriber sees what signing them all would add."""

    count: int = 0
    # (label, how many drafts carry it), the first few labels in draft order.
    named: tuple[tuple[str, int], ...] = ()
    # Combined MME/day of the ones whose figure can be computed.
    mme_per_day: float = 0.0
    # How many have no figure (unknown factor, no usable or an implausible dose).
    uncomputed: int = 0

    @property
    def unnamed(self) -> int:
        return self.count - sum(n for _, n in self.named)


def _tenths(value: float) -> int:
    """An MME/day figure (already rounded to 0.1) as whole tenths, so sums are exact."""
    return round(value * 10)


@dataclass
class _DraftedOpioids:
    """All drafted opioids summed once, so each card's "other drafts" costs O(1), not O(drafts)."""

    count: int = 0
    tenths: int = 0
    uncomputed: int = 0
    labels: dict[str, int] = field(default_factory=dict)

    def add(self, figure: OrderMme) -> None:
        self.count += 1
        if figure.mme_per_day is None:
            self.uncomputed += 1
        else:
            self.tenths += _tenths(figure.mme_per_day)
        self.labels[figure.label] = self.labels.get(figure.label, 0) + 1

    def without(self, own: OrderMme | None) -> CoDrafted:
        """The drafted opioids other than `own` (None when `own` is not among them)."""
        count, tenths, uncomputed = self.count, self.tenths, self.uncomputed
        own_label = None
        if own is not None:
            count -= 1
            own_label = own.label
            if own.mme_per_day is None:
                uncomputed -= 1
            else:
                tenths -= _tenths(own.mme_per_day)
        if count <= 0:
            return CoDrafted()
        named: list[tuple[str, int]] = []
        for label, n in self.labels.items():
            if label == own_label:
                n -= 1
            if n > 0:
                named.append((label, n))
            if len(named) == CO_DRAFTED_NAMED:
                break
        return CoDrafted(
            count=count, named=tuple(named), mme_per_day=tenths / 10, uncomputed=uncomputed
        )


@dataclass(frozen=True, kw_only=True)
class OpioidOrderFinding(Finding):
    """An opioid drafted for low back pain, with the figures the card shows."""

    medication: str
    order: OrderMme
    # The active opioid orders, counted in the total with this order (RULES.md). One tuple shared
    # by every finding of the call.
    others: tuple[OrderMme, ...] = ()
    # Other opioids drafted in the same call: shown in one line, not counted.
    co_drafted: CoDrafted = CoDrafted()
    total_mme_per_day: float | None = None
    # Some order of the total (this one or an active one) has no MME/day figure: the real total
    # is higher than the one shown.
    uncounted: bool = False
    supply: SupplyDays | None = None
    # Why the dosage cannot be read (an implausible line), for the days supply as for MME/day.
    dosage_problem: str | None = None
    refills: int = 0
    long_acting: bool = False
    benzodiazepines: tuple[str, ...] = ()
    other_cns_depressants: tuple[str, ...] = ()
    naloxone_on_file: str | None = None
    suggest_shorter_supply: bool = False
    suggest_naloxone: bool = False


def _reference(request: MedicationRequest) -> str | None:
    return f"MedicationRequest/{request.id}" if request.id else None


def _treats_opioid_use_disorder(request: MedicationRequest, record: PatientRecord) -> bool:
    oud = value_set(OPIOID_USE_DISORDER)
    if any(oud.matches(reason) for reason in request.reasonCode):
        return True
    for ref in request.reasonReference:
        condition = back_pain.resolve_condition(
            ref.reference, request.contained, record.conditions_by_id
        )
        if condition is not None and back_pain.is_excluded_verification(condition):
            continue
        if condition is not None and oud.matches(condition.code):
            return True
        if condition is None and oud.matches_text(ref.display):
            return True
    return False


def is_opioid_order_to_flag(view: MedicationView, record: PatientRecord) -> bool:
    """An opioid analgesic order this rule speaks to (not buprenorphine, not OUD treatment)."""
    return (
        is_opioid_analgesic(view)
        and not is_buprenorphine(view)
        and not _treats_opioid_use_disorder(view.request, record)
    )


def _counted_opioids(record: PatientRecord) -> list[tuple[MedicationView, bool]]:
    """Every opioid order in the total: all drafts (selected or not) and the active orders.

    Buprenorphine is left out (CDC 2022: not counted in MME). Orders for opioid use disorder stay
    in: their opioid load (methadone) is real."""
    out: list[tuple[MedicationView, bool]] = []
    for request in record.draft_medication_requests:
        view = identify(request, record)
        if is_opioid_analgesic(view) and not is_buprenorphine(view):
            out.append((view, False))
    for request in record.medication_requests:
        if is_active(request):
            view = identify(request, record)
            if is_opioid_analgesic(view) and not is_buprenorphine(view):
                out.append((view, True))
    return out


def _present(record: PatientRecord, predicate: Callable[[MedicationView], bool]) -> tuple[str, ...]:
    """Labels of the active or drafted orders of one class, each saying which it is."""
    found: list[str] = []
    for request in record.draft_medication_requests:
        view = identify(request, record)
        if predicate(view):
            found.append(f"{view.label} (drafted)")
    for request in record.medication_requests:
        if is_active(request):
            view = identify(request, record)
            if predicate(view):
                found.append(f"{view.label} (active)")
    return tuple(dict.fromkeys(found))


def evaluate(record: PatientRecord, config: RuleConfig) -> Sequence[Finding]:
    """One finding per opioid analgesic order to check."""
    to_flag = [
        (request, view)
        for request in record.medication_orders_to_check
        for view in [identify(request, record)]
        if is_opioid_order_to_flag(view, record)
    ]
    if not to_flag:
        return []
    # Everything below is computed once per call; each finding then costs O(1) extra, so the
    # work and the answer stay linear in the number of drafts.
    drafted_figures: dict[int, OrderMme] = {}
    drafted = _DraftedOpioids()
    active: list[OrderMme] = []
    for view, is_active_order in _counted_opioids(record):
        figure = order_mme(view, _reference(view.request), active=is_active_order, config=config)
        if is_active_order:
            active.append(figure)
        else:
            drafted_figures[id(view.request)] = figure
            drafted.add(figure)
    others = tuple(active)
    active_tenths = sum(_tenths(o.mme_per_day) for o in others if o.mme_per_day is not None)
    active_computed = any(o.mme_per_day is not None for o in others)
    active_uncounted = any(o.mme_per_day is None for o in others)
    benzodiazepines = _present(record, is_benzodiazepine)
    relaxants = _present(record, is_muscle_relaxant)
    naloxone = _present(record, is_rescue_naloxone)

    findings: list[Finding] = []
    for request, view in to_flag:
        own = drafted_figures.get(id(request))
        this = own or order_mme(view, _reference(request), active=False, config=config)
        co_drafted = drafted.without(own)
        if this.mme_per_day is not None or active_computed:
            own_tenths = _tenths(this.mme_per_day) if this.mme_per_day is not None else 0
            total: float | None = (own_tenths + active_tenths) / 10
        else:
            total = None
        supply = days_supply(view)
        high = total is not None and total >= config.mme_high_per_day
        caution = total is not None and total >= config.mme_caution_per_day
        repeats = request.dispenseRequest.numberOfRepeatsAllowed if request.dispenseRequest else 0
        findings.append(
            OpioidOrderFinding(
                topic=Topic.OPIOID_ORDER,
                indicator=Indicator.CRITICAL if high or benzodiazepines else Indicator.WARNING,
                order_reference=_reference(request),
                medication=view.label,
                order=this,
                others=others,
                co_drafted=co_drafted,
                total_mme_per_day=total,
                uncounted=this.mme_per_day is None or active_uncounted,
                supply=supply,
                dosage_problem=order_implausible_reason(request),
                refills=max(repeats or 0, 0),
                long_acting=is_long_acting_opioid(view),
                benzodiazepines=benzodiazepines,
                other_cns_depressants=relaxants,
                naloxone_on_file=naloxone[0] if naloxone else None,
                suggest_shorter_supply=(
                    supply is not None and round(supply.days, 2) > config.opioid_max_days_supply
                ),
                suggest_naloxone=(caution or bool(benzodiazepines)) and not naloxone,
            )
        )
    return findings
