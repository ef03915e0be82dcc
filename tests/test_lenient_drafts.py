"""Sloppy drafts and several dosage lines through a whole hook call (RULES.md v2 "Lenient input",
"Doses"): a single object where R4 has an array is read as the array it means, the 7-day update
always validates as R4 (fhir.resources R4B), and a suggestion that truly cannot be built is named
in the card's detail and logged without PHI."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.medicationrequest import MedicationRequest as R4BMedicationRequest

from cds_service.cards.medication_orders import r4_arrays, shortened
from cds_service.logic.fhir import MedicationRequest
from tests import medication_factories as mf
from tests.conftest import call
from tests.factories import PATIENT_ID, back_pain, hook_request, order_prefetch
from tests.sandbox_orders import sandbox_oxycodone_10_days


def _opioid_card(
    client: TestClient,
    draft: dict[str, Any],
    *,
    hook: str = "order-sign",
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    conditions = [back_pain()] if conditions is None else conditions
    body = hook_request(hook, prefetch=order_prefetch(conditions), draft_orders=[draft])
    response = call(client, f"lbp-{hook}", body)
    assert response.status_code == 200, response.text
    [card] = [c for c in response.json()["cards"] if c["source"]["topic"]["code"] == "opioid-order"]
    return card


def _update(card: dict[str, Any]) -> dict[str, Any]:
    [resource] = [
        action["resource"]
        for s in card.get("suggestions") or []
        for action in s["actions"]
        if action["type"] == "update"
    ]
    assert isinstance(resource, dict)
    return resource


@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
def test_the_sandbox_draft_gets_its_7_day_update_valid_r4(client: TestClient, hook: str) -> None:
    draft = sandbox_oxycodone_10_days()
    card = _opioid_card(client, draft, hook=hook)
    assert (
        "**Days supply:** 10 days (from the expected supply duration), more than 7"
        in (card["detail"])
    )
    assert "Not suggested" not in card["detail"]
    update = _update(card)
    R4BMedicationRequest.model_validate(update)  # raises when not valid R4
    assert update["category"] == [draft["category"]]
    assert update["reasonCode"] == [draft["reasonCode"]]
    assert update["dispenseRequest"]["expectedSupplyDuration"]["value"] == 7
    assert update["dispenseRequest"]["quantity"]["value"] == 28  # 40 x 7/10
    # The rest of the draft goes back as it came.
    assert update["id"] == draft["id"]
    assert update["note"] == draft["note"]
    assert update["dosageInstruction"] == draft["dosageInstruction"]


def test_a_single_object_reason_code_gives_the_back_pain_context(client: TestClient) -> None:
    """No back-pain Condition in the record: the draft's one reasonCode object is the context."""
    card = _opioid_card(client, sandbox_oxycodone_10_days(), conditions=[])
    R4BMedicationRequest.model_validate(_update(card))


def test_r4_arrays_wraps_single_objects_at_any_depth() -> None:
    sloppy = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/pt-1"},
        "medicationCodeableConcept": {"coding": {"code": "1049621"}},
        "category": {"text": "outpatient"},
        "reasonCode": {"text": "low back pain"},
        "note": {"text": "a note"},
        "dosageInstruction": {
            "timing": {"repeat": {"when": "MORN", "timeOfDay": "08:00:00"}},
            "doseAndRate": {"doseQuantity": {"value": 1}},
            "additionalInstruction": {"text": "with food"},
        },
        "contained": {
            "resourceType": "Medication",
            "id": "m1",
            "ingredient": {"itemCodeableConcept": {"coding": {"code": "7804"}}},
        },
    }
    fixed = r4_arrays(sloppy)
    R4BMedicationRequest.model_validate(fixed)
    assert fixed["dosageInstruction"][0]["timing"]["repeat"]["when"] == ["MORN"]
    assert fixed["contained"][0]["ingredient"][0]["itemCodeableConcept"]["coding"] == [
        {"code": "7804"}
    ]
    assert fixed["medicationCodeableConcept"]["coding"] == [{"code": "1049621"}]
    # Arrays and single elements R4 defines as single stay as they are.
    assert r4_arrays(fixed) == fixed
    assert sloppy["category"] == {"text": "outpatient"}  # the input is not changed


def test_shortened_handles_a_dispense_request_sent_as_an_array() -> None:
    draft = sandbox_oxycodone_10_days()
    draft["dispenseRequest"] = [draft["dispenseRequest"]]
    resource = shortened(
        MedicationRequest.model_validate(sandbox_oxycodone_10_days()),
        days=7,
        current_days=10,
        drop_refills=False,
        patient_id=PATIENT_ID,
        source=draft,
    )
    R4BMedicationRequest.model_validate(resource)
    assert resource["dispenseRequest"]["expectedSupplyDuration"]["value"] == 7


def test_a_draft_that_cannot_be_sent_back_is_named_in_the_detail_and_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    draft = sandbox_oxycodone_10_days()
    draft["authoredOn"] = "the 3rd of May, Mrs Example"  # not an R4 dateTime
    with caplog.at_level(logging.WARNING, logger="cds_service.cards"):
        card = _opioid_card(client, copy.deepcopy(draft))
    assert not [
        a for s in card.get("suggestions") or [] for a in s["actions"] if a["type"] == "update"
    ]
    assert (
        "**Not suggested:** the 7-day update could not be built from this draft" in (card["detail"])
    )
    [record] = [r for r in caplog.records if r.name == "cds_service.cards"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "authoredOn" in message
    assert "Mrs Example" not in message  # field paths and error kinds, never values
    assert PATIENT_ID not in message


def test_a_dose_range_names_its_upper_bound_in_the_detail(client: TestClient) -> None:
    draft = mf.medication_request(mf.OXYCODONE_5, dose=1, dose_high=2, quantity=16)
    card = _opioid_card(client, draft)
    assert "**Dose range:** 1-2 tablets: 2 used (the upper bound counts)." in card["detail"]
    assert "**MME/day, this order:** 60 MME/day" in card["detail"]  # 10 mg x 4/day x 1.5
    assert "**Days supply:** 2 days (from the quantity and dose)" in card["detail"]


def test_no_range_no_range_line(client: TestClient) -> None:
    card = _opioid_card(client, mf.medication_request(mf.OXYCODONE_5, quantity=16))
    assert "Dose range" not in card["detail"]


def test_two_lines_taken_together_count_in_the_card(client: TestClient) -> None:
    """The issue's case: 2 tablets in the morning + 1 in the evening of oxycodone 5 mg, 30
    tablets: 22.5 MME/day and a 10-day supply, with its 7-day update."""
    draft = mf.medication_request(mf.OXYCODONE_5, quantity=30)
    morning: dict[str, Any] = {
        "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
        "doseAndRate": [{"doseQuantity": {"value": 2, "unit": "tablet"}}],
    }
    evening: dict[str, Any] = {
        "timing": {"code": {"coding": [{"code": "QPM"}]}},
        "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
    }
    draft["dosageInstruction"] = [morning, evening]
    card = _opioid_card(client, draft)
    assert "**MME/day, this order:** 22.5 MME/day" in card["detail"]
    assert "**Days supply:** 10 days (from the quantity and dose), more than 7" in card["detail"]
    update = _update(card)
    R4BMedicationRequest.model_validate(update)
    assert update["dispenseRequest"]["quantity"]["value"] == 21  # 30 x 7/10


def test_the_warning_never_logs_an_unknown_elements_name(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    draft = sandbox_oxycodone_10_days()
    draft["Ann Example"] = "MRN 12345"  # not an R4 element: the update cannot validate
    with caplog.at_level(logging.WARNING, logger="cds_service.cards"):
        card = _opioid_card(client, draft)
    assert "**Not suggested:**" in card["detail"]
    [record] = [r for r in caplog.records if r.name == "cds_service.cards"]
    message = record.getMessage()
    assert "an element R4 does not define" in message
    assert "Ann Example" not in message
    assert "12345" not in message


def test_a_relaxant_draft_that_cannot_be_sent_back_is_named_in_the_detail(
    client: TestClient,
) -> None:
    """The 14-day update of a 30-day relaxant course is not dropped without a word either."""
    draft = mf.medication_request(mf.CYCLOBENZAPRINE_10, supply_days=30, quantity=90)
    draft["authoredOn"] = "the 3rd of May"  # not an R4 dateTime: the update cannot be valid
    body = hook_request("order-sign", prefetch=order_prefetch([back_pain()]), draft_orders=[draft])
    cards = call(client, "lbp-order-sign", body).json()["cards"]
    [card] = [c for c in cards if c["source"]["topic"]["code"] == "muscle-relaxant-duration"]
    assert not card.get("suggestions")
    assert "**Not suggested:** the 14-day update could not be built" in card["detail"]
