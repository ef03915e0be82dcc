"""STarT Back cards: "screen with STarT Back" and the stratified care a result calls for."""

from __future__ import annotations

from typing import Any

from cds_service.cards.base import RenderContext, action, make_card, override_reason, suggestion
from cds_service.logic.findings import Finding
from cds_service.logic.startback import (
    QUESTIONNAIRE_PATH,
    SUBSCALE_MAX,
    TOTAL_MAX,
    ResultSource,
    RiskGroup,
    StartBackResult,
)
from cds_service.logic.startback_rules import StartBackResultFinding, StartBackScreeningFinding
from cds_service.models import Card, Link

APP_PATH = "/apps/startback"

COPYRIGHT_NOTE = (
    "STarT Back © Keele University: no licence is needed for non-commercial use; "
    "commercial use needs Keele's permission."
)

# Matched care of the Keele stratified-care model (RULES.md startback-result).
CARE_SHORT = {
    RiskGroup.LOW: "advice, reassurance and self-management",
    RiskGroup.MEDIUM: "refer to physiotherapy",
    RiskGroup.HIGH: "psychologically informed physiotherapy",
}
CARE_DETAIL = {
    RiskGroup.LOW: (
        "advice, reassurance and support to self-manage (stay active, written information) in "
        "primary care; a physiotherapy referral is usually not needed."
    ),
    RiskGroup.MEDIUM: "physiotherapy (exercise and manual therapy) with self-management advice.",
    RiskGroup.HIGH: (
        "psychologically informed physiotherapy: combined physical and psychological care that "
        "addresses fear of movement, worry and low mood alongside exercise."
    ),
}


def questionnaire_canonical(ctx: RenderContext) -> str:
    return f"{ctx.public_base_url}{QUESTIONNAIRE_PATH}"


def _app_link(ctx: RenderContext, label: str) -> Link:
    # A SMART link: the EHR adds `launch` and `iss` and the app runs the EHR launch.
    return Link(label=label, url=f"{ctx.public_base_url}{APP_PATH}", type="smart")


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


def render_screening(finding: Finding, ctx: RenderContext) -> Card:
    assert isinstance(finding, StartBackScreeningFinding)
    window = finding.lookback_days
    lines = [
        f"**No STarT Back result in the last {window} days.** {_episode(finding.episode_days)}"
    ]
    if finding.previous is not None:
        days = (ctx.today - finding.previous.on).days
        risk = finding.previous.risk
        group = f"{risk.value} risk" if risk else "no risk group"
        lines.append(
            f"Last result: {group} on {_when(finding.previous, days)} (outside the window)."
        )
    detail = "\n\n".join(
        [
            " ".join(lines),
            "**Do:** ask the patient to answer the 9 STarT Back questions (about 2 minutes) in "
            "the app linked below, or send them as a task. The risk group then guides care: "
            "low - advice, reassurance and self-management; medium - physiotherapy; high - "
            "psychologically informed physiotherapy.",
            "**Guideline:** NICE NG59 1.1.2 - consider risk stratification (for example STarT "
            "Back) at first contact for each new episode of low back pain.",
            COPYRIGHT_NOTE,
        ]
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
        summary="Screen with STarT Back",
        detail=detail,
        guideline_id="nice-ng59",
        suggestions=[task],
        override_reasons=[
            override_reason("screened-elsewhere", "Already screened; result recorded elsewhere"),
            override_reason("not-new-episode", "Not a new episode of low back pain"),
            override_reason("patient-declined", "Patient declined the questionnaire"),
        ],
        links=[_app_link(ctx, "Open the STarT Back questionnaire")],
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
            f"STarT Back total {result.total}/{TOTAL_MAX}: psychosocial subscale needed "
            "for a risk group"
        )
        detail = "\n\n".join(
            [
                f"**Total {result.total}/{TOTAL_MAX}** on {when} ({_source(result)}); the "
                "psychosocial subscale (items 5-9) is not recorded.",
                "**Do:** record the subscale or repeat the questionnaire: a subscale of 4 or "
                "more means high risk (psychologically informed physiotherapy), 3 or less "
                "medium risk (physiotherapy).",
                guideline,
                COPYRIGHT_NOTE,
            ]
        )
        links = [_app_link(ctx, "Repeat the STarT Back questionnaire")]
    else:
        group = result.risk.value
        label = f"STarT Back {group} risk" + (f" ({figures})" if figures else "")
        summary = f"{label}: {CARE_SHORT[result.risk]}"
        scores = f": {figures}" if figures else ""
        detail = "\n\n".join(
            [
                f"**{group.capitalize()} risk** on {when}{scores} ({_source(result)}).",
                f"**Matched care:** {CARE_DETAIL[result.risk]}",
                guideline,
                COPYRIGHT_NOTE,
            ]
        )
        links = []
    return make_card(
        ctx,
        finding,
        summary=summary,
        detail=detail,
        guideline_id="keele-startback",
        links=links,
    )
