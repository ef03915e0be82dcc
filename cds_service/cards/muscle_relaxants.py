"""The muscle-relaxant cards: a course longer than 2-3 weeks, and a Beers-list drug at 65+."""

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
from cds_service.cards.medication_orders import UPDATE_NOT_BUILT, shortened, update_action
from cds_service.logic.findings import Finding
from cds_service.logic.rules.muscle_relaxants import (
    RelaxantDurationFinding,
    RelaxantOlderAdultFinding,
)
from cds_service.models import Card, Suggestion

# RULES.md v2 "Summaries": the drug and its course, then this.
SHORT_COURSE = "muscle relaxants are for 2-3 weeks at most"


def _days(value: float) -> str:
    shown = figure(value)
    return f"{shown} day" if shown == "1" else f"{shown} days"


def duration_summary(finding: RelaxantDurationFinding) -> str:
    """`Cyclobenzaprine for 30 days: ...`; on the chart hooks `... ordered 30 days ago: ...`."""
    name = drug_display_name(finding.drug_name, finding.medication)
    course = (
        f"for {_days(finding.days)}" if finding.drafted else f"ordered {_days(finding.days)} ago"
    )
    return fit_summary(lambda n: f"{n} {course}: {SHORT_COURSE}", name)


def duration_detail(finding: RelaxantDurationFinding, *notes: str) -> str:
    limit, suggested_days = finding.limit_days, finding.suggested_days
    if finding.drafted:
        source = f"from the {finding.basis}"
        if finding.fills > 1 and finding.per_dispense is not None:
            source = (
                f"{figure(finding.per_dispense.days)} days per fill x {finding.fills} fills, "
                f"from the {finding.per_dispense.basis}"
            )
        course = (
            f"**Course ordered:** {figure(finding.days)} days ({source}); the limit is "
            f"{limit} days."
        )
    else:
        # RULES.md v2: the chart knows when the order was written, not how long it was taken.
        course = (
            f"**Course:** ordered {figure(finding.days)} days ago and still active (from "
            f"{finding.basis}); the limit is {limit} days."
        )
    return join_detail(
        f"**Medication:** {finding.medication}.",
        course,
        "Skeletal muscle relaxants help only in the first weeks of acute low back pain; the "
        "evidence is for courses of up to 2-3 weeks, and sedation, dizziness and falls add up "
        "with longer use.",
        *notes,
        red_flag_paragraph(finding.red_flags),
        "**Instead:**\n"
        f"- Limit the course to {suggested_days} days or less, then reassess.\n"
        "- Stay active; superficial heat; exercise therapy or physiotherapy for pain that "
        "persists.\n"
        "- If a drug is still wanted: an NSAID at the lowest effective dose for the shortest time, "
        "if not contraindicated (ACP 2017).",
        guidelines_line(finding),
    )


def _duration_suggestions(
    finding: RelaxantDurationFinding, ctx: RenderContext, notes: list[str]
) -> list[Suggestion]:
    days = finding.suggested_days
    reference = finding.order_reference
    draft = ctx.drafts.get(reference) if finding.drafted and reference else None
    if draft is None or reference is None:
        return []
    per_dispense = finding.per_dispense.days if finding.per_dispense is not None else None
    update = update_action(
        f"Change the draft {finding.medication} to {days} days, no refills",
        shortened(
            draft,
            days=days,
            current_days=per_dispense,
            drop_refills=True,
            patient_id=ctx.patient_id,
            source=ctx.draft_json.get(reference),
        ),
    )
    if update is None:
        notes.append(UPDATE_NOT_BUILT.format(days=days))
        return []
    return [suggestion(ctx, f"Shorten to a {days}-day course", [update], recommended=True)]


def render_duration(finding: Finding, ctx: RenderContext) -> Card:
    if not isinstance(finding, RelaxantDurationFinding):
        raise TypeError(f"muscle-relaxant-duration card given a {type(finding).__name__}")
    notes: list[str] = []
    suggestions = _duration_suggestions(finding, ctx, notes)
    return make_card(
        ctx,
        finding,
        summary=duration_summary(finding),
        detail=duration_detail(finding, *notes),
        suggestions=suggestions,
        override_reasons=(
            override_reason(*overrides.SPASTICITY),
            override_reason(*overrides.BENEFIT_DOCUMENTED),
            override_reason(*overrides.SPECIALIST_ADVICE),
        ),
    )


def beers_summary(finding: RelaxantOlderAdultFinding) -> str:
    """`Carisoprodol at 72: avoid in older adults (Beers)`."""
    name = drug_display_name(finding.drug_name, finding.medication)
    return fit_summary(lambda n: f"{n} at {finding.age_years}: avoid in older adults (Beers)", name)


def _beers_course_line(finding: RelaxantOlderAdultFinding) -> str:
    """The intended course (RULES.md v2 "One card per order": no separate duration card)."""
    if finding.course_days is None:
        return "**Course ordered:** not stated (no supply duration, and no quantity with a dose)."
    over = (
        f", over the {finding.limit_days}-day limit for muscle relaxants (2-3 weeks at most)"
        if finding.course_over_limit
        else ""
    )
    return (
        f"**Course ordered:** {_days(finding.course_days)} (from the {finding.course_basis}){over}."
    )


def beers_detail(finding: RelaxantOlderAdultFinding) -> str:
    return join_detail(
        f"**Patient age:** {finding.age_years} years (the Beers criterion applies from "
        f"{finding.from_age_years}).",
        _beers_course_line(finding),
        f"**Medication:** {finding.medication}: on the AGS Beers list of skeletal muscle "
        "relaxants to avoid in older adults (carisoprodol, chlorzoxazone, cyclobenzaprine, "
        "metaxalone, methocarbamol, orphenadrine).",
        "**Why:** anticholinergic effects, sedation and a higher risk of falls and fractures; "
        "effectiveness at the doses older adults tolerate is questionable (strong recommendation, "
        "moderate-quality evidence).",
        red_flag_paragraph(finding.red_flags),
        "**Instead:**\n"
        "- Nondrug care first: stay active, superficial heat, exercise therapy or physiotherapy.\n"
        "- If a drug is needed: a topical NSAID, or an oral NSAID at the lowest dose for the "
        "shortest time with kidney and gastrointestinal precautions (Beers: avoid long-term use).",
        guidelines_line(finding),
    )


def render_older_adult(finding: Finding, ctx: RenderContext) -> Card:
    if not isinstance(finding, RelaxantOlderAdultFinding):
        raise TypeError(f"muscle-relaxant-older-adult card given a {type(finding).__name__}")
    suggestions = []
    if finding.order_reference:
        suggestions.append(
            suggestion(
                ctx,
                "Cancel the draft order (Beers: avoid)",
                [
                    action(
                        "delete",
                        f"Remove the draft order: {finding.medication}",
                        resource_id=finding.order_reference,
                    )
                ],
                recommended=True,
            )
        )
    return make_card(
        ctx,
        finding,
        summary=beers_summary(finding),
        detail=beers_detail(finding),
        suggestions=suggestions,
        override_reasons=(
            override_reason(*overrides.BENEFIT_OUTWEIGHS_RISK),
            override_reason(*overrides.ALTERNATIVES_FAILED),
            override_reason(*overrides.SPASTICITY),
        ),
    )
