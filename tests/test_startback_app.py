"""The STarT Back Questionnaire, the app's page and its scoring endpoint (HTTP, no browser)."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.questionnaire import Questionnaire

from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import back_pain, chart_prefetch, hook_request
from tests.jwt_helpers import UNREAD_ISSUERS
from tests.startback_builders import ITEM_CODES, RISK_ANSWERS

BASE = "http://localhost:8123"
CANONICAL = f"{BASE}/fhir/Questionnaire/startback"


@pytest.fixture
def app_client(client_factory):
    return client_factory(public_base_url=BASE)


def answer_codes(agree: set[int], item9: str = "not-at-all") -> dict[str, str]:
    out = {code: ("agree" if n in agree else "disagree") for n, code in enumerate(ITEM_CODES, 1)}
    out[ITEM_CODES[8]] = item9
    return out


def test_questionnaire_is_served_at_its_canonical_url(app_client) -> None:
    response = app_client.get("/fhir/Questionnaire/startback")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json"
    q = response.json()
    Questionnaire.model_validate(q)
    assert q["url"] == CANONICAL
    assert q["status"] == "active"
    assert q["code"][0] == {
        "system": "http://loinc.org",
        "code": "91349-1",
        "display": "STarT Back Screening Tool panel",
    }
    assert [i["linkId"] for i in q["item"]] == ITEM_CODES
    assert [i["prefix"] for i in q["item"]] == [str(n) for n in range(1, 10)]
    for item in q["item"]:
        assert item["code"][0]["system"] == "http://loinc.org"
        assert item["code"][0]["code"] == item["linkId"]
        assert item["type"] == "choice" and item["required"] is True
        assert "[" not in item["text"]  # the reference's editorial notes are stripped
    displays = [[o["valueCoding"]["display"] for o in i["answerOption"]] for i in q["item"]]
    assert displays[:8] == [["Agree", "Disagree"]] * 8
    assert displays[8] == ["Not at all", "Slightly", "Moderately", "Very much", "Extremely"]
    assert "Keele University" in q["copyright"] and "non-commercial" in q["copyright"]


def test_config_names_the_smart_client_and_scopes(client_factory) -> None:
    client = client_factory(smart_client_id="ehr-registered-id")
    config = client.get("/apps/startback/config").json()
    assert config["clientId"] == "ehr-registered-id"
    assert config["scope"].split() == [
        "launch",
        "patient/Patient.read",
        "patient/QuestionnaireResponse.write",
        "patient/Observation.write",
        "openid",
        "fhirUser",
    ]
    assert config["questionnaire"]["url"] == "http://127.0.0.1:8000/fhir/Questionnaire/startback"


def test_page_is_self_contained_and_carries_the_copyright(app_client) -> None:
    page = app_client.get("/apps/startback")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "© Keele University" in page.text and "non-commercial" in page.text
    assert '<html lang="en">' in page.text and 'name="viewport"' in page.text
    assert "http" not in page.text.split("<body>")[0].replace("http-equiv", "")  # no CDN
    for name, kind in (
        ("startback.js", "javascript"),
        ("questionnaire-form.js", "javascript"),
        ("startback.css", "css"),
    ):
        asset = app_client.get(f"/apps/startback/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
    assert app_client.get("/apps/startback/static/../startback.py").status_code == 404
    assert app_client.get("/apps/startback/static/secret.txt").status_code == 404


@pytest.mark.parametrize(
    ("agree", "item9", "total", "subscale", "risk"),
    [
        ({1, 2, 3}, "very-much", 4, 1, "medium"),
        ({1, 2}, "extremely", 3, 1, "low"),
        ({5, 6, 7, 8}, "slightly", 4, 4, "high"),
    ],
)
def test_score_without_patient_returns_only_the_scores(
    app_client, agree, item9, total, subscale, risk
) -> None:
    response = app_client.post(
        "/apps/startback/score", json={"answers": answer_codes(agree, item9)}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["total"], body["subscale"], body["risk"]) == (total, subscale, risk)
    assert body["care"]
    assert "bundle" not in body


def resources_of(bundle: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        key = resource["resourceType"]
        if key == "Observation":
            key = resource["code"]["coding"][0]["code"]
        out[key] = resource
    return out


def test_score_with_patient_builds_a_valid_transaction(app_client) -> None:
    authored = "2026-11-20T09:30:00+00:00"
    response = app_client.post(
        "/apps/startback/score",
        json={
            "answers": answer_codes({1, 5, 6, 7}, "very-much"),
            "patient": "p-42",
            "encounter": "enc-9",
            "authored": authored,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["total"], body["subscale"], body["risk"]) == (5, 4, "high")
    bundle = body["bundle"]
    Bundle.model_validate(bundle)
    assert bundle["type"] == "transaction"
    assert [e["request"] for e in bundle["entry"]] == [
        {"method": "POST", "url": "QuestionnaireResponse"},
        {"method": "POST", "url": "Observation"},
        {"method": "POST", "url": "Observation"},
        {"method": "POST", "url": "Observation"},
    ]
    by_kind = resources_of(bundle)
    qr = by_kind["QuestionnaireResponse"]
    assert qr["questionnaire"] == CANONICAL
    assert qr["status"] == "completed"
    assert qr["subject"] == {"reference": "Patient/p-42"}
    assert qr["encounter"] == {"reference": "Encounter/enc-9"}
    assert qr["authored"] == authored
    assert [i["linkId"] for i in qr["item"]] == ITEM_CODES
    assert by_kind["91351-7"]["valueInteger"] == 5
    assert by_kind["91350-9"]["valueInteger"] == 4
    risk = by_kind["91352-5"]["valueCodeableConcept"]["coding"][0]
    assert risk == {"system": "http://loinc.org", "code": RISK_ANSWERS["high"], "display": "High"}
    qr_urn = bundle["entry"][0]["fullUrl"]
    for code in ("91351-7", "91350-9", "91352-5"):
        obs = by_kind[code]
        assert obs["status"] == "final"
        assert obs["effectiveDateTime"] == authored
        assert obs["subject"] == {"reference": "Patient/p-42"}
        assert obs["derivedFrom"] == [{"reference": qr_urn}]


@pytest.mark.parametrize("risk", ["low", "medium", "high"])
def test_what_the_app_writes_is_read_back_as_the_same_risk(client_factory, risk: str) -> None:
    agree = {"low": {1}, "medium": {1, 2, 3, 4}, "high": {5, 6, 7, 8}}[risk]
    client = client_factory()
    body = client.post(
        "/apps/startback/score",
        json={"answers": answer_codes(agree), "patient": "pt-1", "authored": "2026-11-21"},
    ).json()
    by_kind = resources_of(body["bundle"])
    qr = by_kind.pop("QuestionnaireResponse")
    # The response alone, and the Observations alone, each give the result card.
    for observations, responses in (([], [qr]), (list(by_kind.values()), [])):
        prefetch = chart_prefetch(
            [back_pain()], observations=observations, questionnaire_responses=responses
        )
        response = call(client, "lbp-patient-view", hook_request("patient-view", prefetch=prefetch))
        assert assert_response_contract(response.json(), "patient-view") == ["startback-result"]
        assert response.json()["cards"][0]["summary"].startswith(f"STarT Back {risk} risk")


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"answers": {k: v for k, v in answer_codes({1}).items() if k != "91343-4"}}, "91343-4"),
        ({"answers": {**answer_codes({1}), "91343-4": "maybe"}}, "91343-4"),
        ({"answers": {**answer_codes({1}), "12345-6": "agree"}}, "answers"),
        ({"answers": answer_codes({1}), "patient": "not a/valid id"}, "patient"),
        ({"answers": answer_codes({1}), "extra": 1}, "extra"),
        ({}, "answers"),
    ],
)
def test_score_rejects_incomplete_or_unknown_answers(app_client, body, where: str) -> None:
    response = app_client.post("/apps/startback/score", json=body)
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert where in outcome["issue"][0]["expression"][0]


# ---- launch checks: which `iss` the app may contact, and development mode ------------------------

EHR_FHIR = "https://ehr.example.org/fhir"
# The review's input: a launch whose iss is a server nobody configured (here on loopback, a
# port of the attacker's choosing). The page sent its smart-configuration request, and then the
# real client_id and redirect_uri, there.
ATTACKER_LAUNCH = "/apps/startback?launch=xyz&iss=http://127.0.0.3:8443/fhir"


@pytest.fixture
def prod_app(client_factory):
    """Auth on, an https EHR and loopback on the FHIR allow-list; respx refuses any outbound call."""
    return client_factory(
        require_auth=True,
        trusted_issuers=UNREAD_ISSUERS,
        fhir_allowlist=[EHR_FHIR, "http://127.0.0.1", "http://fhir.example.org"],
    )


def assert_refused_page(response, words: str) -> None:
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert 'role="alert"' in response.text and words in response.text
    assert "startback.js" not in response.text  # no script runs on a refused launch


def test_launch_from_an_iss_off_the_allow_list_is_refused_before_anything_is_fetched(
    prod_app, fhir_mock
) -> None:
    response = prod_app.get(ATTACKER_LAUNCH)
    assert_refused_page(response, "not on the service&#x27;s FHIR allow-list")
    config = prod_app.get("/apps/startback/config?launch=xyz&iss=http://127.0.0.3:8443/fhir")
    assert config.status_code == 400
    outcome = config.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["iss"]
    assert "allow-list" in outcome["issue"][0]["diagnostics"]
    assert "clientId" not in config.text
    assert not fhir_mock.calls


@pytest.mark.parametrize(
    ("iss", "words"),
    [
        ("http://fhir.example.org/r4", "must be an https URL"),  # allow-listed, but plain http
        ("https://ehr.example.org.evil.test/fhir", "allow-list"),
        ("https://ehr.example.org/fhirx", "allow-list"),
        ("https://user@ehr.example.org/fhir", "not a plain http(s) base URL"),
        ("https://ehr.example.org/fhir?x=1", "not a plain http(s) base URL"),
        ("https://ehr.example.org/fhir#frag", "not a plain http(s) base URL"),
        ("https://ehr.example.org/fhir/../admin", "not a plain http(s) base URL"),
        ("https://ehr.example.org/fhir\r\nX: 1", "not a plain http(s) base URL"),
        ("https://ehr.example.org:99999/fhir", "not a plain http(s) base URL"),
        ("javascript:alert(1)//ehr.example.org/fhir", "not a plain http(s) base URL"),
        ("", "not a plain http(s) base URL"),
    ],
)
def test_iss_that_is_not_an_allow_listed_https_base_is_refused(
    prod_app, iss: str, words: str
) -> None:
    page = prod_app.get("/apps/startback", params={"launch": "xyz", "iss": iss})
    assert_refused_page(page, words)
    config = prod_app.get("/apps/startback/config", params={"launch": "xyz", "iss": iss})
    assert config.status_code == 400
    assert words in config.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    "iss", [EHR_FHIR, EHR_FHIR + "/", EHR_FHIR + "/r4", "http://127.0.0.1:8091/fhir"]
)
def test_launch_from_an_allow_listed_iss_is_served(prod_app, iss: str) -> None:
    page = prod_app.get("/apps/startback", params={"launch": "xyz", "iss": iss})
    assert page.status_code == 200
    assert "startback.js" in page.text
    config = prod_app.get("/apps/startback/config", params={"launch": "xyz", "iss": iss})
    assert config.status_code == 200
    assert config.json()["iss"] == iss
    assert config.json()["developmentMode"] is False


def test_development_mode_is_refused_when_auth_is_required(prod_app) -> None:
    # The review's input: ?iss=&patient= showed that server's patient on the service's origin,
    # without sign-in, while CDS_REQUIRE_AUTH was on.
    query = {"iss": "http://127.0.0.1:8091/fhir", "patient": "p-1"}
    assert_refused_page(prod_app.get("/apps/startback", params=query), "Development mode")
    config = prod_app.get("/apps/startback/config", params=query)
    assert config.status_code == 400
    assert config.json()["issue"][0]["expression"] == ["patient"]


def test_development_mode_works_with_auth_off_but_only_for_allow_listed_servers(
    client_factory,
) -> None:
    client = client_factory(require_auth=False, fhir_allowlist=["http://127.0.0.1"])
    query = {"iss": "http://127.0.0.1:8091/fhir", "patient": "p-1"}
    assert client.get("/apps/startback", params=query).status_code == 200
    config = client.get("/apps/startback/config", params=query).json()
    assert config["developmentMode"] is True and config["iss"] == query["iss"]
    other = {"iss": "http://127.0.0.3:8091/fhir", "patient": "p-1"}
    assert_refused_page(client.get("/apps/startback", params=other), "allow-list")


def test_page_without_launch_parameters_and_the_callback_are_served(prod_app) -> None:
    assert prod_app.get("/apps/startback").status_code == 200
    callback = prod_app.get("/apps/startback", params={"code": "c-1", "state": "s-1"})
    assert callback.status_code == 200
    assert "developmentMode" in prod_app.get("/apps/startback/config").json()
