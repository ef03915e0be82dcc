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
      Not for patients the CDC 2022 guideline excludes (RULES.md v2; cdc-opioid-exclusions.md):
      a Condition in the CDC sickle-cell value set in any clinicalStatus, or in the CDC
      malignant-cancer value set with clinicalStatus active / recurrence / relapse (as everywhere,
      no clinicalStatus and no abatement reads as active); never a refuted or entered-in-error
      one. By code only (these sets have no text patterns). Unlike the CDC's CQL, any Condition
      category counts, and an active cancer Condition is enough (the CDC also counts two
      encounters with a cancer diagnosis in 12 months). Cancer stays an imaging red flag in any
      status (red_flags.py); end-of-life care silences every card (rules.evaluate).
Then: `warning` "Opioids are not first-line for low back pain"; `critical` when the total MME/day
      (this order + the active opioid orders, as RULES.md defines it) is >= 90, or when a
      benzodiazepine is active or drafted (any draft, not only the selections). "Active" is
      status active and current (medication_orders.py, RULES.md v2 "Current orders"): stale
      active opioid, benzodiazepine, muscle-relaxant and naloxone orders are left out, and the
      finding counts them for the card. When a figure
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
from enum import IntEnum

from cds_service.logic import back_pain
from cds_service.logic.chart import ActiveOrders, Chart
from cds_service.logic.config import RuleConfig
from cds_service.logic.dosage import range_note
from cds_service.logic.fhir import Coding, Condition, MedicationRequest
from cds_service.logic.findings import Finding, Indicator, Topic
from cds_service.logic.guidelines import Citation
from cds_service.logic.medication_orders import MedicationOrder
from cds_service.logic.medications import OPIOID_USE_DISORDER, drug_name_in, suggested_naloxone
from cds_service.logic.mme import OrderMme, order_mme
from cds_service.logic.record import PatientRecord
from cds_service.logic.rules.rule import ORDER_HOOKS, Rule
from cds_service.logic.supply import Supply
from cds_service.logic.terminology import value_set


class MmeBand(IntEnum):
    """Where the total MME/day stands against the CDC 2022 thresholds (rounded to 0.1 first)."""

    UNKNOWN = 0  # no figure can be computed
    BELOW_CAUTION = 1
    CAUTION = 2  # >= mme_caution_per_day (50): pause and reassess, offer naloxone
    HIGH = 3  # >= mme_high_per_day (90): high overdose risk


# How many other drafted opioids a card names before "and N more".
CO_DRAFTED_NAMED = 3

OPIOID_INGREDIENTS = "opioid-ingredients"

# The CDC 2022 opioid CDS exclusions this rule applies (cdc-opioid-exclusions.md).
SICKLE_CELL_DISEASES = "sickle-cell-diseases"
MALIGNANT_CANCER = "cdc-malignant-cancer-conditions"


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
    """An opioid drafted for low back pain, with the figures and decisions the card shows."""

    medication: str
    # The ingredient (or brand) the order's name gives, as written there ("oxycodone"), for a
    # short summary; None when no name in the order names one (the card cuts `medication`).
    drug_name: str | None = None
    order: OrderMme
    # The active opioid orders, counted in the total with this order (RULES.md). One tuple shared
    # by every finding of the call.
    others: tuple[OrderMme, ...] = ()
    # Other opioids drafted in the same call: shown in one line, not counted.
    co_drafted: CoDrafted = CoDrafted()
    total_mme_per_day: float | None = None
    band: MmeBand = MmeBand.UNKNOWN
    # Some order of the total (this one or an active one) has no MME/day figure: the real total
    # is higher than the one shown.
    uncounted: bool = False
    supply: Supply | None = None
    # Why the dosage cannot be read (an implausible line), for the days supply as for MME/day.
    dosage_problem: str | None = None
    # A dose given as a range counts at its upper bound: "1-2 tablets: 2 used" (RULES.md "Doses").
    dose_range_used: str | None = None
    refills: int = 0
    long_acting: bool = False
    benzodiazepines: tuple[str, ...] = ()
    other_cns_depressants: tuple[str, ...] = ()
    naloxone_on_file: str | None = None
    # Active orders of the classes above (opioids, benzodiazepines, muscle relaxants, naloxone)
    # left out as stale: status active but no longer current (RULES.md v2 "Current orders").
    stale_left_out: int = 0
    current_order_days: int = 0
    suggest_shorter_supply: bool = False
    suggest_naloxone: bool = False
    # The product the naloxone suggestion orders (when it is suggested).
    naloxone_product: Coding | None = None
    # The thresholds behind the band and the supply advice, for the card's wording.
    caution_mme_per_day: float = 0.0
    high_mme_per_day: float = 0.0
    max_days_supply: int = 0


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


def _sickle_cell(condition: Condition) -> bool:
    """Sickle cell disease, in any clinicalStatus (CDC: "Sickle Cell Assumed Active")."""
    return value_set(SICKLE_CELL_DISEASES).matching_coding(condition.code) is not None


def _active_cancer(condition: Condition) -> bool:
    return (
        back_pain.is_clinically_active(condition)
        and value_set(MALIGNANT_CANCER).matching_coding(condition.code) is not None
    )


def guideline_excludes(record: PatientRecord) -> bool:
    """The CDC 2022 guideline does not apply: sickle cell disease or active cancer."""
    return any(
        not back_pain.is_excluded_verification(c) and (_sickle_cell(c) or _active_cancer(c))
        for c in record.conditions
    )


def _counted(order: MedicationOrder) -> bool:
    """An order whose MME counts: an opioid analgesic, not buprenorphine (CDC 2022 leaves it out
    of MME). Orders for opioid use disorder stay in: their opioid load (methadone) is real."""
    return order.opioid_analgesic and not order.buprenorphine


def _present(
    chart: Chart, in_class: Callable[[MedicationOrder], bool], active: ActiveOrders
) -> tuple[str, ...]:
    """Labels of the drafted or (current) active orders of one class, each saying which it is."""
    found = [f"{o.label} (drafted)" for o in chart.drafted_medications if in_class(o)]
    found += [f"{o.label} (active)" for o in active.current]
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class _CallContext:
    """What every opioid finding of one call shares, computed once: the answer stays linear in
    the number of drafts."""

    drafted_figures: dict[int, OrderMme]
    drafted: _DraftedOpioids
    active: tuple[OrderMme, ...]
    benzodiazepines: tuple[str, ...]
    relaxants: tuple[str, ...]
    naloxone: tuple[str, ...]
    stale: int

    @property
    def active_tenths(self) -> int:
        return sum(_tenths(o.mme_per_day) for o in self.active if o.mme_per_day is not None)

    @property
    def active_computed(self) -> bool:
        return any(o.mme_per_day is not None for o in self.active)

    @property
    def active_uncounted(self) -> bool:
        return any(o.mme_per_day is None for o in self.active)


def _call_context(chart: Chart) -> _CallContext:
    config = chart.config
    drafted_figures: dict[int, OrderMme] = {}
    drafted = _DraftedOpioids()
    for order in chart.drafted_medications:
        if _counted(order):
            figure = order_mme(order.medication, order.reference, active=False, config=config)
            drafted_figures[id(order)] = figure
            drafted.add(figure)
    opioids = chart.active_of(_counted)
    benzodiazepines = chart.active_of(lambda o: o.benzodiazepine)
    relaxants = chart.active_of(lambda o: o.muscle_relaxant)
    naloxone = chart.active_of(lambda o: o.rescue_naloxone)
    stale = {
        id(o) for group in (opioids, benzodiazepines, relaxants, naloxone) for o in group.stale
    }
    return _CallContext(
        drafted_figures=drafted_figures,
        drafted=drafted,
        active=tuple(
            order_mme(o.medication, o.reference, active=True, config=config)
            for o in opioids.current
        ),
        benzodiazepines=_present(chart, lambda o: o.benzodiazepine, benzodiazepines),
        relaxants=_present(chart, lambda o: o.muscle_relaxant, relaxants),
        naloxone=_present(chart, lambda o: o.rescue_naloxone, naloxone),
        stale=len(stale),
    )


def _band(total: float | None, config: RuleConfig) -> MmeBand:
    if total is None:
        return MmeBand.UNKNOWN
    if total >= config.mme_high_per_day:
        return MmeBand.HIGH
    if total >= config.mme_caution_per_day:
        return MmeBand.CAUTION
    return MmeBand.BELOW_CAUTION


def _finding(order: MedicationOrder, call: _CallContext, config: RuleConfig) -> OpioidOrderFinding:
    own = call.drafted_figures.get(id(order))
    this = own or order_mme(order.medication, order.reference, active=False, config=config)
    if this.mme_per_day is not None or call.active_computed:
        own_tenths = _tenths(this.mme_per_day) if this.mme_per_day is not None else 0
        total: float | None = (own_tenths + call.active_tenths) / 10
    else:
        total = None
    band = _band(total, config)
    supply = order.supply
    naloxone = (band >= MmeBand.CAUTION or bool(call.benzodiazepines)) and not call.naloxone
    return OpioidOrderFinding(
        topic=Topic.OPIOID_ORDER,
        indicator=(
            Indicator.CRITICAL
            if band is MmeBand.HIGH or call.benzodiazepines
            else Indicator.WARNING
        ),
        order_reference=order.reference,
        medication=order.label,
        drug_name=drug_name_in(order.medication, OPIOID_INGREDIENTS),
        order=this,
        others=call.active,
        co_drafted=call.drafted.without(own),
        total_mme_per_day=total,
        band=band,
        uncounted=this.mme_per_day is None or call.active_uncounted,
        supply=supply,
        dosage_problem=order.dosage_problem,
        dose_range_used=range_note(order.request),
        refills=order.fills - 1,
        long_acting=order.long_acting_opioid,
        benzodiazepines=call.benzodiazepines,
        other_cns_depressants=call.relaxants,
        naloxone_on_file=call.naloxone[0] if call.naloxone else None,
        stale_left_out=call.stale,
        current_order_days=config.current_order_days,
        suggest_shorter_supply=(
            supply is not None and round(supply.days, 2) > config.opioid_max_days_supply
        ),
        suggest_naloxone=naloxone,
        naloxone_product=suggested_naloxone() if naloxone else None,
        caution_mme_per_day=config.mme_caution_per_day,
        high_mme_per_day=config.mme_high_per_day,
        max_days_supply=config.opioid_max_days_supply,
    )


def evaluate(chart: Chart) -> Sequence[Finding]:
    """One finding per opioid analgesic order to check (not buprenorphine, not OUD treatment),
    none for a patient the CDC 2022 guideline excludes."""
    to_flag = [
        order
        for order in chart.medications_to_check
        if _counted(order) and not _treats_opioid_use_disorder(order.request, chart.record)
    ]
    if not to_flag or guideline_excludes(chart.record):
        return []
    call = _call_context(chart)
    return [_finding(order, call, chart.config) for order in to_flag]


RULE = Rule(
    id="opioid-order",
    hooks=ORDER_HOOKS,
    topics={Topic.OPIOID_ORDER: Citation("cdc-opioid-2022", ("cdc-opioid-2022", "acp-2017"))},
    evaluate=evaluate,
)
