"""The muscle-relaxant cards: a course longer than 2-3 weeks, and a Beers-list drug at 65+."""

from __future__ import annotations

from cds_service.cards.base import (
    RenderContext,
    make_card,
    override_reason,
    suggestion,
)
from cds_service.cards.medication_orders import find_draft, shortened, update_action
from cds_service.logic.findings import Finding
from cds_service.logic.guidelines import guideline
from cds_service.logic.muscle_relaxants import RelaxantDurationFinding, RelaxantOlderAdultFinding
from cds_service.models import Card, Suggestion

DURATION_GUIDELINE = "muscle-relaxant-short-course"
DURATION_CITED = ("muscle-relaxant-short-course", "acp-2017")
DURATION_SUMMARY = "Muscle relaxants are for short courses (2-3 weeks) only"
BEERS_GUIDELINE = "ags-beers-2023"
BEERS_CITED = ("ags-beers-2023", "acp-2017")


def _n(value: float) -> str:
    return f"{round(value, 1):g}"


def _sources(ids: tuple[str, ...]) -> str:
    links = "; ".join(f"[{guideline(g).label}]({guideline(g).url})" for g in ids)
    return f"**Guidelines:** {links}."


def duration_summary(finding: RelaxantDurationFinding) -> str:  # noqa: ARG001
    """RULES.md's wording, exactly; the course length leads the detail."""
    return DURATION_SUMMARY


def duration_detail(finding: RelaxantDurationFinding, max_days: int, suggested_days: int) -> str:
    if finding.drafted:
        source = f"from the {finding.basis}"
        if finding.fills > 1 and finding.per_dispense is not None:
            source = (
                f"{_n(finding.per_dispense.days)} days per fill x {finding.fills} fills, from the "
                f"{finding.per_dispense.basis}"
            )
        course = (
            f"**Course ordered:** {_n(finding.days)} days ({source}); the limit is {max_days} days."
        )
    else:
        course = (
            f"**On it for:** {_n(finding.days)} days ({finding.basis}); the limit is "
            f"{max_days} days."
        )
    parts = [
        f"**Medication:** {finding.medication}.",
        course,
        "Skeletal muscle relaxants help only in the first weeks of acute low back pain; the "
        "evidence is for courses of up to 2-3 weeks, and sedation, dizziness and falls add up "
        "with longer use.",
        "**Instead:**\n"
        f"- Limit the course to {suggested_days} days or less, then reassess.\n"
        "- Stay active; superficial heat; exercise therapy or physiotherapy for pain that "
        "persists.\n"
        "- If a drug is still wanted: an NSAID at the lowest effective dose for the shortest time, "
        "if not contraindicated (ACP 2017).",
        _sources(DURATION_CITED),
    ]
    return "\n\n".join(parts)


def _duration_suggestions(finding: RelaxantDurationFinding, ctx: RenderContext) -> list[Suggestion]:
    days = ctx.config.muscle_relaxant_suggested_days
    draft = find_draft(ctx, finding.order_reference) if finding.drafted else None
    if draft is None:
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
            source=ctx.record.draft_order_json.get(f"MedicationRequest/{draft.id}"),
        ),
    )
    if update is None:
        return []
    return [suggestion(ctx, f"Shorten to a {days}-day course", [update], recommended=True)]


def render_duration(finding: Finding, ctx: RenderContext) -> Card:
    if not isinstance(finding, RelaxantDurationFinding):
        raise TypeError(f"muscle-relaxant-duration card given a {type(finding).__name__}")
    return make_card(
        ctx,
        finding,
        summary=duration_summary(finding),
        detail=duration_detail(
            finding, ctx.config.muscle_relaxant_max_days, ctx.config.muscle_relaxant_suggested_days
        ),
        guideline_id=DURATION_GUIDELINE,
        suggestions=_duration_suggestions(finding, ctx),
        override_reasons=(
            override_reason("spasticity", "Used for spasticity, not low back pain"),
            override_reason("benefit-documented", "Benefit documented; reassessment planned"),
            override_reason("specialist-advice", "Continued on specialist advice"),
        ),
    )


def beers_summary(beers_age: int) -> str:
    return f"Avoid this muscle relaxant at age {beers_age} or older (AGS Beers Criteria 2023)"


def beers_detail(finding: RelaxantOlderAdultFinding, beers_age: int) -> str:
    parts = [
        f"**Patient age:** {finding.age_years} years (the Beers criterion applies from "
        f"{beers_age}).",
        f"**Medication:** {finding.medication}: on the AGS Beers list of skeletal muscle "
        "relaxants to avoid in older adults (carisoprodol, chlorzoxazone, cyclobenzaprine, "
        "metaxalone, methocarbamol, orphenadrine).",
        "**Why:** anticholinergic effects, sedation and a higher risk of falls and fractures; "
        "effectiveness at the doses older adults tolerate is questionable (strong recommendation, "
        "moderate-quality evidence).",
        "**Instead:**\n"
        "- Nondrug care first: stay active, superficial heat, exercise therapy or physiotherapy.\n"
        "- If a drug is needed: a topical NSAID, or an oral NSAID at the lowest dose for the "
        "shortest time with kidney and gastrointestinal precautions (Beers: avoid long-term use).",
        _sources(BEERS_CITED),
    ]
    return "\n\n".join(parts)


def render_older_adult(finding: Finding, ctx: RenderContext) -> Card:
    if not isinstance(finding, RelaxantOlderAdultFinding):
        raise TypeError(f"muscle-relaxant-older-adult card given a {type(finding).__name__}")
    age = ctx.config.beers_age_years
    return make_card(
        ctx,
        finding,
        summary=beers_summary(age),
        detail=beers_detail(finding, age),
        guideline_id=BEERS_GUIDELINE,
        override_reasons=(
            override_reason(
                "benefit-outweighs-risk", "Benefit outweighs risk, discussed with patient"
            ),
            override_reason("alternatives-failed", "Safer alternatives tried or contraindicated"),
            override_reason("spasticity", "Used for spasticity, not low back pain"),
        ),
    )
