"""imaging-without-red-flags through the order hooks (RULES.md; CONTRACT.md card table)."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.logic.terminology import value_set
from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import (
    CPT,
    ICD10CM,
    LOINC,
    SNOMED,
    back_pain,
    concept,
    condition,
    days_ago,
    hook_request,
    order_prefetch,
    service_request,
)

TOPIC = "imaging-without-red-flags"
# RULES.md v2 "Summaries": the modality, the episode day, the limit.
SUMMARY = "Lumbar MRI on day 10 of back pain, no red flags: imaging not advised before 6 weeks"
ORDER_HOOKS = [("lbp-order-sign", "order-sign"), ("lbp-order-select", "order-select")]


def post(client, hook: str, service_id: str, **kwargs: Any) -> list[dict[str, Any]]:
    response = call(client, service_id, hook_request(hook, **kwargs))
    assert response.status_code == 200, response.text
    body = response.json()
    assert_response_contract(body, hook)
    return body["cards"]


def sign(client, conditions, orders, **prefetch: Any) -> list[dict[str, Any]]:
    return post(
        client,
        "order-sign",
        "lbp-order-sign",
        prefetch=order_prefetch(conditions, **prefetch),
        draft_orders=orders,
    )


def imaging_cards(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in cards if c["source"]["topic"]["code"] == TOPIC]


@pytest.mark.parametrize(("service_id", "hook"), ORDER_HOOKS)
def test_lumbar_mri_early_in_an_episode_gets_the_warning(client, service_id, hook) -> None:
    order = service_request(order_id="mri-1")
    cards = post(
        client,
        hook,
        service_id,
        prefetch=order_prefetch([back_pain(10)]),
        draft_orders=[order],
    )
    [card] = imaging_cards(cards)
    assert card["indicator"] == "warning"
    assert card["summary"] == SUMMARY
    detail = card["detail"]
    assert "10 days since back-pain onset" in detail
    assert "none found" in detail
    for checked in ("cancer", "spinal infection", "fever", "IV drug use", "cauda equina"):
        assert checked in detail
    assert "no bed rest" in detail and "STarT Back" in detail and "within 2 weeks" in detail
    for cited in ("ACP 2017", "ACP 2011", "ACR", "Choosing Wisely", "NICE NG59"):
        assert cited in detail
    assert "**Age:**" not in detail  # a 40-year-old
    [suggestion] = card["suggestions"]
    assert suggestion["actions"] == [
        {
            "type": "delete",
            "description": "Remove the draft order: MRI lumbar spine without contrast",
            "resourceId": "ServiceRequest/mri-1",
        }
    ]
    reasons = {r["display"] for r in card["overrideReasons"]}
    assert {
        "Red flag present but not coded",
        "Failed 6 weeks of conservative care",
        "Surgery or intervention candidate",
    } <= reasons


@pytest.mark.parametrize(("days", "fires"), [(0, True), (41, True), (42, False), (43, False)])
def test_six_week_boundary(client, days: int, fires: bool) -> None:
    cards = imaging_cards(sign(client, [back_pain(days)], [service_request()]))
    assert bool(cards) is fires
    if fires:
        assert f"{days} days since back-pain onset" in cards[0]["detail"]


def test_earliest_active_back_pain_condition_sets_the_episode(client) -> None:
    # A 10-day flare on top of an active 60-day episode is day 60: no card.
    assert not imaging_cards(sign(client, [back_pain(10), back_pain(60)], [service_request()]))
    resolved_old = back_pain(60, clinical_status="resolved")
    assert imaging_cards(sign(client, [back_pain(10), resolved_old], [service_request()]))


def test_unknown_onset_is_a_new_episode_and_the_card_says_so(client) -> None:
    [card] = imaging_cards(sign(client, [back_pain(None)], [service_request()]))
    assert "onset unknown: a new episode" in card["detail"]


def test_back_pain_given_only_as_the_orders_reason_is_context_with_unknown_onset(client) -> None:
    order = service_request(reason=concept(ICD10CM, "M54.50"))
    [card] = imaging_cards(sign(client, [], [order]))
    assert "onset unknown" in card["detail"]


@pytest.mark.parametrize(("age", "named"), [(49, False), (50, True), (58, True)])
def test_age_50_or_more_is_named_as_a_weaker_risk_factor_and_stays_a_warning(
    client, age: int, named: bool
) -> None:
    [card] = imaging_cards(sign(client, [back_pain(10)], [service_request()], age=age))
    assert card["indicator"] == "warning"
    assert (f"**Age:** {age} years" in card["detail"]) is named
    assert ("weaker risk factor" in card["detail"]) is named


def test_knee_mri_gets_no_card(client) -> None:
    knee = service_request(CPT, "73721", text="MRI knee without contrast")
    assert sign(client, [back_pain(10)], [knee]) == []


def test_imaging_for_a_patient_without_back_pain_gets_no_card(client) -> None:
    knee_pain = condition(SNOMED, "30989003", onset_days_ago=10, text="Knee pain")
    assert sign(client, [knee_pain], [service_request()]) == []
    assert sign(client, [back_pain(10, clinical_status="resolved")], [service_request()]) == []
    assert sign(client, [back_pain(10, verification_status="refuted")], [service_request()]) == []


def test_red_flag_given_only_as_the_orders_reason_code_suppresses_the_card(client) -> None:
    cauda_equina = service_request(reason=concept(SNOMED, "192970008", display="CES"))
    assert sign(client, [back_pain(10)], [cauda_equina]) == []


@pytest.mark.parametrize(
    ("code", "onset_days_ago", "status", "suppressed"),
    [
        # one in/out pair per windowed group, resolved Conditions (ICD-10-CM)
        ("M46.26", 365, "resolved", True),
        ("M46.26", 366, "resolved", False),
        ("R50.9", 14, "resolved", True),
        ("R50.9", 15, "resolved", False),
        ("F11.20", 365, "resolved", True),
        ("F11.20", 366, "resolved", False),
        ("Z79.52", 365, "resolved", True),
        ("Z79.52", 366, "resolved", False),
        ("S32.010A", 90, "resolved", True),
        ("S32.010A", 91, "resolved", False),
        ("S32.010A", 91, "active", True),
        ("G83.4", 365, "resolved", True),
        ("G83.4", 366, "resolved", False),
        ("M21.372", 365, "resolved", True),
        ("M21.372", 366, "resolved", False),
        ("R63.4", 365, "resolved", True),
        ("R63.4", 366, "resolved", False),
        # "any time" groups: a resolved Condition from 10 years ago still counts
        ("C50.911", 3650, "resolved", True),
        ("Z85.3", 3650, "resolved", True),
        ("Z94.0", 3650, "resolved", True),
        ("M81.0", 3650, "resolved", True),
    ],
)
def test_red_flag_conditions_in_and_out_of_their_windows(
    client, code: str, onset_days_ago: int, status: str, suppressed: bool
) -> None:
    flag = condition(ICD10CM, code, onset_days_ago=onset_days_ago, clinical_status=status)
    cards = imaging_cards(sign(client, [back_pain(10), flag], [service_request()]))
    assert (not cards) is suppressed


def test_red_flags_from_observations_medications_and_procedures(client) -> None:
    fever: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "t-1",
        "status": "final",
        "code": concept(LOINC, "8310-5"),
        "effectiveDateTime": days_ago(2),
        "valueQuantity": {"value": 100.4, "unit": "°F", "code": "[degF]"},
    }
    assert sign(client, [back_pain(10)], [service_request()], observations=[fever]) == []
    fever["valueQuantity"]["value"] = 100.3
    assert imaging_cards(sign(client, [back_pain(10)], [service_request()], observations=[fever]))

    fusion = {
        "resourceType": "Procedure",
        "id": "p-1",
        "status": "completed",
        "code": concept(CPT, "22612", "Posterior lumbar arthrodesis"),
        "performedDateTime": days_ago(2000),
    }
    assert sign(client, [back_pain(10)], [service_request()], procedures=[fusion]) == []

    steroid: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": "m-1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": concept(
            "http://www.nlm.nih.gov/research/umls/rxnorm", "312617", "prednisone 5 MG Oral Tablet"
        ),
        "authoredOn": days_ago(100),
        "dispenseRequest": {"expectedSupplyDuration": {"value": 90, "unit": "d", "code": "d"}},
    }
    assert sign(client, [back_pain(10)], [service_request()], medication_requests=[steroid]) == []
    steroid["dispenseRequest"]["expectedSupplyDuration"]["value"] = 89
    assert imaging_cards(
        sign(client, [back_pain(10)], [service_request()], medication_requests=[steroid])
    )


def test_order_select_checks_only_the_selected_orders(client) -> None:
    mri = service_request(order_id="mri-sel")
    xray = service_request(CPT, "72100", text="XR lumbosacral spine 2-3 views", order_id="xr-ctx")
    prefetch = order_prefetch([back_pain(10)])
    selected = post(
        client,
        "order-select",
        "lbp-order-select",
        prefetch=prefetch,
        draft_orders=[mri, xray],
        selections=["ServiceRequest/xr-ctx"],
    )
    [card] = imaging_cards(selected)
    assert card["suggestions"][0]["actions"][0]["resourceId"] == "ServiceRequest/xr-ctx"
    nothing = post(
        client,
        "order-select",
        "lbp-order-select",
        prefetch=prefetch,
        draft_orders=[mri, xray],
        selections=[],
    )
    assert nothing == []


def test_order_sign_gets_one_card_per_imaging_order(client) -> None:
    orders = [
        service_request(order_id="a"),
        service_request(LOINC, "24968-0", text="MR Lumbar spine", order_id="b"),
        service_request(CPT, "73721", text="MRI knee", order_id="c"),
    ]
    cards = imaging_cards(sign(client, [back_pain(10)], orders))
    targets = [c["suggestions"][0]["actions"][0]["resourceId"] for c in cards]
    assert targets == ["ServiceRequest/a", "ServiceRequest/b"]


@pytest.mark.parametrize(
    ("system", "code", "text", "lumbar"),
    [
        (CPT, "72148", None, True),
        (CPT, "72100", None, True),
        (CPT, "72131", None, True),
        (CPT, "72220", None, True),
        (LOINC, "24972-2", None, True),
        (LOINC, "30620-9", None, True),
        (LOINC, "24968-0", None, True),
        (None, None, "MRI L-spine w/o contrast", True),
        (None, None, "X-ray lumbosacral spine", True),
        (SNOMED, "241093004", "Plain X-ray of lumbar spine", True),
        (CPT, "72141", "MRI cervical spine", False),
        (CPT, "73721", "MRI knee", False),
        (None, None, "CT-guided lumbar puncture", False),
        (None, None, "Lumbar epidural steroid injection under fluoroscopy", False),
        (None, None, "XR thoracic spine", False),
    ],
)
def test_lumbar_imaging_orders(system, code, text, lumbar: bool) -> None:
    from cds_service.logic.fhir import CodeableConcept

    assert (
        value_set("lumbar-spine-imaging").matches(
            CodeableConcept.model_validate(concept(system, code, text))
        )
        is lumbar
    )


def test_order_without_an_id_gets_the_card_without_a_delete_suggestion(client) -> None:
    order = service_request()
    del order["id"]
    [card] = imaging_cards(sign(client, [back_pain(10)], [order]))
    assert "suggestions" not in card


def test_threshold_comes_from_settings(client_factory) -> None:
    client = client_factory(rules={"imaging_window_days": 28})
    [card] = imaging_cards(sign(client, [back_pain(27)], [service_request()]))
    assert card["summary"] == (
        "Lumbar MRI on day 27 of back pain, no red flags: imaging not advised before 4 weeks"
    )
    assert not imaging_cards(sign(client, [back_pain(28)], [service_request()]))
