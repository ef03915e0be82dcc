"""Shared card building: uuid, source from the guideline registry, topic, suggestions.

Suggestion resources are validated with fhir.resources R4B before they leave the service, so an
EHR never receives a resource it cannot apply (only the few resources a card carries are
validated; never the incoming record, see ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from cds_service.logic.config import RuleConfig
from cds_service.logic.findings import CARD_TOPIC_SYSTEM, Finding
from cds_service.logic.guidelines import guideline
from cds_service.logic.record import PatientRecord
from cds_service.models import Action, Card, Coding, Link, Source, Suggestion

OVERRIDE_REASON_SYSTEM = "urn:lbp-cds:override-reason"


@dataclass(frozen=True)
class RenderContext:
    """What rendering needs besides the finding: ids, the record, settings that shape links."""

    new_uuid: Callable[[], str]
    record: PatientRecord
    config: RuleConfig
    public_base_url: str
    patient_id: str
    user_id: str | None = None
    encounter_id: str | None = None

    @property
    def today(self) -> date:
        return self.record.today


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
    guideline_id: str,
    suggestions: Sequence[Suggestion] = (),
    override_reasons: Sequence[Coding] = (),
    links: Sequence[Link] = (),
    selection_behavior: str = "at-most-one",
) -> Card:
    """A contract card: uuid, summary < 140 chars, source from the registry, topic coding."""
    cited = guideline(guideline_id)
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
