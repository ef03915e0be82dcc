"""The red-flag screen Questionnaire, the app's page and its response endpoint (HTTP, no
browser): what it serves, which launches it refuses, and what it builds for the FHIR server,
read back by a hook call as the cards read it."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from cds_service.logic.red_flag_screen import ITEMS
from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import (
    TODAY,
    back_pain,
    hook_request,
    order_prefetch,
    service_request,
)
from tests.jwt_helpers import UNREAD_ISSUERS

BASE = "http://localhost:8123"
CANONICAL = f"{BASE}/fhir/Questionnaire/lbp-red-flag-screen"
APP = "/apps/red-flags"
LINK_IDS = [item.link_id for item in ITEMS]
SNOMED = "http://snomed.info/sct"


@pytest.fixture
def app_client(client_factory):
    return client_factory(public_base_url=BASE)


def all_answers(yes: set[str] | None = None) -> dict[str, bool]:
    return {link: link in (yes or set()) for link in LINK_IDS}


def test_questionnaire_is_served_at_its_canonical_url(app_client) -> None:
    response = app_client.get("/fhir/Questionnaire/lbp-red-flag-screen")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json"
    q = response.json()
    Questionnaire.model_validate(q)
    assert (q["url"], q["version"], q["status"]) == (CANONICAL, "1.0.0", "active")
    assert q["publisher"]
    for source in ("NICE NG59", "ACP 2011", "Healthify", "Mayo Clinic", "SNOMED"):
        assert source in q["copyright"], source
    assert [i["linkId"] for i in q["item"]] == LINK_IDS
    assert [i["prefix"] for i in q["item"]] == [str(n) for n in range(1, 13)]
    for item in q["item"]:
        assert item["type"] == "boolean" and item["required"] is True
        assert item["code"] and all(c["system"] == SNOMED for c in item["code"])
        assert all(c["code"].isdigit() and c["display"] for c in item["code"])
    assert q["item"][0]["code"][0]["code"] == "449813001"  # Numbness of saddle area


def test_config_names_the_smart_client_scopes_and_questionnaire(client_factory) -> None:
    client = client_factory(smart_client_id="ehr-registered-id")
    config = client.get(f"{APP}/config").json()
    assert config["clientId"] == "ehr-registered-id"
    assert config["scope"].split() == [
        "launch",
        "patient/Patient.read",
        "patient/QuestionnaireResponse.write",
        "openid",
        "fhirUser",
    ]
    assert config["questionnaire"]["url"] == (
        "http://127.0.0.1:8000/fhir/Questionnaire/lbp-red-flag-screen"
    )


def test_page_is_self_contained_and_accessible(app_client) -> None:
    page = app_client.get(APP)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert '<html lang="en">' in page.text and 'name="viewport"' in page.text
    assert 'role="alert"' in page.text and 'aria-live="polite"' in page.text
    assert "http" not in page.text.split("<body>")[0].replace("http-equiv", "")  # no CDN
    for name, kind in (
        ("red-flags.js", "javascript"),
        ("smart-launch.js", "javascript"),
        ("questionnaire-form.js", "javascript"),
        ("red-flags.css", "css"),
        ("app.css", "css"),
    ):
        asset = app_client.get(f"{APP}/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"], name
    for name in ("red-flags.html", "startback.js", "../red_flags.py", "secret.txt"):
        assert app_client.get(f"{APP}/static/{name}").status_code == 404, name


# ---- reading the answers -----------------------------------------------------------------------


def test_answers_without_a_patient_give_only_the_reading(app_client) -> None:
    negative = app_client.post(f"{APP}/response", json={"answers": all_answers()})
    assert negative.status_code == 200, negative.text
    assert negative.json() == {"negative": True, "yes": []}
    positive = app_client.post(
        f"{APP}/response", json={"answers": all_answers({"saddle-anaesthesia", "night-pain"})}
    ).json()
    assert positive["negative"] is False and "resource" not in positive
    assert positive["yes"] == [
        {
            "linkId": "saddle-anaesthesia",
            "item": "saddle anaesthesia",
            "flag": "cauda equina syndrome, urinary retention or saddle anaesthesia",
        },
        {
            "linkId": "night-pain",
            "item": "night pain or constant non-mechanical pain",
            "flag": "night pain or constant non-mechanical pain",
        },
    ]


def test_with_a_patient_it_builds_a_valid_completed_response(app_client) -> None:
    body = {
        "answers": all_answers({"bladder-bowel"}),
        "patient": "pt-1",
        "encounter": "enc-9",
        "author": "Practitioner/dr-7",
        "authored": "2026-11-20T09:15:00.000Z",
    }
    result = app_client.post(f"{APP}/response", json=body).json()
    resource: dict[str, Any] = result["resource"]
    QuestionnaireResponse.model_validate(resource)
    assert resource["questionnaire"] == f"{CANONICAL}|1.0.0"
    assert resource["status"] == "completed"
    assert resource["authored"] == "2026-11-20T09:15:00+00:00"
    assert resource["subject"] == {"reference": "Patient/pt-1"}
    assert resource["encounter"] == {"reference": "Encounter/enc-9"}
    assert resource["author"] == {"reference": "Practitioner/dr-7"}
    assert [i["linkId"] for i in resource["item"]] == LINK_IDS
    answers = {i["linkId"]: i["answer"] for i in resource["item"]}
    assert answers["bladder-bowel"] == [{"valueBoolean": True}]
    assert answers["trauma"] == [{"valueBoolean": False}]
    assert all(i["text"] for i in resource["item"])


def test_a_response_without_author_or_time_is_authored_now_in_utc(app_client) -> None:
    body = {"answers": all_answers(), "patient": "pt-1"}
    resource = app_client.post(f"{APP}/response", json=body).json()["resource"]
    assert "author" not in resource and "encounter" not in resource
    assert resource["authored"].endswith("+00:00")


@pytest.mark.parametrize("yes", [set(), {"saddle-anaesthesia"}], ids=["all-no", "saddle-yes"])
def test_what_the_app_writes_is_what_the_imaging_card_reads(client_factory, yes) -> None:
    client = client_factory()
    authored = f"{TODAY.isoformat()}T08:00:00Z"
    body = {"answers": all_answers(yes), "patient": "pt-1", "authored": authored}
    resource = client.post(f"{APP}/response", json=body).json()["resource"]
    resource["id"] = "rfs-app"
    prefetch = order_prefetch([back_pain(10)], questionnaire_responses=[resource])
    request = hook_request("order-sign", prefetch=prefetch, draft_orders=[service_request()])
    answer = call(client, "lbp-order-sign", request).json()
    topics = assert_response_contract(answer, "order-sign")
    if yes:
        assert "imaging-without-red-flags" not in topics
    else:
        (card,) = answer["cards"]
        assert f"Red-flag screen on {TODAY.day} {TODAY:%b}: negative." in card["detail"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"answers": dict.fromkeys(LINK_IDS[:-2], False)}, "abdominal-mass"),
        ({"answers": {**all_answers(), "extra-item": True}}, "answers"),
        ({"answers": {**all_answers(), "trauma": "yes"}}, "answers"),
        ({"answers": {**all_answers(), "trauma": None}}, "answers"),
        ({"answers": all_answers(), "patient": "pt 1/../x"}, "patient"),
        ({"answers": all_answers(), "patient": "pt-1", "author": "Device/d-1"}, "author"),
        (
            {"answers": all_answers(), "patient": "pt-1", "author": "https://x/Practitioner/1"},
            "author",
        ),
        ({"answers": all_answers(), "authored": "yesterday"}, "authored"),
        ({"answers": all_answers(), "unexpected": 1}, "unexpected"),
        ({}, "answers"),
    ],
)
def test_bad_input_is_a_400_that_names_the_field(app_client, body, where: str) -> None:
    response = app_client.post(f"{APP}/response", json=body)
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(where in e for e in outcome["issue"][0]["expression"]), outcome


def test_missing_items_are_named_by_number(app_client) -> None:
    answers = all_answers()
    del answers["saddle-anaesthesia"], answers["night-pain"]
    response = app_client.post(f"{APP}/response", json={"answers": answers})
    assert response.status_code == 400
    assert "missing: 1, 10" in response.json()["issue"][0]["diagnostics"]


def test_a_body_that_is_not_json_is_a_400(app_client) -> None:
    response = app_client.post(f"{APP}/response", content=b"{not json")
    assert response.status_code == 400


# ---- launch checks (shared with the STarT Back app: apps/smart_launch.py) ---------------------

EHR_FHIR = "https://ehr.example.org/fhir"


@pytest.fixture
def prod_app(client_factory):
    return client_factory(
        require_auth=True,
        trusted_issuers=UNREAD_ISSUERS,
        fhir_allowlist=[EHR_FHIR, "http://127.0.0.1"],
    )


def assert_refused_page(response, words: str) -> None:
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert 'role="alert"' in response.text and words in response.text
    assert "The screen could not start." in response.text
    assert ".js" not in response.text  # no script runs on a refused launch


@pytest.mark.parametrize(
    ("iss", "words"),
    [
        ("http://127.0.0.3:8443/fhir", "allow-list"),
        ("https://ehr.example.org.evil.test/fhir", "allow-list"),
        ("https://ehr.example.org/fhir?x=1", "not a plain http(s) base URL"),
    ],
)
def test_a_launch_from_an_iss_the_service_does_not_trust_is_refused(
    prod_app, fhir_mock, iss: str, words: str
) -> None:
    assert_refused_page(prod_app.get(APP, params={"launch": "x", "iss": iss}), words)
    config = prod_app.get(f"{APP}/config", params={"launch": "x", "iss": iss})
    assert config.status_code == 400
    assert config.json()["issue"][0]["expression"] == ["iss"]
    assert "clientId" not in config.text
    assert not fhir_mock.calls


def test_development_mode_is_refused_when_auth_is_required(prod_app) -> None:
    query = {"iss": "http://127.0.0.1:8091/fhir", "patient": "p-1"}
    assert_refused_page(prod_app.get(APP, params=query), "Development mode")
    assert prod_app.get(f"{APP}/config", params=query).json()["issue"][0]["expression"] == [
        "patient"
    ]


def test_a_launch_from_an_allow_listed_iss_is_served(prod_app) -> None:
    page = prod_app.get(APP, params={"launch": "x", "iss": EHR_FHIR})
    assert page.status_code == 200 and "red-flags.js" in page.text
    config = prod_app.get(f"{APP}/config", params={"launch": "x", "iss": EHR_FHIR}).json()
    assert config["iss"] == EHR_FHIR and config["developmentMode"] is False
