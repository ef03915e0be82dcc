"""Raw FHIR JSON -> one PatientRecord, skipping (and counting) what cannot be read.

Each resource is validated alone against its slim model, so one malformed resource never
hides the others and never turns into a 500; the count of skipped resources goes to the log
(never their content: it is patient data).

Only the context patient's data counts (RULES.md "Whose data"), whether it came from prefetch,
from a FHIR server that ignored the `patient` search parameter, or in `draftOrders`: a resource
whose `subject` (or `patient`) names another Patient is left out here, once, and only counted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cds_service.logic.fhir import (
    Condition,
    DraftOrder,
    Encounter,
    Medication,
    MedicationRequest,
    Observation,
    Patient,
    Procedure,
    QuestionnaireResponse,
    ServiceRequest,
)
from cds_service.logic.record import PatientRecord
from cds_service.records.data import RESOURCE_TYPES, DataKey

log = logging.getLogger("cds_service.records")

M = TypeVar("M", bound=BaseModel)

_MODELS: dict[str, type[BaseModel]] = {
    "Patient": Patient,
    "Condition": Condition,
    "Observation": Observation,
    "MedicationRequest": MedicationRequest,
    "Medication": Medication,
    "Procedure": Procedure,
    "QuestionnaireResponse": QuestionnaireResponse,
    "ServiceRequest": ServiceRequest,
    "Encounter": Encounter,
}

# The `Patient/<id>` tail of a reference, whatever base URL precedes it, with or without a
# `/_history/<version>`. `urn:uuid:`, `#contained` and other references have no such tail.
_PATIENT_TAIL = re.compile(r"(?:^|/)Patient/([^/?#]+)(?:/_history/[^/?#]*)?$")


@dataclass
class SkipCounter:
    skipped: int = 0
    other_patient: int = 0


def referenced_patient(resource: dict[str, Any]) -> str | None:
    """The Patient id that the resource's `subject` (else `patient`) reference names, or None
    when it names none (no subject, `urn:uuid:`, `#contained`, a Group): such data counts."""
    for name in ("subject", "patient"):
        if name not in resource:
            continue
        value = resource[name]
        target = value.get("reference") if isinstance(value, dict) else value
        if not isinstance(target, str):
            return None
        match = _PATIENT_TAIL.search(target.strip())
        return match.group(1) if match else None
    return None


def belongs_to(resource: dict[str, Any], patient_id: str) -> bool:
    """False for another patient's resource: a Patient with another id, or a resource whose
    subject (or patient) references another Patient."""
    if resource.get("resourceType") == "Patient":
        return resource.get("id") == patient_id
    # The usual case, "Patient/<id>" of this very patient, without the general parse.
    subject = resource.get("subject", resource.get("patient"))
    target = subject.get("reference") if isinstance(subject, dict) else subject
    own = f"Patient/{patient_id}"
    if isinstance(target, str) and (target == own or target.endswith("/" + own)):
        return True
    named = referenced_patient(resource)
    return named is None or named == patient_id


def _parse(raw: Iterable[dict[str, Any]], model: type[M], counter: SkipCounter) -> list[M]:
    out: list[M] = []
    for item in raw:
        try:
            out.append(model.model_validate(item))
        except ValidationError:
            counter.skipped += 1
    return out


def _of_type(resources: list[dict[str, Any]], resource_type: str) -> list[dict[str, Any]]:
    return [r for r in resources if r.get("resourceType") == resource_type]


@dataclass(frozen=True)
class DraftResources:
    """The resources of `context.draftOrders`, read once per call (prefetch looks up the
    Medications they reference; assembly parses them), and how many entries were unreadable."""

    resources: list[dict[str, Any]]
    unreadable: int = 0


def draft_resources(context: dict[str, Any]) -> DraftResources:
    bundle = context.get("draftOrders")
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    resources: list[dict[str, Any]] = []
    unreadable = 0
    for entry in entries if isinstance(entries, list) else []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            resources.append(resource)
        else:
            unreadable += 1
    return DraftResources(resources, unreadable)


def _draft_orders(
    drafts: DraftResources, patient_id: str, counter: SkipCounter
) -> tuple[list[DraftOrder], list[str], dict[str, dict[str, Any]]]:
    """The MedicationRequests and ServiceRequests of `draftOrders`, and their "Type/id" keys.

    A draft for another patient is left out like any other resource: an order the EHR drafted
    for someone else is not this patient's treatment, and its reason is not this patient's back
    pain (CDS Hooks says the drafts are for `context.patientId`; one that is not is an EHR error).
    """
    orders: list[DraftOrder] = []
    keys: list[str] = []
    raw: dict[str, dict[str, Any]] = {}
    counter.skipped += drafts.unreadable
    for resource in drafts.resources:
        kind = resource.get("resourceType")
        if kind not in ("MedicationRequest", "ServiceRequest"):
            continue  # NutritionOrder, DeviceRequest, ...: not checked by this service
        if not belongs_to(resource, patient_id):
            counter.other_patient += 1
            continue
        try:
            order: DraftOrder = (
                MedicationRequest.model_validate(resource)
                if kind == "MedicationRequest"
                else ServiceRequest.model_validate(resource)
            )
        except ValidationError:
            counter.skipped += 1
            continue
        orders.append(order)
        keys.append(f"{kind}/{order.id}")
        raw[f"{kind}/{order.id}"] = resource
    return orders, keys, raw


def build_record(
    *,
    hook: str,
    today: date,
    context: dict[str, Any],
    drafts: DraftResources,
    resources: dict[DataKey, list[dict[str, Any]]],
) -> tuple[PatientRecord, int]:
    """The PatientRecord of one call and the number of resources skipped as unreadable (the
    record counts those left out as another patient's)."""
    counter = SkipCounter()
    patient_id = context.get("patientId")
    patient_id = patient_id if isinstance(patient_id, str) else ""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for key, items in resources.items():
        allowed = RESOURCE_TYPES[key]
        for item in items:
            kind = item.get("resourceType")
            if not (isinstance(kind, str) and kind in allowed):
                continue
            if belongs_to(item, patient_id):
                by_type.setdefault(kind, []).append(item)
            else:
                counter.other_patient += 1

    # Only the context patient's own Patient resource is left: another one means age unknown.
    patients = _parse(by_type.get("Patient", []), Patient, counter)
    patient = patients[0] if patients else None

    orders, keys, raw_orders = _draft_orders(drafts, patient_id, counter)
    selections = context.get("selections")
    if isinstance(selections, list):
        wanted = {s for s in selections if isinstance(s, str)}
        to_check = [o for o, k in zip(orders, keys, strict=True) if k in wanted]
    else:
        to_check = list(orders)

    # Draft orders may also appear in the chart's MedicationRequest search (same id): keep the draft.
    draft_ids = {o.id for o in orders if isinstance(o, MedicationRequest) and o.id}
    medication_requests = [
        m
        for m in _parse(by_type.get("MedicationRequest", []), MedicationRequest, counter)
        if not (m.id and m.id in draft_ids)
    ]
    medications = {
        m.id: m for m in _parse(by_type.get("Medication", []), Medication, counter) if m.id
    }
    record = PatientRecord(
        today=today,
        hook=hook,
        patient=patient,
        conditions=tuple(_parse(by_type.get("Condition", []), Condition, counter)),
        observations=tuple(_parse(by_type.get("Observation", []), Observation, counter)),
        medication_requests=tuple(medication_requests),
        medications=medications,
        procedures=tuple(_parse(by_type.get("Procedure", []), Procedure, counter)),
        questionnaire_responses=tuple(
            _parse(by_type.get("QuestionnaireResponse", []), QuestionnaireResponse, counter)
        ),
        encounters=tuple(_parse(by_type.get("Encounter", []), Encounter, counter)),
        draft_orders=tuple(orders),
        orders_to_check=tuple(to_check),
        draft_order_json=raw_orders,
        other_patient_resources=counter.other_patient,
    )
    return record, counter.skipped
