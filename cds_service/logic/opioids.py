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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cds_service.logic import back_pain
from cds_service.logic.config import RuleConfig
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


@dataclass(frozen=True, kw_only=True)
class OpioidOrderFinding(Finding):
    """An opioid drafted for low back pain, with the figures the card shows."""

    medication: str
    order: OrderMme
    # The active opioid orders, counted in the total with this order (RULES.md).
    others: tuple[OrderMme, ...] = ()
    # Other opioids drafted in the same session: shown, not counted (RULES.md counts this order
    # plus the active orders; the card tells the prescriber what signing them all would add).
    co_drafted: tuple[OrderMme, ...] = ()
    total_mme_per_day: float | None = None
    supply: SupplyDays | None = None
    refills: int = 0
    long_acting: bool = False
    benzodiazepines: tuple[str, ...] = ()
    other_cns_depressants: tuple[str, ...] = ()
    naloxone_on_file: str | None = None
    suggest_shorter_supply: bool = False
    suggest_naloxone: bool = False

    @property
    def uncounted(self) -> tuple[OrderMme, ...]:
        """Opioid orders whose MME/day could not be computed (the total leaves them out)."""
        return tuple(o for o in (self.order, *self.others) if o.mme_per_day is None)


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
    figures = [
        (view.request, order_mme(view, _reference(view.request), active=active))
        for view, active in _counted_opioids(record)
    ]
    benzodiazepines = _present(record, is_benzodiazepine)
    relaxants = _present(record, is_muscle_relaxant)
    naloxone = _present(record, is_rescue_naloxone)

    findings: list[Finding] = []
    for request, view in to_flag:
        this = next((f for r, f in figures if r is request), None) or order_mme(
            view, _reference(request), active=False
        )
        others = tuple(f for r, f in figures if r is not request and f.active)
        co_drafted = tuple(f for r, f in figures if r is not request and not f.active)
        computed = [o.mme_per_day for o in (this, *others) if o.mme_per_day is not None]
        total = round(sum(computed), 1) if computed else None
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
                supply=supply,
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
