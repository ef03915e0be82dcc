"""opioid-order through the service: indicator, figures, suggestions, exclusions, boundaries."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.logic.fhir import Coding
from cds_service.logic.terminology import RXNORM, value_set
from tests import medication_factories as mf
from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import ICD10CM, back_pain, condition, hook_request, order_prefetch

ORDER_SIGN = ("lbp-order-sign", "order-sign")
ORDER_SELECT = ("lbp-order-select", "order-select")


def cards_for(
    client: TestClient,
    drafts: list[dict[str, Any]],
    *,
    active: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    service: tuple[str, str] = ORDER_SIGN,
    selections: list[str] | None = None,
) -> list[dict[str, Any]]:
    service_id, hook = service
    body = hook_request(
        hook,
        prefetch=order_prefetch(
            [back_pain()] if conditions is None else conditions, medication_requests=active
        ),
        draft_orders=drafts,
        selections=selections,
    )
    response = call(client, service_id, body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert_response_contract(result, hook)
    return result["cards"]


def opioid_cards(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in cards if c["source"]["topic"]["code"] == "opioid-order"]


def suggestion_actions(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for s in card.get("suggestions", []) for a in s.get("actions", [])]


def naloxone_suggested(card: dict[str, Any]) -> bool:
    return any(
        a["type"] == "create"
        and "naloxone" in a["resource"]["medicationCodeableConcept"]["text"].lower()
        for a in suggestion_actions(card)
    )


def supply_update(card: dict[str, Any]) -> dict[str, Any] | None:
    updates = [a["resource"] for a in suggestion_actions(card) if a["type"] == "update"]
    return updates[0] if updates else None


def morphine(mg_every_6h: float, **fields: Any) -> dict[str, Any]:
    """Morphine (factor 1) written in mg every 6 hours: MME/day = 4 x dose."""
    return mf.medication_request(
        ("892589", "morphine sulfate 2 MG/ML Oral Solution"),
        dose=mg_every_6h,
        dose_unit="mg",
        every_hours=6,
        **fields,
    )


def test_five_day_thirty_mme_order_is_a_warning_with_no_suggestion(client: TestClient) -> None:
    # oxycodone 5 mg every 6 h = 30 MME/day; 20 tablets = 5 days.
    draft = mf.medication_request(mf.OXYCODONE_5, quantity=20, request_id="oxy-1")
    [card] = opioid_cards(cards_for(client, [draft]))
    assert card["indicator"] == "warning"
    assert card["summary"] == (
        "Oxycodone 30 MME/day, 5-day supply: opioids are not first-line for back pain"
    )
    assert "**MME/day, this order:** 30 MME/day" in card["detail"]
    assert "suggestions" not in card
    assert "**MME/day, this order:** 30 MME/day" in card["detail"]
    assert "**Days supply:** 5 days" in card["detail"]
    assert "cdc.gov" in card["source"]["url"]
    assert "acpjournals.org" in card["detail"]  # ACP 2017 cited in the detail
    assert all(r["display"] for r in card["overrideReasons"])


@pytest.mark.parametrize(("mg", "naloxone"), [(12.25, False), (12.5, True)])
def test_naloxone_suggested_from_50_mme_per_day(
    client: TestClient, mg: float, naloxone: bool
) -> None:
    [card] = opioid_cards(cards_for(client, [morphine(mg, supply_days=3)]))
    assert card["indicator"] == "warning"
    assert naloxone_suggested(card) is naloxone
    assert ("At 50 MME/day or more" in card["detail"]) is naloxone


@pytest.mark.parametrize(("mg", "indicator"), [(22.25, "warning"), (22.5, "critical")])
def test_critical_from_90_mme_per_day(client: TestClient, mg: float, indicator: str) -> None:
    [card] = opioid_cards(cards_for(client, [morphine(mg, supply_days=3)]))
    assert card["indicator"] == indicator
    assert naloxone_suggested(card)


@pytest.mark.parametrize(("days", "update"), [(7, False), (8, True)])
def test_supply_over_7_days_suggests_a_7_day_supply(
    client: TestClient, days: int, update: bool
) -> None:
    # 30 MME/day, 4 tablets a day: quantity = 4 x days.
    draft = mf.medication_request(
        mf.OXYCODONE_5, supply_days=days, quantity=4 * days, request_id="oxy-7"
    )
    [card] = opioid_cards(cards_for(client, [draft]))
    resource = supply_update(card)
    assert (resource is not None) is update
    if resource is not None:
        assert resource["id"] == "oxy-7"
        assert resource["resourceType"] == "MedicationRequest"
        assert resource["dispenseRequest"]["expectedSupplyDuration"]["value"] == 7
        assert resource["dispenseRequest"]["expectedSupplyDuration"]["code"] == "d"
        assert resource["dispenseRequest"]["quantity"]["value"] == 28
        assert resource["medicationCodeableConcept"] == draft["medicationCodeableConcept"]
        assert resource["dosageInstruction"] == draft["dosageInstruction"]
        assert not naloxone_suggested(card)


def test_supply_from_quantity_and_dose_over_7_days(client: TestClient) -> None:
    # 60 tablets at 1 every 6 h = 15 days; the update keeps 7 days = 28 tablets.
    draft = mf.medication_request(mf.OXYCODONE_APAP_5, quantity=60)
    [card] = opioid_cards(cards_for(client, [draft]))
    assert "**Days supply:** 15 days (from the quantity and dose), more than 7" in card["detail"]
    resource = supply_update(card)
    assert resource is not None
    assert resource["dispenseRequest"]["quantity"]["value"] == 28


@pytest.mark.parametrize(
    ("where", "indicator"),
    [("absent", "warning"), ("active", "critical"), ("drafted", "critical")],
)
def test_benzodiazepine_active_or_drafted_makes_the_card_critical(
    client: TestClient, where: str, indicator: str
) -> None:
    opioid = mf.medication_request(mf.OXYCODONE_5, quantity=12, request_id="oxy-b")
    benzo = mf.medication_request(
        mf.LORAZEPAM_1, status="active" if where == "active" else "draft", per_day=2
    )
    drafts = [opioid, benzo] if where == "drafted" else [opioid]
    active = [benzo] if where == "active" else []
    # order-select with only the opioid selected: a drafted benzodiazepine still counts.
    cards = cards_for(
        client, drafts, active=active, service=ORDER_SELECT, selections=["MedicationRequest/oxy-b"]
    )
    [card] = opioid_cards(cards)
    assert card["indicator"] == indicator
    assert naloxone_suggested(card) is (where != "absent")
    if where != "absent":
        assert f"lorazepam 1 MG Oral Tablet ({where})" in card["detail"]


def test_benzodiazepine_stopped_long_ago_does_not_count(client: TestClient) -> None:
    opioid = mf.medication_request(mf.OXYCODONE_5, quantity=12)
    benzo = mf.medication_request(mf.ALPRAZOLAM_05, status="stopped", authored_days_ago=400)
    [card] = opioid_cards(cards_for(client, [opioid], active=[benzo]))
    assert card["indicator"] == "warning"


def test_active_opioids_add_to_the_total(client: TestClient) -> None:
    # Drafted 30 MME/day + active hydrocodone 7.5 mg x 2 every 6 h (60) = 90: critical.
    draft = mf.medication_request(mf.OXYCODONE_5, quantity=12)
    active = mf.medication_request(
        mf.HYDROCODONE_APAP_7_5, status="active", dose=2, authored_days_ago=30
    )
    [card] = opioid_cards(cards_for(client, [draft], active=[active]))
    assert card["indicator"] == "critical"
    assert "total with the active opioid orders:** 90 MME/day" in card["detail"]
    assert "hydrocodone bitartrate 7.5 MG Oral Tablet (active): 60 MME/day" in card["detail"]


def test_meperidine_cannot_be_computed_and_stays_a_warning(client: TestClient) -> None:
    [card] = opioid_cards(cards_for(client, [mf.medication_request(mf.MEPERIDINE_50)]))
    assert card["indicator"] == "warning"
    assert (
        "cannot be computed: CDC 2022 gives no MME conversion factor for meperidine"
        in card["detail"]
    )


def test_meperidine_with_a_benzodiazepine_is_critical(client: TestClient) -> None:
    benzo = mf.medication_request(mf.LORAZEPAM_1, status="active")
    [card] = opioid_cards(
        cards_for(client, [mf.medication_request(mf.MEPERIDINE_50)], active=[benzo])
    )
    assert card["indicator"] == "critical"
    assert "cannot be computed" in card["detail"]
    assert naloxone_suggested(card)


def test_naloxone_suggestion_is_a_valid_naloxone_nasal_spray_order(client: TestClient) -> None:
    [card] = opioid_cards(cards_for(client, [morphine(15, supply_days=3)]))
    [resource] = [a["resource"] for a in suggestion_actions(card) if a["type"] == "create"]
    coding = resource["medicationCodeableConcept"]["coding"][0]
    assert (coding["system"], coding["code"]) == (RXNORM, "1725059")
    assert value_set("naloxone-medications").contains(Coding.model_validate(coding))
    assert resource["status"] == "draft"
    assert resource["subject"] == {"reference": "Patient/pt-1"}


def test_no_naloxone_suggestion_when_naloxone_is_already_active(client: TestClient) -> None:
    naloxone = mf.medication_request(mf.NALOXONE_SPRAY, status="active", dose=None)
    [card] = opioid_cards(cards_for(client, [morphine(15, supply_days=3)], active=[naloxone]))
    assert not naloxone_suggested(card)
    assert "Naloxone is already ordered" in card["detail"]


@pytest.mark.parametrize(
    "draft",
    [
        mf.medication_request(mf.BUPRENORPHINE_NALOXONE_FILM, every_hours=24),
        mf.medication_request(None, text="Buprenorphine 8 mg sublingual tablet", every_hours=24),
        mf.medication_request(
            mf.METHADONE_10,
            per_day=1,
            reason={"coding": [{"system": ICD10CM, "code": "F11.20"}]},
        ),
    ],
    ids=["buprenorphine-product", "buprenorphine-text", "methadone-for-oud"],
)
def test_no_card_for_buprenorphine_or_opioid_use_disorder(
    client: TestClient, draft: dict[str, Any]
) -> None:
    assert opioid_cards(cards_for(client, [draft])) == []


def test_no_card_when_the_reason_reference_is_opioid_use_disorder(client: TestClient) -> None:
    oud = condition(ICD10CM, "F11.20", condition_id="oud-1")
    draft = mf.medication_request(mf.METHADONE_10, per_day=1, reason_reference="Condition/oud-1")
    assert opioid_cards(cards_for(client, [draft], conditions=[back_pain(), oud])) == []


def test_no_card_without_back_pain(client: TestClient) -> None:
    draft = mf.medication_request(mf.OXYCODONE_5, supply_days=30, quantity=120)
    assert cards_for(client, [draft], conditions=[]) == []


def test_order_select_checks_only_the_selected_opioid(client: TestClient) -> None:
    first = mf.medication_request(mf.OXYCODONE_5, quantity=12, request_id="sel-1")
    second = mf.medication_request(mf.TRAMADOL_50, quantity=12, request_id="sel-2")
    cards = cards_for(
        client, [first, second], service=ORDER_SELECT, selections=["MedicationRequest/sel-2"]
    )
    [card] = opioid_cards(cards)
    assert "tramadol" in card["detail"].split("**MME/day, this order:**")[0]
    # RULES.md totals this order and the active orders: the unselected draft (oxycodone 30) is
    # shown with what signing both would give, 40 + 30 = 70, but not counted.
    assert "**MME/day, total:** the same" in card["detail"]
    assert "Signed together: 70 MME/day" in card["detail"]


def test_order_sign_gives_one_card_per_opioid_draft(client: TestClient) -> None:
    drafts = [
        mf.medication_request(mf.OXYCODONE_5, quantity=12),
        mf.medication_request(mf.TRAMADOL_50, quantity=12),
        mf.medication_request(mf.IBUPROFEN_400, quantity=30),
    ]
    assert len(opioid_cards(cards_for(client, drafts))) == 2


def test_draft_without_usable_medication_is_skipped(client: TestClient) -> None:
    draft = mf.medication_request(None, medication_reference="Medication/not-there")
    assert cards_for(client, [draft]) == []


def test_opioid_found_by_its_reason_as_the_back_pain_context(client: TestClient) -> None:
    draft = mf.medication_request(
        mf.OXYCODONE_5,
        quantity=12,
        reason={"coding": [{"system": ICD10CM, "code": "M54.50"}]},
    )
    [card] = opioid_cards(cards_for(client, [draft], conditions=[]))
    assert card["indicator"] == "warning"


def test_supply_update_sends_back_the_whole_draft(client: TestClient) -> None:
    """CDS Hooks: an update carries the resource in its entirety, fields the service ignores too."""
    draft = mf.medication_request(
        mf.OXYCODONE_5, supply_days=10, quantity=40, request_id="oxy-full"
    )
    draft["requester"] = {"reference": "Practitioner/dr-1", "display": "Dr One"}
    draft["note"] = [{"text": "Patient prefers liquid if available"}]
    draft["substitution"] = {"allowedBoolean": False}
    draft["identifier"] = [{"system": "urn:ehr:orders", "value": "ORD-77"}]
    [card] = opioid_cards(cards_for(client, [draft]))
    resource = supply_update(card)
    assert resource is not None
    for field in ("requester", "note", "substitution", "identifier", "subject", "status", "intent"):
        assert resource[field] == draft[field], field
    assert resource["dispenseRequest"]["expectedSupplyDuration"]["value"] == 7
    assert resource["dispenseRequest"]["quantity"]["value"] == 28
