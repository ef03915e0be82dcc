"""Builders for MedicationRequests (opioids, benzodiazepines, muscle relaxants) used in tests.

Products are named by their RxNorm code and name as in RxNorm (tests assert what a real EHR sends).
"""

from __future__ import annotations

from typing import Any

from tests.factories import PATIENT_ID, RXNORM, days_ago, next_id

UCUM = "http://unitsofmeasure.org"

# RxNorm SCDs (RxNav names) the tests prescribe.
OXYCODONE_5 = ("1049621", "oxycodone hydrochloride 5 MG Oral Tablet")
OXYCODONE_APAP_5 = ("1049221", "acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet")
HYDROCODONE_APAP_7_5 = (
    "857005",
    "acetaminophen 325 MG / hydrocodone bitartrate 7.5 MG Oral Tablet",
)
MORPHINE_ER_15 = ("891878", "12 HR morphine sulfate 15 MG Extended Release Oral Tablet")
MORPHINE_SOLUTION_2 = ("892589", "morphine sulfate 2 MG/ML Oral Solution")
TRAMADOL_50 = ("835603", "tramadol hydrochloride 50 MG Oral Tablet")
TAPENTADOL_50 = ("825411", "tapentadol 50 MG Oral Tablet")
HYDROMORPHONE_2 = ("897696", "hydromorphone hydrochloride 2 MG Oral Tablet")
CODEINE_APAP_30 = ("993781", "acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet")
METHADONE_10 = ("864706", "methadone hydrochloride 10 MG Oral Tablet")
FENTANYL_PATCH_25 = ("245134", "72 HR fentanyl 0.025 MG/HR Transdermal System")
OXYMORPHONE_10 = ("977942", "oxymorphone hydrochloride 10 MG Oral Tablet")
MEPERIDINE_50 = ("861467", "meperidine hydrochloride 50 MG Oral Tablet")
BUPRENORPHINE_NALOXONE_FILM = (
    "1010603",
    "buprenorphine 2 MG / naloxone 0.5 MG Sublingual Film [Suboxone]",
)
LORAZEPAM_1 = ("197901", "lorazepam 1 MG Oral Tablet")
ALPRAZOLAM_05 = ("308048", "alprazolam 0.5 MG Oral Tablet")
NALOXONE_SPRAY = ("1725059", "naloxone hydrochloride 40 MG/ML Nasal Spray")
CYCLOBENZAPRINE_10 = ("828348", "cyclobenzaprine hydrochloride 10 MG Oral Tablet")
METHOCARBAMOL_500 = ("197943", "methocarbamol 500 MG Oral Tablet")
# Not in any value set by code: found by the ingredient name in the display.
TIZANIDINE_4 = ("313393", "tizanidine 4 MG Oral Tablet")
BACLOFEN_10 = ("197405", "baclofen 10 MG Oral Tablet")
IBUPROFEN_400 = ("197806", "ibuprofen 400 MG Oral Tablet")


def medication_concept(product: tuple[str, str] | None, text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if product:
        out["coding"] = [{"system": RXNORM, "code": product[0], "display": product[1]}]
    if text:
        out["text"] = text
    return out


def timing(per_day: float | None = None, *, every_hours: float | None = None) -> dict[str, Any]:
    if every_hours is not None:
        return {"repeat": {"frequency": 1, "period": every_hours, "periodUnit": "h"}}
    return {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}}


def medication_request(
    product: tuple[str, str] | None = OXYCODONE_5,
    *,
    status: str = "draft",
    dose: float | None = 1,
    dose_unit: str = "tablet",
    dose_high: float | None = None,
    per_day: float | None = None,
    every_hours: float | None = 6,
    supply_days: float | None = None,
    quantity: float | None = None,
    quantity_unit: str = "tablet",
    refills: int | None = None,
    authored_days_ago: int | None = 0,
    request_id: str | None = None,
    text: str | None = None,
    medication_reference: str | None = None,
    contained: list[dict[str, Any]] | None = None,
    reason: dict[str, Any] | None = None,
    reason_reference: str | None = None,
) -> dict[str, Any]:
    """A MedicationRequest with one dosage (dose, or a dose range up to `dose_high`)."""
    out: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": request_id or next_id("mr"),
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }
    if medication_reference:
        out["medicationReference"] = {"reference": medication_reference}
    else:
        out["medicationCodeableConcept"] = medication_concept(product, text)
    if contained:
        out["contained"] = contained
    if authored_days_ago is not None:
        out["authoredOn"] = days_ago(authored_days_ago)
    dosage: dict[str, Any] = {}
    if per_day is not None or every_hours is not None:
        dosage["timing"] = timing(per_day, every_hours=every_hours if per_day is None else None)
    if dose_high is not None:
        dosage["doseAndRate"] = [
            {
                "doseRange": {
                    "low": {"value": dose, "unit": dose_unit},
                    "high": {"value": dose_high, "unit": dose_unit},
                }
            }
        ]
    elif dose is not None:
        dosage["doseAndRate"] = [{"doseQuantity": {"value": dose, "unit": dose_unit}}]
    if dosage:
        out["dosageInstruction"] = [dosage]
    dispense: dict[str, Any] = {}
    if supply_days is not None:
        dispense["expectedSupplyDuration"] = {
            "value": supply_days,
            "unit": "days",
            "system": UCUM,
            "code": "d",
        }
    if quantity is not None:
        dispense["quantity"] = {"value": quantity, "unit": quantity_unit}
    if refills is not None:
        dispense["numberOfRepeatsAllowed"] = refills
    if dispense:
        out["dispenseRequest"] = dispense
    if reason:
        out["reasonCode"] = [reason]
    if reason_reference:
        out["reasonReference"] = [{"reference": reason_reference}]
    return out


def medication(
    medication_id: str,
    product: tuple[str, str] | None,
    *,
    ingredients: list[dict[str, Any]] | None = None,
    form_text: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Medication", "id": medication_id}
    if product:
        out["code"] = medication_concept(product)
    if ingredients:
        out["ingredient"] = ingredients
    if form_text:
        out["form"] = {"text": form_text}
    return out


def ingredient(
    name: str, code: str | None, mg: float, per: float = 1, per_unit: str = "TAB"
) -> dict[str, Any]:
    item: dict[str, Any] = {"text": name}
    if code:
        item["coding"] = [{"system": RXNORM, "code": code, "display": name}]
    return {
        "itemCodeableConcept": item,
        "strength": {
            "numerator": {"value": mg, "unit": "mg", "system": UCUM, "code": "mg"},
            "denominator": {"value": per, "unit": per_unit},
        },
    }
