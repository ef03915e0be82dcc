"""The HL7 CDC Opioid Prescribing Guideline IG examples, each classified by the opioid-order rule.

Each example MedicationRequest is drafted (order-sign) for a patient with low back pain; the
example Medications travel with the prefetch, so `medicationReference` resolves as in an EHR.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests import medication_factories as mf
from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import (
    PATIENT_ID,
    back_pain,
    bundle,
    days_ago,
    hook_request,
    order_prefetch,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "fhir" / "cdc-opioid-cpg-examples"

NO_CARD = None
# example -> (indicator, text the detail states) or NO_CARD, with the reason in a comment.
EXPECTED: dict[str, tuple[str, str] | None] = {
    "acute-pain-management": NO_CARD,  # Suboxone: buprenorphine product
    "amphetamine": NO_CARD,  # benzphetamine: not an opioid
    "barbiturate": NO_CARD,  # butalbital / acetaminophen / caffeine: not an opioid
    "benzodiazepine": NO_CARD,  # temazepam alone: no opioid
    "buprenorphine": NO_CARD,  # buprenorphine / naloxone film
    "chronic-pain-management": NO_CARD,  # Suboxone
    "cns-depressant": NO_CARD,  # benzphetamine
    # hydromorphone ER 2 mg once a day: 2 x 1 x 5
    "extended-release-opioid": ("warning", "**MME/day, this order:** 10 MME/day"),
    # fentanyl 0.2 mg sublingual tablet: CDC 2022 has a fentanyl factor for patches only
    "fentanyl": ("warning", "cannot be computed: CDC 2022 gives fentanyl an MME conversion"),
    # methadone 10 mg once a day: 10 x 4.7
    "methadone": ("warning", "**MME/day, this order:** 47 MME/day"),
    # levomethadyl oral solution: no CDC 2022 factor
    "mme": ("warning", "cannot be computed: CDC 2022 gives no MME conversion factor for levo"),
    "naloxone": NO_CARD,  # the "naloxone" example is buprenorphine 8 mg / naloxone 2 mg
    # acetaminophen 300 mg / codeine 30 mg once a day: 30 x 0.15
    "opiate": ("warning", "**MME/day, this order:** 4.5 MME/day"),
    # tramadol 50 mg once a day: 50 x 0.2
    "opioid-review-patient": ("warning", "**MME/day, this order:** 10 MME/day"),
    "opioid": ("warning", "**MME/day, this order:** 10 MME/day"),
    # Percocet (oxycodone 5 mg) once a day: 5 x 1.5
    "oxycodone": ("warning", "**MME/day, this order:** 7.5 MME/day"),
    "subacute-pain-management": NO_CARD,  # Suboxone
}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    if "subject" in data:
        # The examples are all one patient's (Patient/opioid-review-indicated); here they stand
        # for the context patient's orders (another patient's would not count).
        data["subject"] = {"reference": f"Patient/{PATIENT_ID}"}
    return data


def medications() -> list[dict[str, Any]]:
    return [load(p.name) for p in sorted(EXAMPLES.glob("Medication-*.json"))]


def as_draft(name: str) -> dict[str, Any]:
    request = load(f"MedicationRequest-{name}.json")
    request["status"] = "draft"
    return request


def order_sign(
    client: TestClient, drafts: list[dict[str, Any]], active: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    prefetch = order_prefetch([back_pain()])
    prefetch["medicationRequests"] = bundle(medications() + (active or []))
    response = call(
        client, "lbp-order-sign", hook_request("order-sign", prefetch=prefetch, draft_orders=drafts)
    )
    assert response.status_code == 200, response.text
    assert_response_contract(response.json(), "order-sign")
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards


def test_the_table_covers_every_example() -> None:
    names = {
        p.name.removeprefix("MedicationRequest-").removesuffix(".json")
        for p in EXAMPLES.glob("MedicationRequest-*.json")
    }
    assert names == set(EXPECTED)


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_each_example_is_classified(
    client: TestClient, name: str, expected: tuple[str, str] | None
) -> None:
    cards = order_sign(client, [as_draft(name)])
    if expected is None:
        assert cards == []
        return
    indicator, stated = expected
    [card] = cards
    assert card["source"]["topic"]["code"] == "opioid-order"
    assert card["indicator"] == indicator
    assert stated in card["detail"]


def test_example_benzodiazepine_active_makes_example_oxycodone_critical(client: TestClient) -> None:
    benzo = load("MedicationRequest-benzodiazepine.json")  # status active, temazepam
    # RULES v2 "Current orders": authored 2025-07-21 with no days supply, the example is a stale
    # record today; written 10 days ago it is current.
    [card] = order_sign(client, [as_draft("oxycodone")], active=[benzo])
    assert card["indicator"] == "warning"
    assert "**Left out:** 1 active order" in card["detail"]
    benzo["authoredOn"] = days_ago(10)
    [card] = order_sign(client, [as_draft("oxycodone")], active=[benzo])
    assert card["indicator"] == "critical"
    assert "temazepam 7.5 MG Oral Capsule [Restoril] (active)" in card["detail"]


def test_example_methadone_active_adds_to_a_drafted_opioid(client: TestClient) -> None:
    methadone = load("MedicationRequest-methadone.json")  # active, 47 MME/day
    methadone["authoredOn"] = days_ago(10)  # current (RULES v2): the example's date is stale
    draft = mf.medication_request(mf.OXYCODONE_5, quantity=12)  # 30 MME/day
    [card] = order_sign(client, [draft], active=[methadone])
    assert card["summary"] == (
        "Oxycodone 30 MME/day, 3-day supply: opioids are not first-line for back pain"
    )
    assert "**MME/day, total with the active opioid orders:** 77 MME/day" in card["detail"]
    assert card["indicator"] == "warning"
