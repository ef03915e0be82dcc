"""Reading the red-flag screen (RULES.md v2 "Red-flag screen and stratified care"): which
QuestionnaireResponses count, what a "yes" does on the order hooks (imaging suppressed, the flag
listed on the other cards), the negative line, and the link to record one. The clock is fixed
(tests/factories.TODAY at noon UTC, injected by the client fixture)."""

from __future__ import annotations

import json
from datetime import timedelta
from importlib import resources
from typing import Any

import httpx
import pytest
import respx

from cds_service.logic.config import RuleConfig
from cds_service.logic.fhir import CodeableConcept, QuestionnaireResponse
from cds_service.logic.red_flag_screen import ITEMS, QUESTIONNAIRE_ID, latest_screen, read_screen
from cds_service.logic.red_flags import CONDITION_VALUE_SETS, RedFlag, red_flag_checks
from cds_service.logic.terminology import value_set
from cds_service.routes import RED_FLAG_QUESTIONNAIRE_PATH, RED_FLAGS_APP_PATH
from tests import medication_factories as mf
from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import (
    FHIR_BASE,
    PATIENT_ID,
    TODAY,
    back_pain,
    bundle,
    chart_prefetch,
    hook_request,
    order_prefetch,
    patient,
    service_request,
)
from tests.startback_builders import answers_for
from tests.startback_builders import questionnaire_response as startback_response

IMAGING = "imaging-without-red-flags"
OPIOID = "opioid-order"
CANONICAL = f"http://127.0.0.1:8000{RED_FLAG_QUESTIONNAIRE_PATH}"
APP_URL = f"http://127.0.0.1:8000{RED_FLAGS_APP_PATH}"
LOINC = "http://loinc.org"
LINK_IDS = [item.link_id for item in ITEMS]


def questionnaire_json() -> dict[str, Any]:
    text = resources.files("cds_service.apps").joinpath("questionnaire-red-flags.json")
    data: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return data


def screen(
    yes: set[str] | frozenset[str] = frozenset(),
    *,
    days_ago: int = 2,
    status: str = "completed",
    questionnaire: str = CANONICAL + "|1.0.0",
    answers: dict[str, dict[str, Any] | None] | None = None,
    at: str = "T09:30:00Z",
    response_id: str = "rfs-1",
) -> dict[str, Any]:
    """A red-flag screen: every item answered (valueBoolean, "yes" for `yes`), unless `answers`
    gives each item's answer (None: the item without an answer)."""
    if answers is None:
        answers = {link: {"valueBoolean": link in yes} for link in LINK_IDS}
    items = []
    for link, value in answers.items():
        item: dict[str, Any] = {"linkId": link}
        if value is not None:
            item["answer"] = [value]
        items.append(item)
    return {
        "resourceType": "QuestionnaireResponse",
        "id": response_id,
        "questionnaire": questionnaire,
        "status": status,
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authored": (TODAY - timedelta(days=days_ago)).isoformat() + at,
        "item": items,
    }


def opioid_draft() -> dict[str, Any]:
    return mf.medication_request(mf.OXYCODONE_5, supply_days=3, quantity=12)


def sign(
    client: Any,
    responses: list[dict[str, Any]] | None,
    *,
    onset: int | None = 10,
    age: int = 40,
    with_opioid: bool = False,
) -> list[dict[str, Any]]:
    """order-sign of a lumbar MRI (and an opioid) for a back-pain chart with these screens
    (None: the prefetch leaves the key out, as an EHR set up before the screen existed)."""
    prefetch = order_prefetch([back_pain(onset)], age=age, questionnaire_responses=responses)
    if responses is None:
        del prefetch["questionnaireResponses"]
    orders = [service_request(order_id="mri-1")] + ([opioid_draft()] if with_opioid else [])
    body = hook_request("order-sign", prefetch=prefetch, draft_orders=orders)
    response = call(client, "lbp-order-sign", body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert_response_contract(result, "order-sign")
    cards: list[dict[str, Any]] = result["cards"]
    return cards


def of_topic(cards: list[dict[str, Any]], topic: str) -> list[dict[str, Any]]:
    return [c for c in cards if c["source"]["topic"]["code"] == topic]


def imaging_card(cards: list[dict[str, Any]]) -> dict[str, Any]:
    (card,) = of_topic(cards, IMAGING)
    return card


def record_links(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [lk for lk in card.get("links", []) if lk["label"] == "Record a red-flag screen"]


def short(days_ago: int) -> str:
    on = TODAY - timedelta(days=days_ago)
    return f"{on.day} {on:%b}"


# ---- the Questionnaire and the reading agree ---------------------------------------------------


def test_items_are_the_questionnaires_in_order_and_each_maps_to_its_coded_group() -> None:
    items = questionnaire_json()["item"]
    assert [i["linkId"] for i in items] == LINK_IDS
    assert len(ITEMS) == 12
    # A "yes" is named as the cards name the coded group, where the item evidences one: the
    # item's SNOMED CT code is a member of that group's value set. Trauma is the exception: its
    # value set holds no general injury concept (a cut finger is not "significant trauma").
    coded_groups = {check.flag for check in red_flag_checks(RuleConfig())}
    for item, entry in zip(ITEMS, items, strict=True):
        if item.flag not in coded_groups or item.flag is RedFlag.TRAUMA:
            continue
        vs = value_set(CONDITION_VALUE_SETS[item.flag])
        assert vs.matches(json_concept(entry["code"])), (item.link_id, item.flag)
    new_flags = {i.flag for i in ITEMS} - coded_groups
    assert new_flags == {RedFlag.NIGHT_PAIN, RedFlag.ABDOMINAL_MASS, RedFlag.BONY_TENDERNESS}


def json_concept(codings: list[dict[str, Any]]) -> CodeableConcept:
    return CodeableConcept.model_validate({"coding": codings})


def test_the_questionnaire_path_names_the_id_the_reading_looks_for() -> None:
    assert RED_FLAG_QUESTIONNAIRE_PATH == f"/fhir/Questionnaire/{QUESTIONNAIRE_ID}"


# ---- every item ----------------------------------------------------------------------------------


@pytest.mark.parametrize("item", ITEMS, ids=[i.link_id for i in ITEMS])
def test_each_yes_suppresses_imaging_and_is_named_on_the_other_cards(client, item) -> None:
    cards = sign(client, [screen({item.link_id})], with_opioid=True)
    assert of_topic(cards, IMAGING) == []
    (opioid,) = of_topic(cards, OPIOID)
    assert "**Red flags in the record:**" in opioid["detail"]
    assert (
        f"{item.name} (red-flag screen {(TODAY - timedelta(days=2)).isoformat()})"
        in (opioid["detail"])
    )


def test_a_coded_group_is_listed_under_the_name_the_cards_already_use(client) -> None:
    cards = sign(client, [screen({"saddle-anaesthesia"})], with_opioid=True)
    (opioid,) = of_topic(cards, OPIOID)
    assert (
        "cauda equina syndrome, urinary retention or saddle anaesthesia: saddle anaesthesia "
        "(red-flag screen" in opioid["detail"]
    )


def test_a_new_flag_has_its_own_name(client) -> None:
    cards = sign(client, [screen({"abdominal-mass"})], with_opioid=True)
    (opioid,) = of_topic(cards, OPIOID)
    assert (
        "pulsating abdominal mass (aortic aneurysm?): pulsating abdominal mass"
        in (opioid["detail"])
    )


# ---- which screen counts ---------------------------------------------------------------------


@pytest.mark.parametrize(("days_ago", "counts"), [(0, True), (14, True), (15, False), (-1, True)])
def test_the_14_day_window(client, days_ago: int, counts: bool) -> None:
    cards = sign(client, [screen({"night-pain"}, days_ago=days_ago)], onset=None)
    assert (of_topic(cards, IMAGING) == []) is counts


def test_a_screen_from_before_the_episode_onset_does_not_count(client) -> None:
    cards = sign(client, [screen({"night-pain"}, days_ago=6)], onset=5)
    card = imaging_card(cards)
    assert record_links(card)
    assert "No red-flag screen in 14 days." in card["detail"]
    # On the onset day it counts.
    assert of_topic(sign(client, [screen({"night-pain"}, days_ago=5)], onset=5), IMAGING) == []


@pytest.mark.parametrize(
    ("status", "counts"),
    [
        ("completed", True),
        ("amended", True),
        ("in-progress", False),
        ("stopped", False),
        ("entered-in-error", False),
    ],
)
def test_only_finished_screens_count(client, status: str, counts: bool) -> None:
    cards = sign(client, [screen({"trauma"}, status=status)])
    assert (of_topic(cards, IMAGING) == []) is counts
    if not counts:
        assert record_links(imaging_card(cards))


def test_the_newest_counting_screen_wins(client) -> None:
    older_yes = screen({"fever-unwell"}, days_ago=5, response_id="old")
    newer_no = screen(days_ago=1, response_id="new")
    card = imaging_card(sign(client, [older_yes, newer_no]))
    assert f"Red-flag screen on {short(1)}: negative." in card["detail"]
    # The other way round, the newer "yes" stands.
    older_no = screen(days_ago=5, response_id="old")
    newer_yes = screen({"fever-unwell"}, days_ago=1, response_id="new")
    assert of_topic(sign(client, [older_no, newer_yes]), IMAGING) == []


def test_same_day_screens_are_ordered_by_time() -> None:
    morning_yes = screen({"weight-loss"}, at="T08:00:00Z", response_id="a")
    noon_no = screen(at="T12:00:00+00:00", response_id="b")
    responses = [QuestionnaireResponse.model_validate(r) for r in (noon_no, morning_yes)]
    latest = latest_screen(responses, TODAY, 14)
    assert latest is not None and latest.source == "QuestionnaireResponse/b"


# ---- the imaging card ------------------------------------------------------------------------


def test_a_negative_screen_is_named_with_its_date_and_no_link(client) -> None:
    card = imaging_card(sign(client, [screen(days_ago=3)]))
    assert "**Red flags:** none found." in card["detail"]
    assert f"Red-flag screen on {short(3)}: negative." in card["detail"]
    assert record_links(card) == []


def test_without_a_counting_screen_the_card_links_to_the_app(client) -> None:
    for responses in ([], [screen({"trauma"}, days_ago=15)]):
        card = imaging_card(sign(client, responses))
        (link,) = record_links(card)
        assert link == {"label": "Record a red-flag screen", "url": APP_URL, "type": "smart"}
        assert "No red-flag screen in 14 days." in card["detail"]
        assert "negative" not in card["detail"]


def test_an_order_prefetch_without_questionnaire_responses_still_answers(client) -> None:
    """An EHR set up before the screen (no such prefetch key, no FHIR access): every order check
    still runs, and the imaging card offers to record a screen."""
    cards = sign(client, None, with_opioid=True)
    assert record_links(imaging_card(cards))
    assert of_topic(cards, OPIOID)


@pytest.mark.parametrize(("onset", "age"), [(41, 67), (None, 88), (10, 40)])
def test_the_detail_stays_short_with_the_screen_line(client, onset: int | None, age: int) -> None:
    for responses in ([], [screen(days_ago=0)]):
        card = imaging_card(sign(client, responses, onset=onset, age=age))
        assert len(card["detail"]) <= 900, (len(card["detail"]), card["detail"])


def test_a_screen_with_no_answers_says_nothing(client) -> None:
    """Completed but empty: neither a "yes" nor a negative screen; an older one is used."""
    empty = screen(answers=dict.fromkeys(LINK_IDS), days_ago=1, response_id="empty")
    card = imaging_card(sign(client, [empty]))
    assert record_links(card) and "negative" not in card["detail"]
    older_yes = screen({"iv-drug-use"}, days_ago=4, response_id="older")
    assert of_topic(sign(client, [empty, older_yes]), IMAGING) == []


def test_unanswered_items_are_not_a_yes_and_the_card_counts_them(client) -> None:
    answers: dict[str, dict[str, Any] | None] = {link: {"valueBoolean": False} for link in LINK_IDS}
    answers["night-pain"] = None
    answers["abdominal-mass"] = {"valueString": "maybe"}
    card = imaging_card(sign(client, [screen(answers=answers, days_ago=2)]))
    assert f"Red-flag screen on {short(2)}: negative (2 unanswered)." in card["detail"]


# ---- how the response is written -----------------------------------------------------------------


@pytest.mark.parametrize(
    "questionnaire",
    [
        CANONICAL,
        CANONICAL + "|1.0.0",
        "https://cds.example.org/lbp" + RED_FLAG_QUESTIONNAIRE_PATH + "|1.0.0",
        "Questionnaire/lbp-red-flag-screen",
        CANONICAL + "/",
    ],
)
def test_the_canonical_is_read_by_its_id_whatever_base_or_version(client, questionnaire) -> None:
    cards = sign(client, [screen({"leg-weakness"}, questionnaire=questionnaire)])
    assert of_topic(cards, IMAGING) == []


@pytest.mark.parametrize(
    "questionnaire",
    [
        "http://127.0.0.1:8000/fhir/Questionnaire/startback",
        "http://127.0.0.1:8000/fhir/Questionnaire/lbp-red-flag-screen-v2",
        "http://127.0.0.1:8000/fhir/ValueSet/lbp-red-flag-screen",
        "",
    ],
)
def test_another_questionnaire_is_not_a_screen(client, questionnaire: str) -> None:
    cards = sign(client, [screen({"leg-weakness"}, questionnaire=questionnaire)])
    assert record_links(imaging_card(cards))


@pytest.mark.parametrize(
    ("answer", "is_yes"),
    [
        ({"valueCoding": {"system": LOINC, "code": "LA33-6", "display": "Yes"}}, True),
        ({"valueCoding": {"system": LOINC, "code": "LA33-6"}}, True),
        ({"valueCoding": {"system": LOINC, "code": "LA32-8", "display": "No"}}, False),
        ({"valueCoding": {"system": "urn:ehr:yn", "code": "Y1", "display": "YES"}}, True),
        ({"valueCoding": {"code": "yes"}}, True),
        ({"valueCoding": {"system": "urn:ehr:yn", "code": "N", "display": "no"}}, False),
        ({"valueString": " Yes "}, True),
        ({"valueBoolean": True}, True),
    ],
)
def test_answers_as_ehrs_write_them(client, answer: dict[str, Any], is_yes: bool) -> None:
    answers: dict[str, dict[str, Any] | None] = {link: {"valueBoolean": False} for link in LINK_IDS}
    answers["bony-tenderness"] = answer
    cards = sign(client, [screen(answers=answers)])
    if is_yes:
        assert of_topic(cards, IMAGING) == []
    else:
        assert f"Red-flag screen on {short(2)}: negative." in imaging_card(cards)["detail"]


def test_items_nested_in_groups_and_repeated_answers() -> None:
    response = screen(answers={"cancer-history": {"valueBoolean": False}})
    response["item"] = [
        {
            "linkId": "history",
            "item": [
                {
                    "linkId": "cancer-history",
                    "answer": [{"valueBoolean": True}, {"valueBoolean": False}],
                }
            ],
        }
    ]
    read = read_screen(QuestionnaireResponse.model_validate(response))
    assert read is not None
    assert [i.link_id for i in read.yes] == ["cancer-history"]
    assert len(read.unanswered) == 11


def test_an_undated_screen_does_not_count() -> None:
    response = screen({"trauma"})
    del response["authored"]
    assert read_screen(QuestionnaireResponse.model_validate(response)) is None


def test_screens_of_another_patient_are_ignored(client) -> None:
    other = screen({"trauma"})
    other["subject"] = {"reference": "Patient/someone-else"}
    assert record_links(imaging_card(sign(client, [other])))


# ---- where the responses come from -------------------------------------------------------------


def test_order_hooks_prefetch_questionnaire_responses_without_a_questionnaire_filter(
    client,
) -> None:
    services = {s["id"]: s for s in client.get("/cds-services").json()["services"]}
    for service_id in ("lbp-order-select", "lbp-order-sign", "lbp-patient-view"):
        template = services[service_id]["prefetch"]["questionnaireResponses"]
        assert template == "QuestionnaireResponse?patient={{context.patientId}}"


def fhir_routes(fhir_mock: respx.MockRouter, responses: list[dict[str, Any]]) -> respx.Route:
    fhir_mock.get(url__regex=r".*/Patient/pt-1$").mock(
        return_value=httpx.Response(200, json=patient())
    )
    fhir_mock.get(url__regex=r".*/Condition\?").mock(
        return_value=httpx.Response(200, json=bundle([back_pain(10)]))
    )
    qr = fhir_mock.get(url__regex=r".*/QuestionnaireResponse\?").mock(
        return_value=httpx.Response(200, json=bundle(responses))
    )
    fhir_mock.get(url__regex=r".*/(Observation|MedicationRequest|Procedure|Encounter)\?").mock(
        return_value=httpx.Response(200, json=bundle([]))
    )
    return qr


def test_the_fhir_fallback_reads_the_screen_on_order_sign(client, fhir_mock) -> None:
    qr = fhir_routes(fhir_mock, [screen({"saddle-anaesthesia"})])
    body = hook_request(
        "order-sign", draft_orders=[service_request()], fhir_server=FHIR_BASE, token="t"
    )
    response = call(client, "lbp-order-sign", body)
    assert response.status_code == 200, response.text
    assert of_topic(response.json()["cards"], IMAGING) == []
    assert qr.called
    assert "questionnaire=" not in str(qr.calls.last.request.url)


def test_a_server_refusing_questionnaire_responses_leaves_the_order_checks_running(
    client, fhir_mock
) -> None:
    qr = fhir_routes(fhir_mock, [])
    qr.mock(return_value=httpx.Response(403, json={"resourceType": "OperationOutcome"}))
    body = hook_request(
        "order-sign", draft_orders=[service_request()], fhir_server=FHIR_BASE, token="t"
    )
    response = call(client, "lbp-order-sign", body)
    assert response.status_code == 200, response.text
    assert record_links(imaging_card(response.json()["cards"]))


def test_one_query_brings_both_questionnaires_on_patient_view(client, fhir_mock) -> None:
    """The chart hooks' single QuestionnaireResponse query gives the STarT Back result and the
    red-flag screen, whose "yes" the result card lists."""
    # Items 1-5 agree, item 9 "Very much": total 6, subscale 2, medium risk.
    startback = startback_response(answers_for({1, 2, 3, 4, 5}, "Very much"), authored_days_ago=3)
    qr = fhir_routes(fhir_mock, [startback, screen({"bladder-bowel"})])
    body = hook_request("patient-view", fhir_server=FHIR_BASE, token="t")
    response = call(client, "lbp-patient-view", body)
    assert response.status_code == 200, response.text
    assert assert_response_contract(response.json(), "patient-view") == ["startback-result"]
    (card,) = response.json()["cards"]
    assert card["summary"].startswith("STarT Back medium risk")
    assert "new bladder or bowel dysfunction (red-flag screen" in card["detail"]
    assert qr.call_count == 1


def test_chart_prefetch_screens_reach_the_chart_hook_cards(client) -> None:
    startback = startback_response(answers_for(set()), authored_days_ago=3)
    body = hook_request(
        "patient-view",
        prefetch=chart_prefetch([back_pain(10)], questionnaire_responses=[startback, screen()]),
    )
    plain = call(client, "lbp-patient-view", body).json()["cards"][0]["detail"]
    assert "Red flags in the record" not in plain
    body = hook_request(
        "patient-view",
        prefetch=chart_prefetch(
            [back_pain(10)], questionnaire_responses=[startback, screen({"trauma"})]
        ),
    )
    flagged = call(client, "lbp-patient-view", body).json()["cards"][0]["detail"]
    assert "significant trauma or vertebral fracture: significant trauma (red-flag screen" in (
        flagged
    )
