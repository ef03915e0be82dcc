"""Draft orders shaped as the CDS Hooks sandbox sends them: small R4 mistakes included (a single
object where R4 has an array: `category`, `reasonCode`), as RULES.md "Lenient input" (v2) expects."""

from __future__ import annotations

from typing import Any

from tests import medication_factories as mf
from tests.factories import PATIENT_ID, RXNORM, SNOMED

UCUM = "http://unitsofmeasure.org"


def sandbox_oxycodone_10_days(
    request_id: str = "sandbox-oxy", patient_id: str = PATIENT_ID
) -> dict[str, Any]:
    """Oxycodone 5 mg, 1 tablet every 6 h, 40 tablets: a 10-day supply (30 MME/day), for low back
    pain, with `category` and `reasonCode` as single objects."""
    return {
        "resourceType": "MedicationRequest",
        "id": request_id,
        "status": "draft",
        "intent": "order",
        "category": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                    "code": "outpatient",
                    "display": "Outpatient",
                }
            ]
        },
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": mf.OXYCODONE_5[0], "display": mf.OXYCODONE_5[1]}],
            "text": mf.OXYCODONE_5[1],
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "reasonCode": {
            "coding": [{"system": SNOMED, "code": "279039007", "display": "Low back pain"}]
        },
        "note": [{"text": "Sandbox draft"}],
        "dosageInstruction": [
            {
                "text": "1 tablet every 6 hours as needed for pain",
                "timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}},
                "asNeededBoolean": True,
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
            }
        ],
        "dispenseRequest": {
            "numberOfRepeatsAllowed": 0,
            "quantity": {"value": 40, "unit": "tablet"},
            "expectedSupplyDuration": {"value": 10, "unit": "days", "system": UCUM, "code": "d"},
        },
    }
