"""The referral the startback-result card suggests: a draft FHIR R4 ServiceRequest for the
matched care of a medium or high STarT Back result (the Finding's Referral holds its codes and
reason; this module words it).

Status `draft`, intent `order`: accepting the suggestion puts an unsigned referral order in the
clinician's order entry, the same shape as the draft orders EHRs send in order-select and
order-sign. A `proposal` would be a different request (FHIR intent is fixed for a resource's
life), which the EHR would have to copy into an order before it could be signed.
"""

from __future__ import annotations

from typing import Any

from cds_service.cards.base import RenderContext, action, suggestion
from cds_service.logic.rules.startback import Referral, StartBackResultFinding
from cds_service.logic.startback import RiskGroup
from cds_service.models import Suggestion

# What each referral asks for, in the clinician's words (the codes come from the Finding).
REFERRAL_TEXT = {
    RiskGroup.MEDIUM: "Referral to physiotherapy",
    RiskGroup.HIGH: (
        "Referral to psychologically informed physiotherapy (combined physical and "
        "psychological care)"
    ),
}
SUGGESTION_LABEL = {
    RiskGroup.MEDIUM: "Refer to physiotherapy",
    RiskGroup.HIGH: "Refer to psychologically informed physiotherapy",
}
# The high-risk approach, for the physiotherapist receiving the referral (Keele STarT Back).
ORDER_DETAIL = {
    RiskGroup.HIGH: (
        "Psychologically informed physiotherapy: address fear of movement, worry and low mood "
        "alongside exercise (STarT Back high-risk matched care)."
    ),
}
# FHIR `requester` may name these userId types: the clinician who places the order.
REQUESTER_TYPES = frozenset({"Practitioner", "PractitionerRole"})


def _requester(user_id: str | None) -> dict[str, str] | None:
    """The hook's userId as given ("Type/id", checked on the way in), when it names a clinician."""
    if not user_id or user_id.partition("/")[0] not in REQUESTER_TYPES:
        return None
    return {"reference": user_id}


def _note(finding: StartBackResultFinding, referral: Referral) -> str:
    return (
        f"STarT Back {referral.risk.value} risk on {finding.result.on.isoformat()}: stratified "
        "care matches this group to this referral (Keele STarT Back; NICE NG59 1.1.2)."
    )


def referral_request(
    ctx: RenderContext, finding: StartBackResultFinding, referral: Referral
) -> dict[str, Any]:
    """The draft ServiceRequest (validated with fhir.resources R4B by `action`)."""
    service = referral.service.model_dump(exclude_none=True)
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "category": [{"coding": [referral.category.model_dump(exclude_none=True)]}],
        "priority": "routine",
        "code": {"coding": [service], "text": REFERRAL_TEXT[referral.risk]},
        "subject": {"reference": f"Patient/{ctx.patient_id}"},
        "authoredOn": ctx.today.isoformat(),
        "performerType": {
            "coding": [referral.performer_type.model_dump(exclude_none=True)],
        },
        "note": [{"text": _note(finding, referral)}],
    }
    detail = ORDER_DETAIL.get(referral.risk)
    if detail:
        resource["orderDetail"] = [{"text": detail}]
    if ctx.encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{ctx.encounter_id}"}
    requester = _requester(ctx.user_id)
    if requester:
        resource["requester"] = requester
    if referral.reason_reference:
        reason: dict[str, str] = {"reference": referral.reason_reference}
        if referral.reason_display:
            reason["display"] = referral.reason_display
        resource["reasonReference"] = [reason]
    elif referral.reason_code is not None:
        # exclude_defaults: a text-only code has no `coding`, and FHIR allows no empty array.
        resource["reasonCode"] = [referral.reason_code.model_dump(exclude_defaults=True)]
    return resource


def referral_suggestion(
    ctx: RenderContext, finding: StartBackResultFinding, referral: Referral
) -> Suggestion:
    text = REFERRAL_TEXT[referral.risk]
    return suggestion(
        ctx,
        SUGGESTION_LABEL[referral.risk],
        [
            action(
                "create",
                f"Create a draft order: {text[:1].lower()}{text[1:]}",
                resource=referral_request(ctx, finding, referral),
            )
        ],
        recommended=True,
    )
