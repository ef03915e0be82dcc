"""FHIR resources the medication cards propose: a shortened draft, and a naloxone order."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from cds_service.cards.base import RenderContext, action
from cds_service.logic.dates import parse_fhir_date
from cds_service.logic.fhir import Coding, MedicationRequest
from cds_service.logic.terminology import UCUM
from cds_service.models import Action


def _pruned(value: Any) -> Any:
    """Drop null, empty strings, lists and objects (CDS Hooks: no empty values)."""
    if isinstance(value, dict):
        out = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        items = [_pruned(v) for v in value]
        return [v for v in items if v not in (None, "", [], {})]
    return value


# Beyond this a float no longer holds whole units exactly; no real dispense comes near it.
MAX_QUANTITY = 2.0**53


def shortened(
    order: MedicationRequest,
    *,
    days: int,
    current_days: float | None,
    drop_refills: bool,
    patient_id: str,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The draft as a whole resource, with a `days`-day supply.

    expectedSupplyDuration becomes `days` d; the quantity is scaled to the same days (rounded down,
    at least 1); dosage bounds that say otherwise are shortened too; with `drop_refills` the
    repeats go to 0 so that the whole course is `days` days. `source` is the draft as the EHR
    sent it: an update carries the resource in its entirety (CDS Hooks Action), so every field the
    EHR sent goes back, not only those the service reads.
    """
    resource: dict[str, Any] = _pruned(
        copy.deepcopy(dict(source))
        if source is not None
        else order.model_dump(mode="json", exclude_none=True, exclude_unset=True)
    )
    resource["resourceType"] = "MedicationRequest"
    # A draft order is a draft, an order, for this patient, even when the EHR left that out.
    resource.setdefault("status", "draft")
    resource.setdefault("intent", "order")
    resource.setdefault("subject", {"reference": f"Patient/{patient_id}"})
    dispense: dict[str, Any] = resource.setdefault("dispenseRequest", {})
    dispense["expectedSupplyDuration"] = {
        "value": days,
        "unit": "days",
        "system": UCUM,
        "code": "d",
    }
    quantity = dispense.get("quantity")
    if isinstance(quantity, dict) and current_days:
        value = _number(quantity.get("value"))
        scaled = value * (days / current_days) if value is not None else None
        if scaled is None or not math.isfinite(scaled) or not 0 < scaled <= MAX_QUANTITY:
            # An unreadable or absurd quantity cannot be scaled: the supply is then the duration
            # alone, so the suggestion stays valid R4 rather than echoing a value that is not one.
            del dispense["quantity"]
        else:
            quantity["value"] = (
                max(math.floor(scaled + 1e-9), 1) if scaled >= 1 else round(scaled, 2)
            )
    if drop_refills and dispense.get("numberOfRepeatsAllowed"):
        dispense["numberOfRepeatsAllowed"] = 0
    for dosage in resource.get("dosageInstruction", []):
        repeat = dosage.get("timing", {}).get("repeat", {})
        if "boundsDuration" in repeat:
            repeat["boundsDuration"] = {"value": days, "unit": "days", "system": UCUM, "code": "d"}
        period = repeat.get("boundsPeriod")
        start = parse_fhir_date(period.get("start")) if isinstance(period, dict) else None
        if isinstance(period, dict) and start is not None:
            period["end"] = (start + timedelta(days=days)).isoformat()
    return resource


def update_action(description: str, resource: dict[str, Any]) -> Action | None:
    """An update of the draft, or None when the draft cannot be sent back as a valid resource
    (a malformed draft gets the card without the suggestion, never an error)."""
    try:
        return action("update", description, resource=resource)
    except ValueError:
        return None


def naloxone_request(ctx: RenderContext, product: Coding) -> dict[str, Any]:
    """A draft MedicationRequest for the naloxone product the finding names (4 mg nasal spray,
    CDC 2022 Recommendation 8)."""
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [product.model_dump(exclude_none=True)],
            "text": "Naloxone 4 mg nasal spray",
        },
        "subject": {"reference": f"Patient/{ctx.patient_id}"},
        "authoredOn": ctx.today.isoformat(),
        "reasonCode": [{"text": "Opioid overdose rescue (CDC 2022 Recommendation 8)"}],
        "dosageInstruction": [
            {
                "text": (
                    "For suspected opioid overdose: spray 4 mg into one nostril and call 911; "
                    "if no response in 2-3 minutes, give a second dose in the other nostril."
                ),
                "asNeededCodeableConcept": {"text": "Suspected opioid overdose"},
                "route": {"text": "Nasal"},
                "doseAndRate": [
                    {"doseQuantity": {"value": 4, "unit": "mg", "system": UCUM, "code": "mg"}}
                ],
            }
        ],
        "dispenseRequest": {
            "quantity": {"value": 2, "unit": "nasal spray device"},
            "numberOfRepeatsAllowed": 0,
        },
    }
    if ctx.encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{ctx.encounter_id}"}
    if ctx.user_id and "/" in ctx.user_id:
        resource["requester"] = {"reference": ctx.user_id}
    return resource


def _number(value: Any) -> float | None:
    """A JSON number, or a numeric string sent by a lenient client; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
