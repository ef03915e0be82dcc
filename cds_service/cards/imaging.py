"""The imaging-without-red-flags card: why the lumbar imaging order can wait, and what to do instead."""

from __future__ import annotations

from cds_service.cards import override_reasons as overrides
from cds_service.cards.base import (
    RenderContext,
    action,
    app_link,
    guidelines_line,
    join_detail,
    make_card,
    override_reason,
    short_date,
    suggestion,
)
from cds_service.cards.self_care import self_care_link
from cds_service.logic.findings import Finding
from cds_service.logic.rules.imaging import ImagingFinding
from cds_service.models import Card, Link
from cds_service.routes import RED_FLAGS_APP_PATH

# One line (RULES.md v2: the detail stays under about 900 characters).
INSTEAD = (
    "**Instead:** stay active, no bed rest; NSAID or heat; review within 2 weeks (STarT Back); "
    "image for red flags or pain past 6 weeks."
)


RECORD_SCREEN_LABEL = "Record a red-flag screen"


def _period(days: int) -> str:
    return f"{days // 7} weeks" if days % 7 == 0 else f"{days} days"


def summary(finding: ImagingFinding) -> str:
    """RULES.md v2: `Lumbar MRI on day 10 of back pain, no red flags: imaging not advised before
    6 weeks` (unknown onset: `Lumbar MRI, onset unknown, no red flags: ...`)."""
    when = (
        ", onset unknown"
        if finding.episode_days is None
        else f" on day {finding.episode_days} of back pain"
    )
    return (
        f"Lumbar {finding.modality}{when}, no red flags: imaging not advised before "
        f"{_period(finding.window_days)}"
    )


def _episode_line(finding: ImagingFinding) -> str:
    limit = f"(limit {_period(finding.window_days)})"
    if finding.episode_days is None:
        return f"**Episode:** onset unknown: a new episode {limit}."
    day_word = "day" if finding.episode_days == 1 else "days"
    return f"**Episode:** {finding.episode_days} {day_word} since back-pain onset {limit}."


def _age_line(finding: ImagingFinding) -> str | None:
    if not finding.age_is_weaker_risk_factor or finding.age_years is None:
        return None
    return (
        f"**Age:** {finding.age_years} years: {finding.weaker_risk_age_years}+ is a weaker risk "
        "factor, not a red flag (ACP 2011)."
    )


def _screen_sentence(finding: ImagingFinding) -> str:
    """RULES.md v2: "Red-flag screen on <date>: negative", or that none counts (the card then
    links to the screen app). Short: it shares the red-flag line, and the detail stays under
    about 900 characters."""
    screen = finding.red_flag_screen
    if screen is None:
        return f"No red-flag screen in {finding.red_flag_screen_days} days."
    unanswered = f" ({len(screen.unanswered)} unanswered)" if screen.unanswered else ""
    return f"Red-flag screen on {short_date(screen.on)}: negative{unanswered}."


def detail(finding: ImagingFinding) -> str:
    """Figures first (episode, age), the red-flag groups checked and the red-flag screen on one
    line, what to do instead, the guidelines."""
    checked = (
        ", ".join(c.short_label for c in finding.red_flags.checked) if finding.red_flags else ""
    )
    return join_detail(
        _episode_line(finding),
        _age_line(finding),
        f"**Red flags:** none found. Checked: {checked}. {_screen_sentence(finding)}",
        INSTEAD,
        guidelines_line(finding, short_labels=True),
    )


def _screen_links(finding: ImagingFinding, ctx: RenderContext) -> list[Link]:
    """Without a counting screen, the screen app (a SMART link: the EHR adds `launch` and
    `iss`)."""
    if finding.red_flag_screen is not None:
        return []
    return [app_link(ctx, RECORD_SCREEN_LABEL, RED_FLAGS_APP_PATH)]


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
        summary=summary(finding),
        detail=detail(finding),
        suggestions=suggestions,
        override_reasons=(
            override_reason(*overrides.RED_FLAG_NOT_CODED),
            override_reason(*overrides.FAILED_CONSERVATIVE_CARE),
            override_reason(*overrides.SURGERY_CANDIDATE),
        ),
        links=[*_screen_links(finding, ctx), self_care_link(ctx)],
    )
