"""FHIR resources the medication cards propose: a shortened draft, and a naloxone order.

An update sends the draft back whole, as the EHR sent it (CDS Hooks Action). EHRs and test tools
send small R4 mistakes, such as a single object where R4 has an array (the CDS Hooks sandbox's
`category` and `reasonCode`): `r4_arrays` wraps every such value in the one-element array it means,
at any depth, reading which fields are arrays from fhir.resources' own R4B models, so the update
validates (RULES.md "Lenient input", v2). A suggestion that still cannot be built is logged (field
paths and error kinds only, never values) and the card says so (`UPDATE_NOT_BUILT`).
"""

from __future__ import annotations

import copy
import functools
import importlib
import logging
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import BaseModel, ValidationError

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

log = logging.getLogger("cds_service.cards")

# What the card's detail says when its update of the draft cannot be built.
UPDATE_NOT_BUILT = (
    "**Not suggested:** the {days}-day update could not be built from this draft as it was sent "
    "(it is not valid FHIR R4); change the supply in the order itself."
)


@dataclass(frozen=True)
class _Field:
    """What fhir.resources says of one element: an array or not, and its type's model (None for
    a primitive). `any_resource`: the type is Resource (`contained`), so each value's own
    resourceType names its model."""

    array: bool
    model: type[BaseModel] | None
    any_resource: bool = False


def _unwrapped(annotation: Any) -> tuple[bool, Any]:
    """(is an array, the element type) of a fhir.resources field annotation."""
    array = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return array, None
            annotation = args[0]
        elif origin is list:
            array = True
            annotation = typing.get_args(annotation)[0]
        elif origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        else:
            return array, annotation


@functools.cache
def _fields(model: type[BaseModel]) -> dict[str, _Field]:
    """model's elements by their JSON name."""
    out: dict[str, _Field] = {}
    for name, info in model.model_fields.items():
        array, element = _unwrapped(info.annotation)
        path = getattr(element, "_model_klass", None)
        target: type[BaseModel] | None = None
        any_resource = False
        if isinstance(path, str):
            module, _, klass = path.rpartition(".")
            try:
                found = getattr(importlib.import_module(module), klass)
            except (ImportError, AttributeError):
                found = None
            if isinstance(found, type) and issubclass(found, BaseModel):
                target = found
                any_resource = klass == "Resource"
        out[info.alias or name] = _Field(array, target, any_resource)
    return out


def _resource_model(value: Mapping[str, Any]) -> type[BaseModel] | None:
    kind = value.get("resourceType")
    if not isinstance(kind, str):
        return None
    try:
        model = get_fhir_model_class(kind)
    except (KeyError, ValueError, AttributeError, ImportError):
        return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _with_arrays(value: Mapping[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    fields = _fields(model)
    out: dict[str, Any] = {}
    for key, item in value.items():
        spec = fields.get(key)
        if spec is None:
            out[key] = item
            continue
        if spec.array and not isinstance(item, list):
            item = [item]
        if spec.model is not None:
            item = (
                [_element(e, spec) for e in item]
                if isinstance(item, list)
                else _element(item, spec)
            )
        out[key] = item
    return out


def _element(value: Any, spec: _Field) -> Any:
    """One value of a complex element, its own arrays wrapped (anything but an object as is)."""
    if not isinstance(value, dict):
        return value
    model = _resource_model(value) if spec.any_resource else spec.model
    return _with_arrays(value, model) if model is not None else value


def r4_arrays(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The resource with every single value that R4 wants as an array wrapped in one (at any
    depth: category, reasonCode, dispenseRequest and dosageInstruction elements...), as
    fhir.resources' R4B model of its resourceType defines them. Unknown keys stay as they are."""
    model = _resource_model(resource)
    return _with_arrays(resource, model) if model is not None else dict(resource)


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
    resource = r4_arrays(resource)
    # A draft order is a draft, an order, for this patient, even when the EHR left that out.
    resource.setdefault("status", "draft")
    resource.setdefault("intent", "order")
    resource.setdefault("subject", {"reference": f"Patient/{patient_id}"})
    dispense = _object(resource.get("dispenseRequest")) or {}
    resource["dispenseRequest"] = dispense
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
        timing = _object(dosage.get("timing")) if isinstance(dosage, dict) else None
        repeat = _object(timing.get("repeat")) if timing is not None else None
        if timing is None or repeat is None:
            continue
        dosage["timing"], timing["repeat"] = timing, repeat
        if "boundsDuration" in repeat:
            repeat["boundsDuration"] = {"value": days, "unit": "days", "system": UCUM, "code": "d"}
        period = repeat.get("boundsPeriod")
        start = parse_fhir_date(period.get("start")) if isinstance(period, dict) else None
        if isinstance(period, dict) and start is not None:
            period["end"] = (start + timedelta(days=days)).isoformat()
    return resource


def update_action(description: str, resource: dict[str, Any]) -> Action | None:
    """An update of the draft, or None when the draft cannot be sent back as a valid resource
    (a malformed draft gets the card without the suggestion, never an error: the card says so,
    UPDATE_NOT_BUILT). The warning names the fields and the kind of error, never their values."""
    try:
        return action("update", description, resource=resource)
    except ValueError as error:
        problems = (
            sorted({_where(e["loc"], e["type"]) for e in error.errors()})
            if isinstance(error, ValidationError)
            else [type(error).__name__]
        )
        log.warning(
            "update suggestion not built: the draft %s is not valid R4 at %s",
            resource.get("resourceType"),
            "; ".join(problems[:10]),
        )
        return None


def _where(loc: tuple[int | str, ...], kind: str) -> str:
    """Where a validation error is, for the log: element names and indexes, never a value; the
    name of an element R4 does not have is the client's text, so it is not logged either."""
    path = (
        list(loc[:-1]) + ["(an element R4 does not define)"] if kind == "extra_forbidden" else loc
    )
    return f"{'.'.join(map(str, path)) or '(resource)'} ({kind})"


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


def _object(value: Any) -> dict[str, Any] | None:
    """A JSON object, or the one object of a one-element array (a single R4 element sent as an
    array); None for anything else."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value if isinstance(value, dict) else None


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
