"""The opioid-order card: MME/day and days supply first, then the CDC 2022 points that apply.

Every list the card shows is bounded (the first few items, then "and N more", each name cut to
`NAME_CHARS`), so a call with hundreds of drafts or active orders gives cards of bounded size and
an answer linear in the number of drafts (RULES.md v2).
"""

from __future__ import annotations

from cds_service.cards import override_reasons as overrides
from cds_service.cards.base import (
    RenderContext,
    action,
    drug_display_name,
    figure,
    fit_summary,
    guidelines_line,
    join_detail,
    make_card,
    override_reason,
    red_flag_paragraph,
    suggestion,
)
from cds_service.cards.medication_orders import (
    UPDATE_NOT_BUILT,
    naloxone_request,
    shortened,
    update_action,
)
from cds_service.logic.findings import Finding
from cds_service.logic.mme import OrderMme
from cds_service.logic.rules.opioids import CoDrafted, MmeBand, OpioidOrderFinding
from cds_service.models import Card, Suggestion

# RULES.md v2 "Summaries": the warning's message; a critical summary names its reason instead.
NOT_FIRST_LINE = "opioids are not first-line for back pain"
HIGH_RISK = "high overdose risk"

INSTEAD = (
    "- Stay active and keep up usual activities; superficial heat; reassure that most acute low "
    "back pain improves within weeks.",
    "- If a drug is wanted: an NSAID at the lowest effective dose for the shortest time (if not "
    "contraindicated), or a skeletal muscle relaxant for a short course (ACP 2017).",
    "- Exercise therapy, spinal manipulation, massage or acupuncture for pain that persists.",
)


# Active opioid orders listed one per line before "and N more"; benzodiazepines and muscle
# relaxants named before "and N more"; characters of a drug name shown.
ACTIVE_LISTED = 5
NAMES_LISTED = 5
NAME_CHARS = 80


def _short(name: str) -> str:
    """A drug name cut to NAME_CHARS, keeping a trailing "(drafted)" / "(active)"."""
    if len(name) <= NAME_CHARS:
        return name
    tail = ""
    if name.endswith(")") and " (" in name:
        at = name.rindex(" (")
        name, tail = name[:at], name[at:]
    return name[: NAME_CHARS - 3].rstrip() + "..." + tail


def _some(names: tuple[str, ...]) -> str:
    listed = "; ".join(_short(n) for n in names[:NAMES_LISTED])
    more = len(names) - NAMES_LISTED
    return listed + (f"; and {more} more" if more > 0 else "")


def _days(value: float) -> str:
    shown = figure(value)
    return f"{shown} day" if shown == "1" else f"{shown} days"


def _order_line(order: OrderMme) -> str:
    if order.mme_per_day is None:
        return f"cannot be computed: {order.reason}"
    return f"{figure(order.mme_per_day)} MME/day ({order.calculation})"


def _mme_lines(finding: OpioidOrderFinding) -> list[str]:
    lines = [f"**MME/day, this order:** {_order_line(finding.order)}."]
    if not finding.others:
        lines.append("**MME/day, total:** the same: no active opioid order.")
    else:
        total = (
            f"{figure(finding.total_mme_per_day)} MME/day"
            if finding.total_mme_per_day is not None
            else "cannot be computed"
        )
        lines.append(f"**MME/day, total with the active opioid orders:** {total}.")
        for other in finding.others[:ACTIVE_LISTED]:
            lines.append(f"- {_short(other.label)} (active): {_order_line(other)}")
        more = len(finding.others) - ACTIVE_LISTED
        if more > 0:
            lines.append(f"- and {more} more active opioid orders, counted in the total")
    if finding.co_drafted.count:
        lines.append(_co_drafted_line(finding.co_drafted, finding.total_mme_per_day))
    if finding.uncounted and finding.total_mme_per_day is not None:
        lines.append(
            "The total leaves out the orders whose MME/day cannot be computed: the real total is "
            "higher."
        )
    return lines


def _co_drafted_line(co: CoDrafted, total: float | None) -> str:
    """The other drafted opioids in one bounded line: how many, the first few names, their
    combined MME/day, and what signing them all with this order would give."""
    names = "; ".join(_short(label) + (f" (x{n})" if n > 1 else "") for label, n in co.named)
    if co.unnamed > 0:
        names += f"; and {co.unnamed} more"
    orders = "1 other opioid order" if co.count == 1 else f"{co.count} other opioid orders"
    if co.uncomputed == co.count:
        combined = "their MME/day cannot be computed"
    else:
        combined = f"{figure(co.mme_per_day)} MME/day combined"
        if co.uncomputed:
            combined += f", leaving out {co.uncomputed} whose MME/day cannot be computed"
    line = f"**Also drafted now:** {orders} ({names}): {combined}."
    if total is not None or co.uncomputed < co.count:
        line += f" Signed together: {figure((total or 0) + co.mme_per_day)} MME/day."
    return line


def _supply_line(finding: OpioidOrderFinding) -> str:
    supply = finding.supply
    refills = f", plus {finding.refills} refill(s)" if finding.refills else ""
    if supply is None and finding.dosage_problem:
        return f"**Days supply:** cannot be computed: {finding.dosage_problem}{refills}."
    if supply is None:
        return (
            "**Days supply:** not stated (no expected supply duration, and no quantity with a "
            f"dose and frequency){refills}."
        )
    over = f", more than {finding.max_days_supply}" if finding.suggest_shorter_supply else ""
    return f"**Days supply:** {_days(supply.days)} (from the {supply.basis}){over}{refills}."


def _cdc_points(finding: OpioidOrderFinding) -> list[str]:
    points = [
        "- Nonopioid therapy first: nonpharmacologic care and NSAIDs are at least as effective "
        "for acute low back pain, with fewer harms.",
        "- If an opioid is used: the lowest effective dose of an immediate-release opioid."
        + (
            " This order is extended-release / long-acting: not for acute pain or opioid-naive "
            "patients."
            if finding.long_acting
            else ""
        ),
        "- Acute pain: no more than needed, often a few days or less; more than "
        f"{finding.max_days_supply} days is rarely needed.",
        "- Reassess benefits and harms within 1 to 4 weeks, and before any dose increase.",
    ]
    if finding.band >= MmeBand.CAUTION:
        points.append(
            f"- At {figure(finding.caution_mme_per_day)} MME/day or more: pause and reassess the "
            "benefits and risks before continuing; offer naloxone."
        )
    if finding.band >= MmeBand.HIGH:
        points.append(
            f"- At {figure(finding.high_mme_per_day)} MME/day or more the overdose risk is high: "
            "justify the dose or taper."
        )
    if finding.benzodiazepines:
        points.append(
            "- Avoid opioids with benzodiazepines (overdose risk): "
            + _some(finding.benzodiazepines)
            + ". Offer naloxone."
        )
    if finding.other_cns_depressants:
        points.append(
            "- Muscle relaxants are also CNS depressants; weigh the combination: "
            + _some(finding.other_cns_depressants)
            + "."
        )
    if finding.naloxone_on_file:
        points.append(f"- Naloxone is already ordered: {_short(finding.naloxone_on_file)}.")
    return points


def _stale_line(finding: OpioidOrderFinding) -> str | None:
    """The stale active orders left out (RULES.md v2 "Current orders"), in one line."""
    n = finding.stale_left_out
    if not n:
        return None
    orders = "1 active order" if n == 1 else f"{n} active orders"
    return (
        f"**Left out:** {orders} (opioid, benzodiazepine, muscle relaxant or naloxone) that look "
        "stale: the supply ran out, or no supply is stated and it was written more than "
        f"{finding.current_order_days} days ago."
    )


def _order_figure(finding: OpioidOrderFinding) -> str:
    mme = finding.order.mme_per_day
    return f"{figure(mme)} MME/day" if mme is not None else "MME/day unknown"


def summary(finding: OpioidOrderFinding) -> str:
    """RULES.md v2: the drug and its figures; a critical card puts its reason first (a
    benzodiazepine, the total at or over the high threshold)."""
    name = drug_display_name(finding.drug_name, finding.medication)
    total = finding.total_mme_per_day
    if finding.band is MmeBand.HIGH and total is not None:
        over = f"total {figure(total)} MME/day (>= {figure(finding.high_mme_per_day)})"
        if finding.benzodiazepines:
            return fit_summary(
                lambda n: f"{n}: opioids {over} with a benzodiazepine: {HIGH_RISK}", name
            )
        return fit_summary(lambda n: f"Opioids {over} with {n}: {HIGH_RISK}", name)
    if finding.benzodiazepines:
        return fit_summary(
            lambda n: f"{n} {_order_figure(finding)} with a benzodiazepine: {HIGH_RISK}", name
        )
    supply = (
        f"{figure(finding.supply.days)}-day supply"
        if finding.supply is not None
        else "supply unknown"
    )
    return fit_summary(lambda n: f"{n} {_order_figure(finding)}, {supply}: {NOT_FIRST_LINE}", name)


def detail(finding: OpioidOrderFinding, *notes: str) -> str:
    return join_detail(
        f"**Order:** {finding.medication}.",
        "\n".join(_mme_lines(finding)),
        _stale_line(finding),
        _supply_line(finding),
        f"**Dose range:** {finding.dose_range_used} (the upper bound counts)."
        if finding.dose_range_used
        else None,
        *notes,
        "**CDC 2022 points that apply:**\n" + "\n".join(_cdc_points(finding)),
        red_flag_paragraph(finding.red_flags),
        "**Instead:**\n" + "\n".join(INSTEAD),
        guidelines_line(finding),
    )


def _suggestions(
    finding: OpioidOrderFinding, ctx: RenderContext, notes: list[str]
) -> list[Suggestion]:
    out: list[Suggestion] = []
    max_days = finding.max_days_supply
    reference = finding.order_reference
    draft = ctx.drafts.get(reference) if reference else None
    if finding.suggest_shorter_supply and draft is not None and finding.supply is not None:
        update = update_action(
            f"Change the draft {finding.medication} to a {max_days}-day supply",
            shortened(
                draft,
                days=max_days,
                current_days=finding.supply.days,
                drop_refills=False,
                patient_id=ctx.patient_id,
                source=ctx.draft_json.get(reference) if reference else None,
            ),
        )
        if update is not None:
            out.append(suggestion(ctx, f"Shorten to a {max_days}-day supply", [update]))
        else:
            notes.append(UPDATE_NOT_BUILT.format(days=max_days))
    if finding.suggest_naloxone and finding.naloxone_product is not None:
        out.append(
            suggestion(
                ctx,
                "Add naloxone 4 mg nasal spray",
                [
                    action(
                        "create",
                        "Order naloxone 4 mg nasal spray",
                        resource=naloxone_request(ctx, finding.naloxone_product),
                    )
                ],
            )
        )
    return out


def render(finding: Finding, ctx: RenderContext) -> Card:
    if not isinstance(finding, OpioidOrderFinding):
        raise TypeError(f"opioid card given a {type(finding).__name__}")
    reasons = [
        override_reason(*overrides.NONOPIOID_INSUFFICIENT),
        override_reason(*overrides.NONOPIOID_CONTRAINDICATED),
        override_reason(*overrides.ESTABLISHED_OPIOID_THERAPY),
        override_reason(*overrides.PALLIATIVE_CARE),
    ]
    if finding.benzodiazepines:
        reasons.append(override_reason(*overrides.BENZODIAZEPINE_REVIEWED))
    notes: list[str] = []
    suggestions = _suggestions(finding, ctx, notes)
    return make_card(
        ctx,
        finding,
        summary=summary(finding),
        detail=detail(finding, *notes),
        suggestions=suggestions,
        override_reasons=reasons,
        selection_behavior="any",
    )
