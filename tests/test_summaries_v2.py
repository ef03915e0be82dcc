"""RULES.md v2 "Summaries", "One card per order" and per-drug citations, through the service.

Every summary names the order and its decisive figure and stays under 140 characters even for the
longest drug names of the value sets (the drug name is cut, never the figure); a critical opioid
summary names its reason and differs from the warning; a Beers order gives one card, with a
delete; a relaxant's duration card cites its own label or ACP 2017, never another drug's label;
the imaging detail stays under about 900 characters and names all 12 red-flag groups.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.cards.base import fit_summary
from cds_service.logic.red_flags import SHORT_LABELS
from cds_service.logic.terminology import value_set
from tests import medication_factories as mf
from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import (
    back_pain,
    chart_prefetch,
    hook_request,
    order_prefetch,
    service_request,
)

OPIOID = "opioid-order"
DURATION = "muscle-relaxant-duration"
BEERS = "muscle-relaxant-older-adult"
IMAGING = "imaging-without-red-flags"

OPIOID_VALUE_SETS = (
    "opioid-analgesics-with-ambulatory-misuse-potential",
    "extended-release-opioid-with-ambulatory-misuse-potential",
)
RELAXANT_VALUE_SETS = ("skeletal-muscle-relaxants", "valueset-2.16.840.1.113883.3.464.1003.1062")


def longest(value_sets: tuple[str, ...], count: int = 3) -> list[tuple[str, str]]:
    """The (RxNorm code, display) pairs with the longest displays of these value sets."""
    pairs = {
        (code, display)
        for name in value_sets
        for (_, code), display in value_set(name).displays.items()
    }
    return sorted(pairs, key=lambda p: (-len(p[1]), p[0]))[:count]


LONGEST_OPIOIDS = longest(OPIOID_VALUE_SETS)
LONGEST_RELAXANTS = longest(RELAXANT_VALUE_SETS)
LONGEST_BEERS = longest(("valueset-2.16.840.1.113883.3.464.1003.1062",))


def order_cards(
    client: TestClient,
    drafts: list[dict[str, Any]],
    *,
    age: int = 40,
    active: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    body = hook_request(
        "order-sign",
        prefetch=order_prefetch([back_pain()], age=age, medication_requests=active or []),
        draft_orders=drafts,
    )
    response = call(client, "lbp-order-sign", body)
    assert response.status_code == 200, response.text
    assert_response_contract(response.json(), "order-sign")
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards


def of_topic(cards: list[dict[str, Any]], topic: str) -> list[dict[str, Any]]:
    return [c for c in cards if c["source"]["topic"]["code"] == topic]


def short(card: dict[str, Any]) -> str:
    summary: str = card["summary"]
    assert len(summary) < 140, (len(summary), summary)
    return summary


def benzodiazepine() -> dict[str, Any]:
    return mf.medication_request(
        mf.LORAZEPAM_1, status="active", authored_days_ago=2, supply_days=30, every_hours=12
    )


def high_mme_active() -> dict[str, Any]:
    # oxycodone 5 mg, 4 tablets every 4 h: 4 x 5 x 6 x 1.5 = 180 MME/day.
    return mf.medication_request(
        mf.OXYCODONE_5, status="active", dose=4, every_hours=4, authored_days_ago=2, supply_days=30
    )


# --------------------------------------------------------------------------- opioid-order


def test_opioid_warning_names_the_drug_its_figure_and_supply(client: TestClient) -> None:
    draft = mf.medication_request(mf.OXYCODONE_5, supply_days=10)  # every 6 h: 30 MME/day
    [card] = of_topic(order_cards(client, [draft]), OPIOID)
    assert card["indicator"] == "warning"
    assert short(card) == (
        "Oxycodone 30 MME/day, 10-day supply: opioids are not first-line for back pain"
    )


def test_opioid_without_a_figure_still_names_the_drug(client: TestClient) -> None:
    draft = mf.medication_request(mf.MEPERIDINE_50, supply_days=5)  # no CDC 2022 factor
    [card] = of_topic(order_cards(client, [draft]), OPIOID)
    assert short(card).startswith("Meperidine MME/day unknown, 5-day supply: ")


def test_warning_and_critical_summaries_differ_and_the_critical_names_its_reason(
    client: TestClient,
) -> None:
    draft = mf.medication_request(mf.OXYCODONE_5, supply_days=5, request_id="oxy-1")
    [warning] = of_topic(order_cards(client, [draft]), OPIOID)
    [with_benzo] = of_topic(order_cards(client, [draft], active=[benzodiazepine()]), OPIOID)
    [high] = of_topic(order_cards(client, [draft], active=[high_mme_active()]), OPIOID)
    [both] = of_topic(
        order_cards(client, [draft], active=[high_mme_active(), benzodiazepine()]), OPIOID
    )
    assert warning["indicator"] == "warning"
    assert {with_benzo["indicator"], high["indicator"], both["indicator"]} == {"critical"}
    summaries = [short(c) for c in (warning, with_benzo, high, both)]
    assert len(set(summaries)) == 4, summaries
    assert "not first-line" in summaries[0] and "overdose" not in summaries[0]
    assert summaries[1] == "Oxycodone 30 MME/day with a benzodiazepine: high overdose risk"
    assert summaries[2] == "Opioids total 210 MME/day (>= 90) with Oxycodone: high overdose risk"
    assert "210 MME/day (>= 90)" in summaries[3] and "benzodiazepine" in summaries[3]
    for critical in summaries[1:]:
        assert "not first-line" not in critical and "high overdose risk" in critical


@pytest.mark.parametrize(("code", "display"), LONGEST_OPIOIDS)
def test_longest_opioid_names_stay_under_140(client: TestClient, code: str, display: str) -> None:
    draft = mf.medication_request((code, display), text=display, supply_days=10)
    for active in (
        [],
        [benzodiazepine()],
        [high_mme_active()],
        [high_mme_active(), benzodiazepine()],
    ):
        [card] = of_topic(order_cards(client, [draft], active=active), OPIOID)
        assert short(card)


def test_an_unnamed_drug_is_cut_never_its_figure(client: TestClient) -> None:
    """A coded product whose text names no ingredient: the label is cut, the figures stay."""
    label = "Hospital formulary analgesic, pharmacy-compounded, " * 6
    draft = mf.medication_request((mf.OXYCODONE_5[0], ""), text=label, supply_days=10)
    draft["medicationCodeableConcept"]["coding"][0].pop("display")
    [card] = of_topic(order_cards(client, [draft]), OPIOID)
    summary = short(card)
    assert summary.startswith("Hospital formulary") and "..." in summary
    assert "30 MME/day, 10-day supply: opioids are not first-line for back pain" in summary


def test_fit_summary_cuts_the_name_only() -> None:
    name = "x" * 200
    out = fit_summary(lambda n: f"{n} 1234.5 MME/day, 7-day supply: the message", name)
    assert len(out) < 140
    assert out.endswith("... 1234.5 MME/day, 7-day supply: the message")


# --------------------------------------------------------------------------- muscle relaxants


@pytest.mark.parametrize(("code", "display"), LONGEST_RELAXANTS)
def test_longest_relaxant_names_stay_under_140(client: TestClient, code: str, display: str) -> None:
    draft = mf.medication_request((code, display), text=display, supply_days=30, per_day=3)
    cards = order_cards(client, [draft])
    [card] = of_topic(cards, DURATION)
    assert " for 30 days: muscle relaxants are for 2-3 weeks at most" in short(card)
    active = mf.medication_request(
        (code, display), text=display, status="active", authored_days_ago=30, supply_days=60
    )
    body = hook_request(
        "patient-view", prefetch=chart_prefetch([back_pain()], medication_requests=[active])
    )
    response = call(client, "lbp-patient-view", body)
    [card] = of_topic(response.json()["cards"], DURATION)
    assert " ordered 30 days ago: muscle relaxants" in short(card)


@pytest.mark.parametrize(("code", "display"), LONGEST_BEERS)
def test_longest_beers_names_stay_under_140(client: TestClient, code: str, display: str) -> None:
    draft = mf.medication_request((code, display), text=display, supply_days=7, per_day=3)
    [card] = of_topic(order_cards(client, [draft], age=72), BEERS)
    assert short(card).endswith(" at 72: avoid in older adults (Beers)")


def test_relaxant_summaries_follow_the_patterns(client: TestClient) -> None:
    draft = mf.medication_request(mf.CYCLOBENZAPRINE_10, supply_days=30, per_day=3)
    [card] = of_topic(order_cards(client, [draft]), DURATION)
    assert card["summary"] == (
        "Cyclobenzaprine for 30 days: muscle relaxants are for 2-3 weeks at most"
    )
    carisoprodol = mf.medication_request(
        ("197446", "carisoprodol 350 MG Oral Tablet"), supply_days=7, per_day=3
    )
    [card] = of_topic(order_cards(client, [carisoprodol], age=72), BEERS)
    assert card["summary"] == "Carisoprodol at 72: avoid in older adults (Beers)"


@pytest.mark.parametrize("days", [7, 30])
def test_a_beers_order_gives_exactly_one_card_with_a_delete(client: TestClient, days: int) -> None:
    draft = mf.medication_request(
        mf.METHOCARBAMOL_500, supply_days=days, per_day=3, request_id="mcb-1"
    )
    cards = order_cards(client, [draft], age=70)
    assert len(cards) == 1
    [card] = of_topic(cards, BEERS)
    [suggestion] = card["suggestions"]
    assert suggestion["actions"] == [
        {
            "type": "delete",
            "description": "Remove the draft order: methocarbamol 500 MG Oral Tablet",
            "resourceId": "MedicationRequest/mcb-1",
        }
    ]
    assert f"**Course ordered:** {days} days" in card["detail"]
    assert ("over the 21-day limit" in card["detail"]) is (days > 21)


def test_the_duration_rule_still_fires_below_the_beers_age_and_off_the_list(
    client: TestClient,
) -> None:
    methocarbamol = mf.medication_request(mf.METHOCARBAMOL_500, supply_days=30, per_day=3)
    assert len(of_topic(order_cards(client, [methocarbamol], age=64), DURATION)) == 1
    tizanidine = mf.medication_request(mf.TIZANIDINE_4, supply_days=30, per_day=3)
    cards = order_cards(client, [tizanidine], age=80)  # not on the Beers list
    assert [c["source"]["topic"]["code"] for c in cards] == [DURATION]


def _duration_card(client: TestClient, product: tuple[str, str]) -> dict[str, Any]:
    draft = mf.medication_request(product, supply_days=30, per_day=3)
    [card] = of_topic(order_cards(client, [draft]), DURATION)
    return card


def test_each_relaxant_cites_its_own_label_or_the_guideline(client: TestClient) -> None:
    cyclobenzaprine = _duration_card(client, mf.CYCLOBENZAPRINE_10)
    assert cyclobenzaprine["source"]["label"].startswith("Cyclobenzaprine prescribing information")
    assert "query=cyclobenzaprine" in cyclobenzaprine["source"]["url"]

    for product in (mf.METHOCARBAMOL_500, mf.TIZANIDINE_4, mf.BACLOFEN_10):
        card = _duration_card(client, product)
        assert "yclobenzaprine" not in card["source"]["label"]
        assert "cyclobenzaprine" not in card["source"]["url"]
        assert "Cyclobenzaprine prescribing information" not in card["detail"]
        assert card["source"]["label"].startswith("ACP 2017")

    carisoprodol = _duration_card(client, ("197446", "carisoprodol 350 MG Oral Tablet"))
    assert carisoprodol["source"]["label"].startswith("Carisoprodol prescribing information")
    assert "Cyclobenzaprine" not in carisoprodol["detail"]


# --------------------------------------------------------------------------- imaging


@pytest.mark.parametrize(
    ("code", "text", "modality"),
    [
        ("72148", "MRI lumbar spine without contrast", "MRI"),
        ("72131", "CT lumbar spine without contrast", "CT"),
        ("72100", "XR lumbosacral spine, 2-3 views", "X-ray"),
        (None, "Lumbar spine imaging study, radiology", "imaging"),
    ],
)
def test_imaging_summary_names_modality_and_day(
    client: TestClient, code: str | None, text: str, modality: str
) -> None:
    order = service_request(
        code_system=None if code is None else "http://www.ama-assn.org/go/cpt", code=code, text=text
    )
    if code is None:
        order["code"] = {"text": "Lumbar spine x-ray or MRI"}
        modality = "MRI"  # the text names both: the first modality checked
    [card] = of_topic(order_cards(client, [order]), IMAGING)
    assert short(card) == (
        f"Lumbar {modality} on day 10 of back pain, no red flags: imaging not advised before "
        "6 weeks"
    )


def test_imaging_summary_with_unknown_onset(client: TestClient) -> None:
    body = hook_request(
        "order-sign",
        prefetch=order_prefetch([back_pain(None)]),
        draft_orders=[service_request()],
    )
    [card] = of_topic(call(client, "lbp-order-sign", body).json()["cards"], IMAGING)
    assert short(card) == (
        "Lumbar MRI, onset unknown, no red flags: imaging not advised before 6 weeks"
    )


@pytest.mark.parametrize(("onset", "age"), [(10, 40), (None, 40), (None, 88), (41, 67)])
def test_imaging_detail_is_short_and_names_all_12_groups(
    client: TestClient, onset: int | None, age: int
) -> None:
    body = hook_request(
        "order-sign",
        prefetch=order_prefetch([back_pain(onset)], age=age),
        draft_orders=[service_request()],
    )
    [card] = of_topic(call(client, "lbp-order-sign", body).json()["cards"], IMAGING)
    detail: str = card["detail"]
    assert len(detail) <= 900, (len(detail), detail)
    assert len(SHORT_LABELS) == 12
    [checked] = [line for line in detail.split("\n") if line.startswith("**Red flags:**")]
    for label in SHORT_LABELS.values():
        assert label in checked, label
    # Figures first, then the red flags, what to do instead, the guidelines.
    order = [
        detail.index(s)
        for s in ("**Episode:**", "**Red flags:**", "**Instead:**", "**Guidelines:**")
    ]
    assert order == sorted(order)
    assert ("weaker risk factor" in detail) is (age >= 50)
