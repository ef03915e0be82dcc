"""Shared card building: uuid, the source the finding's Rule cites, topic, suggestions, and the
small wording helpers every card uses (figures, the guidelines line, the red-flag paragraph).

Suggestion resources are validated with fhir.resources R4B before they leave the service, so an
EHR never receives a resource it cannot apply (only the few resources a card carries are
validated; never the incoming record, see ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from cds_service.cards.override_reasons import OVERRIDE_REASON_SYSTEM
from cds_service.logic.fhir import MedicationRequest
from cds_service.logic.findings import CARD_TOPIC_SYSTEM, Finding
from cds_service.logic.guidelines import Citation
from cds_service.logic.red_flags import RedFlagReport
from cds_service.models import Action, Card, Coding, Link, Source, Suggestion


@dataclass(frozen=True)
class RenderContext:
    """What rendering needs besides the finding: ids for links and suggestion resources, and the
    drafted orders an update suggestion sends back whole."""

    new_uuid: Callable[[], str]
    today: date
    public_base_url: str
    patient_id: str
    user_id: str | None = None
    encounter_id: str | None = None
    # "MedicationRequest/<id>" -> the draft (slim model) and the draft as the EHR sent it (JSON).
    drafts: Mapping[str, MedicationRequest] = field(default_factory=dict)
    draft_json: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def validated_resource(resource: dict[str, Any]) -> dict[str, Any]:
    """Validate a resource with fhir.resources R4B and return it unchanged (raises if invalid)."""
    model = get_fhir_model_class(resource["resourceType"])
    model.model_validate(resource)
    return resource


def override_reason(code: str, display: str) -> Coding:
    return Coding(system=OVERRIDE_REASON_SYSTEM, code=code, display=display)


def action(
    kind: str,
    description: str,
    *,
    resource: dict[str, Any] | None = None,
    resource_id: str | None = None,
) -> Action:
    return Action.model_validate(
        {
            "type": kind,
            "description": description,
            "resource": validated_resource(resource) if resource is not None else None,
            "resourceId": resource_id,
        }
    )


def suggestion(
    ctx: RenderContext, label: str, actions: Sequence[Action], *, recommended: bool | None = None
) -> Suggestion:
    return Suggestion(
        label=label, uuid=ctx.new_uuid(), isRecommended=recommended, actions=list(actions) or None
    )


def make_card(
    ctx: RenderContext,
    finding: Finding,
    *,
    summary: str,
    detail: str,
    suggestions: Sequence[Suggestion] = (),
    override_reasons: Sequence[Coding] = (),
    links: Sequence[Link] = (),
    selection_behavior: str = "at-most-one",
) -> Card:
    """A contract card: uuid, summary < 140 chars, the source its Rule cites, topic coding."""
    cited = citation(finding).source_guideline
    return Card.model_validate(
        {
            "uuid": ctx.new_uuid(),
            "summary": summary,
            "detail": detail,
            "indicator": finding.indicator.value,
            "source": Source(
                label=cited.label,
                url=cited.url,
                topic=Coding(system=CARD_TOPIC_SYSTEM, code=finding.topic.value),
            ),
            "suggestions": list(suggestions) or None,
            "selectionBehavior": selection_behavior if suggestions else None,
            "overrideReasons": list(override_reasons) or None,
            "links": list(links) or None,
        }
    )


def citation(finding: Finding) -> Citation:
    """What the finding's Rule cites (set by rules.evaluate; a finding without one is a bug)."""
    if finding.citation is None:
        raise ValueError(f"{finding.topic} finding has no citation: made outside rules.evaluate")
    return finding.citation


def short_date(on: date) -> str:
    """A date as summaries and figures show it, RULES.md's pattern: `12 Nov`."""
    return f"{on.day} {on:%b}"


def app_link(ctx: RenderContext, label: str, path: str) -> Link:
    """A SMART link to one of the service's apps: the EHR adds `launch` and `iss`, and the app
    runs the EHR launch."""
    return Link(label=label, url=f"{ctx.public_base_url}{path}", type="smart")


def figure(value: float) -> str:
    """A figure as cards show it: one decimal at most, no trailing zero ("7", "22.5")."""
    return f"{round(value, 1):g}"


def guidelines_line(finding: Finding, *, short_labels: bool = False) -> str:
    """ "**Guidelines:** [label](url); ..." for the guidelines the finding's Rule names."""
    named = citation(finding).named_guidelines
    labels = [g.label.split(":")[0] if short_labels else g.label for g in named]
    links = "; ".join(f"[{label}]({g.url})" for label, g in zip(labels, named, strict=True))
    return f"**Guidelines:** {links}."


# Red flags listed before "and N more".
RED_FLAGS_LISTED = 6


def red_flag_paragraph(report: RedFlagReport | None) -> str | None:
    """The red flags found for a finding, for every card but the imaging one (RULES.md: red flags
    "suppress the imaging warning; shown in the card detail of other cards"). An opioid, a muscle
    relaxant or STarT Back stratification all assume non-specific low back pain; a red flag means
    serious pathology has to be considered first, so the card says which and on what evidence."""
    if report is None or not report.present:
        return None
    items = [
        f"{report.label_of(hit.flag)}: {hit.evidence}" for hit in report.found[:RED_FLAGS_LISTED]
    ]
    more = len(report.found) - RED_FLAGS_LISTED
    listed = "; ".join(items) + (f"; and {more} more" if more > 0 else "")
    return (
        f"**Red flags in the record:** {listed}. Consider serious pathology (cancer, infection, "
        "fracture, cauda equina) before treating this as non-specific low back pain."
    )


def join_detail(*parts: str | None) -> str:
    """The detail's paragraphs, blank-line separated; absent ones left out."""
    return "\n\n".join(p for p in parts if p)


# CONTRACT.md: a summary is under 140 characters.
SUMMARY_MAX = 139
# The fewest characters of a drug name a cut summary keeps (before "...").
NAME_MIN = 8


def drug_display_name(drug_name: str | None, label: str) -> str:
    """The drug as a summary names it (RULES.md v2 "Summaries"): the ingredient or brand the
    finding found in the order's name, capitalised ("Oxycodone"); else the order's label."""
    if not drug_name:
        return label.strip() or "This order"
    if drug_name.islower() or drug_name.isupper():
        return drug_name.capitalize()
    return drug_name[:1].upper() + drug_name[1:]


def fit_summary(build: Callable[[str], str], name: str) -> str:
    """`build(name)`, cutting the drug name (never the figures) so the summary stays under 140
    characters."""
    text = build(name)
    over = len(text) - SUMMARY_MAX
    if over <= 0:
        return text
    keep = max(len(name) - over - 3, NAME_MIN)
    return build(name[:keep].rstrip() + "...")[:SUMMARY_MAX]
