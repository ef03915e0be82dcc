"""Realistic hook requests built from the Synthea LBP patient the package ships (seed loads it)."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
SYNTHEA = (
    ROOT
    / "cds_service"
    / "tools"
    / "fixtures"
    / "synthea"
    / "lbp-fb7c882a-f897-e7c5-67e0-825e7fd55d15.transaction.json"
)
PATIENT_ID = "fb7c882a-f897-e7c5-67e0-825e7fd55d15"

_KEY_TYPES = {
    "conditions": "Condition",
    "medicationRequests": "MedicationRequest",
    "procedures": "Procedure",
}


def synthea_resources() -> list[dict[str, Any]]:
    bundle = orjson.loads(SYNTHEA.read_bytes())
    return [e["resource"] for e in bundle["entry"]]


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


def scaled(
    resources: list[dict[str, Any]], keys: tuple[str, ...], target: int
) -> dict[str, list[dict[str, Any]]]:
    """The patient's resources for the given keys, replicated (new ids) to about `target` in all."""
    by_key = {k: [r for r in resources if r["resourceType"] == _KEY_TYPES[k]] for k in keys}
    base = sum(len(v) for v in by_key.values())
    copies = max(1, round(target / base)) if base else 1
    out: dict[str, list[dict[str, Any]]] = {}
    for key, items in by_key.items():
        grown: list[dict[str, Any]] = []
        for i in range(copies):
            for r in items:
                clone = copy.deepcopy(r) if i else r
                if i:
                    clone["id"] = f"{r['id']}-x{i}"
                grown.append(clone)
        out[key] = grown
    return out


def patient_view(target: int | None = None) -> dict[str, Any]:
    resources = synthea_resources()
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    keys = ("conditions", "medicationRequests")
    grown = (
        scaled(resources, keys, target)
        if target
        else {k: [r for r in resources if r["resourceType"] == _KEY_TYPES[k]] for k in keys}
    )
    return {
        "hook": "patient-view",
        "hookInstance": "bench-patient-view",
        "context": {"userId": "Practitioner/bench", "patientId": PATIENT_ID},
        "prefetch": {
            "patient": patient,
            "conditions": _searchset(grown["conditions"]),
            "medicationRequests": _searchset(grown["medicationRequests"]),
            "startbackObservations": _searchset([]),
            "questionnaireResponses": _searchset([]),
        },
    }


def order_sign(today: date) -> dict[str, Any]:
    """Opioid + lumbar MRI drafts for the Synthea patient with a new 10-day back-pain episode."""
    resources = synthea_resources()
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    grown = {k: [r for r in resources if r["resourceType"] == _KEY_TYPES[k]] for k in _KEY_TYPES}
    grown["conditions"].append(
        {
            "resourceType": "Condition",
            "id": "bench-acute-lbp",
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
            "code": {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "279039007",
                        "display": "Low back pain",
                    }
                ]
            },
            "onsetDateTime": (today - timedelta(days=10)).isoformat(),
        }
    )
    mri = {
        "resourceType": "ServiceRequest",
        "id": "bench-mri",
        "status": "draft",
        "intent": "order",
        "code": {
            "coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72148"}],
            "text": "MRI lumbar spine",
        },
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }
    opioid = {
        "resourceType": "MedicationRequest",
        "id": "bench-oxycodone",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "1049621",
                    "display": "oxycodone hydrochloride 5 MG Oral Tablet",
                }
            ]
        },
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
            }
        ],
        "dispenseRequest": {
            "quantity": {"value": 40, "unit": "tablet"},
            "expectedSupplyDuration": {"value": 10, "unit": "days", "code": "d"},
        },
    }
    return {
        "hook": "order-sign",
        "hookInstance": "bench-order-sign",
        "context": {
            "userId": "Practitioner/bench",
            "patientId": PATIENT_ID,
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": mri}, {"resource": opioid}],
            },
        },
        "prefetch": {
            "patient": patient,
            "conditions": _searchset(grown["conditions"]),
            "medicationRequests": _searchset(grown["medicationRequests"]),
            "procedures": _searchset(grown["procedures"]),
            "temperatureObservations": _searchset([]),
        },
    }


def patient_view_absent(fhir_base: str) -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": "bench-patient-view-fhir",
        "fhirServer": fhir_base,
        "fhirAuthorization": {
            "access_token": "bench",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/*.read",
            "subject": "bench",
        },
        "context": {"userId": "Practitioner/bench", "patientId": PATIENT_ID},
    }


def count_resources(body: dict[str, Any]) -> int:
    total = 0
    for value in (body.get("prefetch") or {}).values():
        if isinstance(value, dict):
            total += len(value.get("entry", [])) if value.get("resourceType") == "Bundle" else 1
    return total
