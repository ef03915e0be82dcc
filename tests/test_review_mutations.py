"""Behaviour that a code review found unguarded (mutations that survived the suite), checked
through the HTTP API: card topics, detail text and suggestion resources.

Each test names the mutation it kills. The MME figures are worked out by hand in comments from
the CDC 2022 factors (logic/data/cdc-2022-mme-factors.json) and the RxNav strength table
(logic/data/opioid-drug-ingredients-rxnav-2020-10-20.csv).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests import medication_factories as mf
from tests.conftest import call
from tests.factories import back_pain, hook_request, order_prefetch, service_request

# buprenorphine 2 MG Sublingual Tablet: in the buprenorphine value set and the strength table,
# without naloxone (so the card has no other reason to name it).
BUPRENORPHINE_SL_2 = ("351264", "buprenorphine 2 MG Sublingual Tablet")


def order_sign(client: TestClient, drafts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The order-sign cards for these drafts, on a back-pain episode 10 days old."""
    body = hook_request("order-sign", prefetch=order_prefetch([back_pain()]), draft_orders=drafts)
    response = call(client, "lbp-order-sign", body)
    assert response.status_code == 200, response.text
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards


def topics(cards: list[dict[str, Any]]) -> list[str]:
    return [c["source"]["topic"]["code"] for c in cards]


def opioid_card(cards: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The opioid-order card whose order names `name`."""
    [card] = [
        c
        for c in cards
        if c["source"]["topic"]["code"] == "opioid-order" and name in c["detail"].split("\n")[0]
    ]
    return card


def actions(card: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [a for s in card.get("suggestions", []) for a in s["actions"] if a["type"] == kind]


def naloxone_suggested(card: dict[str, Any]) -> bool:
    return any(
        "naloxone" in a["resource"]["medicationCodeableConcept"]["text"].lower()
        for a in actions(card, "create")
    )


def caution_point_shown(card: dict[str, Any]) -> bool:
    return "At 50 MME/day or more" in card["detail"]


# --- a. buprenorphine is not one of the other drafted opioids ---------------------------------


def test_a_co_drafted_buprenorphine_is_not_named_among_the_other_drafted_opioids(
    client: TestClient,
) -> None:
    """Kills: `_counted_opioids` (or its successor) without `not is_buprenorphine(...)`."""
    oxycodone = mf.medication_request(mf.OXYCODONE_5, quantity=12, request_id="oxy-1")
    hydrocodone = mf.medication_request(mf.HYDROCODONE_APAP_7_5, quantity=12, request_id="hc-1")
    buprenorphine = mf.medication_request(BUPRENORPHINE_SL_2, quantity=12, request_id="bup-1")
    cards = order_sign(client, [oxycodone, hydrocodone, buprenorphine])
    # Buprenorphine gets no opioid-order card of its own.
    assert topics(cards) == ["opioid-order", "opioid-order"]
    card = opioid_card(cards, "oxycodone")
    # The other drafted opioid is named; buprenorphine nowhere on the card.
    assert mf.HYDROCODONE_APAP_7_5[1] in card["detail"]
    assert "buprenorphine" not in card["detail"].lower()
    assert "1 other opioid order" in card["detail"]


# --- b. strength sources: Medication.ingredient, then the RxNav table, then the name ----------


def test_b_medication_ingredient_strength_wins_over_the_table_and_the_name(
    client: TestClient,
) -> None:
    """Kills: any order of strength sources that does not put Medication.ingredient first.

    The Medication's code is oxycodone 5 MG Oral Tablet (table and name: 5 mg) but its
    ingredient says 10 mg per tablet: 1 tablet every 6 h = 10 mg x 4/day x 1.5 = 60 MME/day
    (the table or the name would give 5 x 4 x 1.5 = 30)."""
    med = mf.medication(
        "med-oxy", mf.OXYCODONE_5, ingredients=[mf.ingredient("oxycodone", None, 10)]
    )
    draft = mf.medication_request(
        None, medication_reference="#med-oxy", contained=[med], quantity=12, request_id="oxy-1"
    )
    [card] = order_sign(client, [draft])
    assert card["source"]["topic"]["code"] == "opioid-order"
    assert "60 MME/day" in card["detail"]
    assert "30 MME/day" not in card["detail"]
    # 60 >= 50: the caution point and naloxone follow from the Medication's strength.
    assert caution_point_shown(card)
    assert naloxone_suggested(card)


def test_b_strength_table_wins_over_the_product_name(client: TestClient) -> None:
    """Kills: reading the product name before the RxNav table.

    RxNorm 1049621 is oxycodone hydrochloride 5 MG Oral Tablet in the table; the order's text
    says 10 MG. 1 tablet every 6 h: table 5 x 4 x 1.5 = 30 MME/day, name 10 x 4 x 1.5 = 60."""
    draft = mf.medication_request(
        ("1049621", "oxycodone hydrochloride 10 MG Oral Tablet"), quantity=12, request_id="oxy-1"
    )
    [card] = order_sign(client, [draft])
    assert "30 MME/day" in card["detail"]
    assert "60 MME/day" not in card["detail"]
    assert not caution_point_shown(card)
    assert not naloxone_suggested(card)


# --- c. a completed imaging order is not a draft to check -------------------------------------


@pytest.mark.parametrize(("status", "card"), [("completed", False), ("draft", True)])
def test_c_completed_lumbar_mri_gets_no_imaging_card(
    client: TestClient, status: str, card: bool
) -> None:
    """Kills: "completed" dropped from the inactive order statuses of the imaging rule."""
    mri = service_request(order_id="mri-1")
    mri["status"] = status
    cards = order_sign(client, [mri])
    assert topics(cards) == (["imaging-without-red-flags"] if card else [])


# --- d. MME/day rounded to 0.1 before the 50 and 90 thresholds --------------------------------


def morphine_solution(ml_every_12h: float) -> dict[str, Any]:
    """Morphine sulfate 2 MG/ML Oral Solution (table: 2 mg/mL; CDC factor 1.0), a dose in mL
    every 12 hours: MME/day = mL x 2 mg/mL x 2/day x 1.0 = 4 x mL."""
    return mf.medication_request(
        mf.MORPHINE_SOLUTION_2,
        dose=ml_every_12h,
        dose_unit="mL",
        every_hours=12,
        supply_days=5,
        request_id="mor-1",
    )


@pytest.mark.parametrize(
    ("ml", "at_caution"),
    [
        (12.4875, True),  # 4 x 12.4875 = 49.95 -> 50.0
        (12.49, True),  # 49.96 -> 50.0
        (12.4975, True),  # 49.99 -> 50.0
        (12.485, False),  # 49.94 -> 49.9
    ],
)
def test_d_mme_is_rounded_to_a_tenth_before_the_caution_threshold(
    client: TestClient, ml: float, at_caution: bool
) -> None:
    """Kills: thresholds compared with the unrounded figure, or a figure truncated (floored)
    or rounded to a whole number instead of to 0.1."""
    [card] = order_sign(client, [morphine_solution(ml)])
    shown = "50 MME/day" if at_caution else "49.9 MME/day"
    assert f"**MME/day, this order:** {shown}" in card["detail"]
    assert caution_point_shown(card) is at_caution
    assert naloxone_suggested(card) is at_caution
    assert card["indicator"] == "warning"


@pytest.mark.parametrize(
    ("ml", "high"),
    [
        (22.4875, True),  # 4 x 22.4875 = 89.95 -> 90.0
        (22.485, False),  # 89.94 -> 89.9
    ],
)
def test_d_mme_is_rounded_to_a_tenth_before_the_high_threshold(
    client: TestClient, ml: float, high: bool
) -> None:
    [card] = order_sign(client, [morphine_solution(ml)])
    assert card["indicator"] == ("critical" if high else "warning")
    assert ("At 90 MME/day or more" in card["detail"]) is high


# --- e. the 7-day supply update keeps the opioid's refills ------------------------------------


def test_e_opioid_supply_update_keeps_the_refills(client: TestClient) -> None:
    """Kills: the opioid 7-day update setting numberOfRepeatsAllowed to 0 (only the muscle
    relaxant's 14-day update does that).

    Oxycodone 5 mg every 6 h, 40 tablets = 10 days, 2 refills."""
    draft = mf.medication_request(mf.OXYCODONE_5, quantity=40, refills=2, request_id="oxy-1")
    [card] = order_sign(client, [draft])
    [update] = actions(card, "update")
    resource = update["resource"]
    assert resource["id"] == "oxy-1"
    assert resource["dispenseRequest"]["expectedSupplyDuration"]["value"] == 7
    assert resource["dispenseRequest"]["numberOfRepeatsAllowed"] == 2


def test_e_relaxant_course_update_drops_the_refills(client: TestClient) -> None:
    """The contrast: the muscle relaxant's 14-day update sets the refills to 0.

    Cyclobenzaprine 10 mg three times a day, 90 tablets = 30 days, 2 refills."""
    draft = mf.medication_request(
        mf.CYCLOBENZAPRINE_10,
        every_hours=None,
        per_day=3,
        quantity=90,
        refills=2,
        request_id="cbz-1",
    )
    cards = order_sign(client, [draft])
    [card] = [c for c in cards if c["source"]["topic"]["code"] == "muscle-relaxant-duration"]
    [update] = actions(card, "update")
    assert update["resource"]["dispenseRequest"]["numberOfRepeatsAllowed"] == 0
