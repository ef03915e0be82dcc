"""The imaging-without-red-flags card: why the lumbar imaging order can wait, and what to do instead."""

from __future__ import annotations

from cds_service.cards.base import (
    RenderContext,
    action,
    guidelines_line,
    join_detail,
    make_card,
    override_reason,
    suggestion,
)
from cds_service.logic.findings import Finding
from cds_service.logic.rules.imaging import ImagingFinding
from cds_service.models import Card

INSTEAD = (
    "- Advise staying active and keeping up usual activities; no bed rest.",
    "- Reassure: most acute low back pain improves within a few weeks, and early imaging does "
    "not improve outcomes (it finds incidental changes that lead to more tests).",
    "- Simple analgesia if needed: an NSAID at the lowest effective dose for the shortest time, "
    "if not contraindicated; superficial heat.",
    "- Review within 2 weeks and stratify with the Keele STarT Back tool; image when a red flag "
    "appears or the pain persists beyond 6 weeks of care.",
)


def _period(days: int) -> str:
    return f"{days // 7} weeks" if days % 7 == 0 else f"{days} days"


def summary(window_days: int) -> str:
    return (
        f"Lumbar imaging is not recommended in the first {_period(window_days)} without red flags"
    )


def _episode_line(finding: ImagingFinding) -> str:
    limit = f"{_period(finding.window_days)} ({finding.window_days} days)"
    if finding.episode_days is None:
        return (
            "**Episode:** onset unknown: treated as a new episode (no onset date on the "
            f"back-pain diagnosis). Imaging is not advised in the first {limit} without red flags."
        )
    day_word = "day" if finding.episode_days == 1 else "days"
    return (
        f"**Episode:** {finding.episode_days} {day_word} since back-pain onset; imaging is not "
        f"advised in the first {limit} without red flags."
    )


def _age_line(finding: ImagingFinding) -> str | None:
    if not finding.age_is_weaker_risk_factor or finding.age_years is None:
        return None
    return (
        f"**Age:** {finding.age_years} years. Age {finding.weaker_risk_age_years} or more is a weaker risk factor "
        "for cancer (ACP 2011), not a red flag on its own: defer imaging and reconsider it if the "
        "pain has not improved after a trial of therapy (about 1 month)."
    )


def detail(finding: ImagingFinding) -> str:
    checked = "; ".join(c.described for c in finding.red_flags.checked) if finding.red_flags else ""
    return join_detail(
        f"**Order:** {finding.order_name}.",
        _episode_line(finding),
        _age_line(finding),
        "**Red flags:** none found in the record or in the order's reason. Checked: "
        f"{checked}. If a red flag is present but not coded, record it and keep the order.",
        "**Instead:**\n" + "\n".join(INSTEAD),
        guidelines_line(finding, short_labels=True),
    )


def render(finding: Finding, ctx: RenderContext) -> Card:
    if not isinstance(finding, ImagingFinding):
        raise TypeError(f"imaging card given a {type(finding).__name__}")
    suggestions = []
    if finding.order_id:
        suggestions.append(
            suggestion(
                ctx,
                "Cancel the lumbar imaging order",
                [
                    action(
                        "delete",
                        f"Remove the draft order: {finding.order_name}",
                        resource_id=f"ServiceRequest/{finding.order_id}",
                    )
                ],
                recommended=True,
            )
        )
    return make_card(
        ctx,
        finding,
        summary=summary(finding.window_days),
        detail=detail(finding),
        suggestions=suggestions,
        override_reasons=(
            override_reason("red-flag-not-coded", "Red flag present but not coded"),
            override_reason("failed-conservative-care", "Failed 6 weeks of conservative care"),
            override_reason("surgery-candidate", "Surgery or intervention candidate"),
        ),
    )
