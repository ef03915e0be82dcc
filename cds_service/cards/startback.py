"""STarT Back cards: "screen with STarT Back" and the stratified care a result calls for."""

from __future__ import annotations

from typing import Any

from cds_service.cards import override_reasons as overrides
from cds_service.cards.base import (
    RenderContext,
    action,
    app_link,
    join_detail,
    make_card,
    override_reason,
    red_flag_paragraph,
    short_date,
    suggestion,
)
from cds_service.cards.self_care import self_care_link
from cds_service.cards.stratified_care import referral_suggestion
from cds_service.logic.findings import Finding
from cds_service.logic.rules.startback import (
    PreviousWhy,
    StartBackResultFinding,
    StartBackScreeningFinding,
)
from cds_service.logic.startback import (
    MATCHED_CARE,
    MATCHED_CARE_SHORT,
    QUESTIONNAIRE_CANONICAL_PATH,
    SUBSCALE_MAX,
    TOTAL_MAX,
    ResultSource,
    StartBackResult,
    UnscorableResponse,
)
from cds_service.models import Card
from cds_service.routes import STARTBACK_APP_PATH

COPYRIGHT_NOTE = (
    "STarT Back © Keele University: no licence is needed for non-commercial use; "
    "commercial use needs Keele's permission."
)


def questionnaire_canonical(ctx: RenderContext) -> str:
    return f"{ctx.public_base_url}{QUESTIONNAIRE_CANONICAL_PATH}"


def _episode(days: int | None) -> str:
    if days is None:
        return "Episode onset unknown: counted as a new episode."
    if days < 0:
        return "Episode onset is dated after today: counted as a new episode."
    return f"Episode started {days} days ago."


def _figures(result: StartBackResult) -> str:
    parts = []
    if result.total is not None:
        parts.append(f"total {result.total}/{TOTAL_MAX}")
    if result.subscale is not None:
        parts.append(f"psychosocial {result.subscale}/{SUBSCALE_MAX}")
    return ", ".join(parts)


def _when(result: StartBackResult, days_ago: int) -> str:
    ago = "today" if days_ago == 0 else f"{days_ago} days ago"
    return f"{result.on.isoformat()}, {ago}"


def _source(result: StartBackResult) -> str:
    if result.source is ResultSource.QUESTIONNAIRE_RESPONSE:
        return "scored from the completed questionnaire"
    return "recorded Observation"


def _task(ctx: RenderContext) -> dict[str, Any]:
    canonical = questionnaire_canonical(ctx)
    patient = {"reference": f"Patient/{ctx.patient_id}"}
    task: dict[str, Any] = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": "routine",
        "code": {"text": "Complete the STarT Back questionnaire"},
        "description": (
            "Complete the Keele STarT Back Screening Tool (9 questions, about 2 minutes) "
            "for low back pain."
        ),
        "focus": {"reference": canonical, "display": "Keele STarT Back Screening Tool"},
        "for": patient,
        "owner": patient,
        "authoredOn": ctx.today.isoformat(),
        "input": [{"type": {"text": "questionnaire"}, "valueCanonical": canonical}],
    }
    if ctx.user_id:
        task["requester"] = {"reference": ctx.user_id}
    if ctx.encounter_id:
        task["encounter"] = {"reference": f"Encounter/{ctx.encounter_id}"}
    return task


def screening_summary(episode_days: int | None) -> str:
    """RULES.md "Summaries (v2)": `Screen with STarT Back: day 12 of this back pain episode`."""
    if episode_days is None:
        return "Screen with STarT Back: new back pain episode, onset unknown"
    if episode_days < 0:
        return "Screen with STarT Back: new back pain episode, onset dated after today"
    return f"Screen with STarT Back: day {episode_days} of this back pain episode"


def _items(numbers: tuple[int, ...]) -> str:
    word = "item" if len(numbers) == 1 else "items"
    listed = [str(n) for n in numbers]
    text = listed[0] if len(listed) == 1 else f"{', '.join(listed[:-1])} and {listed[-1]}"
    return f"{word} {text}"


def unscorable_line(unscorable: UnscorableResponse) -> str:
    """RULES.md (v2): the response's date, that it could not be scored, and the missing items."""
    problems = []
    if unscorable.missing:
        problems.append(f"{_items(unscorable.missing)} not answered")
    if unscorable.unreadable:
        problems.append(f"{_items(unscorable.unreadable)} with an unreadable answer")
    return (
        f"**A STarT Back response from {unscorable.on.isoformat()} could not be scored:** "
        f"{'; '.join(problems)}. All 9 items are needed, so it is not a result."
    )


def _previous_line(finding: StartBackScreeningFinding) -> str | None:
    previous, days = finding.previous, finding.previous_days_ago
    if previous is None or days is None:
        return None
    group = f"{previous.risk.value} risk" if previous.risk else "no risk group"
    why = (
        "before this episode's onset"
        if finding.previous_why is PreviousWhy.BEFORE_ONSET
        else f"older than {finding.lookback_days} days"
    )
    return f"Last result: {group} on {_when(previous, days)} ({why}: it does not count)."


def render_screening(finding: Finding, ctx: RenderContext) -> Card:
    assert isinstance(finding, StartBackScreeningFinding)
    window = finding.lookback_days
    lines = [
        f"**No STarT Back result for this episode (last {window} days).** "
        f"{_episode(finding.episode_days)}"
    ]
    previous = _previous_line(finding)
    if previous:
        lines.append(previous)
    if finding.unscorable is not None:
        lines.append(unscorable_line(finding.unscorable))
    detail = join_detail(
        " ".join(lines),
        "**Do:** ask the patient to answer the 9 STarT Back questions (about 2 minutes) in "
        "the app linked below, or send them as a task. The risk group then guides care: "
        "low - advice, reassurance and self-management; medium - physiotherapy; high - "
        "psychologically informed physiotherapy.",
        red_flag_paragraph(finding.red_flags),
        "**Guideline:** NICE NG59 1.1.2 - consider risk stratification (for example STarT "
        "Back) at first contact for each new episode of low back pain.",
        COPYRIGHT_NOTE,
    )
    task = suggestion(
        ctx,
        "Ask the patient to complete the STarT Back questionnaire",
        [action("create", "Task: complete the STarT Back questionnaire", resource=_task(ctx))],
        recommended=True,
    )
    return make_card(
        ctx,
        finding,
        summary=screening_summary(finding.episode_days),
        detail=detail,
        suggestions=[task],
        override_reasons=[
            override_reason(*overrides.SCREENED_ELSEWHERE),
            override_reason(*overrides.NOT_NEW_EPISODE),
            override_reason(*overrides.PATIENT_DECLINED),
        ],
        links=[
            app_link(ctx, "Open the STarT Back questionnaire", STARTBACK_APP_PATH),
            self_care_link(ctx),
        ],
    )


def render_result(finding: Finding, ctx: RenderContext) -> Card:
    assert isinstance(finding, StartBackResultFinding)
    result = finding.result
    figures = _figures(result)
    when = _when(result, finding.days_ago)
    guideline = (
        "**Guideline:** Keele STarT Back stratified care (match treatment to risk); NICE NG59 "
        "1.1.2."
    )
    if result.risk is None:
        # A total >= 4 without the subscale: medium or high cannot be told apart.
        summary = (
            f"STarT Back total {result.total}/{TOTAL_MAX} ({short_date(result.on)}): "
            "psychosocial subscale needed for a risk group"
        )
        detail = join_detail(
            f"**Total {result.total}/{TOTAL_MAX}** on {when} ({_source(result)}); the "
            "psychosocial subscale (items 5-9) is not recorded.",
            "**Do:** record the subscale or repeat the questionnaire: a subscale of 4 or "
            "more means high risk (psychologically informed physiotherapy), 3 or less "
            "medium risk (physiotherapy).",
            red_flag_paragraph(finding.red_flags),
            guideline,
            COPYRIGHT_NOTE,
        )
        links = [app_link(ctx, "Repeat the STarT Back questionnaire", STARTBACK_APP_PATH)]
    else:
        group = result.risk.value
        # RULES.md "Summaries (v2)": `STarT Back medium risk (12 Nov): physiotherapy`.
        summary = (
            f"STarT Back {group} risk ({short_date(result.on)}): {MATCHED_CARE_SHORT[result.risk]}"
        )
        scores = f": {figures}" if figures else ""
        detail = join_detail(
            f"**{group.capitalize()} risk** on {when}{scores} ({_source(result)}).",
            f"**Matched care:** {MATCHED_CARE[result.risk]}",
            red_flag_paragraph(finding.red_flags),
            guideline,
            COPYRIGHT_NOTE,
        )
        links = [self_care_link(ctx)] if finding.self_care_plan else []
    referral = finding.referral
    return make_card(
        ctx,
        finding,
        summary=summary,
        detail=detail,
        suggestions=[referral_suggestion(ctx, finding, referral)] if referral else [],
        override_reasons=(
            [
                override_reason(*overrides.ALREADY_REFERRED),
                override_reason(*overrides.REFERRAL_DECLINED),
            ]
            if referral
            else []
        ),
        links=links,
    )
