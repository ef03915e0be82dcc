"""The STarT Back app in headless Chromium against the running service and the real FHIR server.

The service runs under uvicorn in a subprocess (require_auth false); the FHIR server is the
session's sekmet-fhir. The page writes to the FHIR server from the browser; a patient-view call
without prefetch then reads the result back from the FHIR server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.browser import screenshot
from tests.contract import assert_response_contract
from tests.factories import SNOMED, TODAY, hook_request
from tests.fhir_server import FhirServer
from tests.servers import ROOT, running_service

pytestmark = [pytest.mark.integration, pytest.mark.browser]

pytest.importorskip("playwright.sync_api")

# The project's copy of Keele's validated wording (clinical-codes.md §7).
WORDING = json.loads(
    (ROOT / "cds_service" / "apps" / "startback-wording.json").read_text(encoding="utf-8")
)
# RULES.md "Summaries (v2)": `STarT Back medium risk (12 Nov): physiotherapy`.
DATE = r"\(\d{1,2} [A-Z][a-z]{2}\)"
FAKE_EHR = "https://ehr.example.test"


class Service:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def patient_view(self, fhir_base: str, patient_id: str) -> dict[str, Any]:
        body = hook_request(
            "patient-view", fhir_server=fhir_base, token="ehr-token", patient_id=patient_id
        )
        response = httpx.post(f"{self.base_url}/cds-services/lbp-patient-view", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service under uvicorn, as an EHR and a browser reach it."""
    workdir = tmp_path_factory.mktemp("service")
    with running_service(workdir, {"CDS_FHIR_ALLOWLIST": "http://127.0.0.1"}) as running:
        yield Service(running.base_url)


def back_pain_patient(fhir_server: FhirServer, patient_id: str) -> None:
    fhir_server.put_all(
        [
            {
                "resourceType": "Patient",
                "id": patient_id,
                "name": [{"given": ["Alex"], "family": "Example"}],
                "birthDate": "1980-04-02",
            },
            {
                "resourceType": "Condition",
                "id": f"{patient_id}-lbp",
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                            "code": "active",
                        }
                    ]
                },
                "code": {"coding": [{"system": SNOMED, "code": "279039007"}]},
                "subject": {"reference": f"Patient/{patient_id}"},
                "onsetDateTime": TODAY.isoformat(),
            },
        ]
    )


def answer(page: Any, answers: list[str]) -> None:
    """Choose one answer per statement, in order, as a user does with the keyboard."""
    groups = page.get_by_role("group")
    assert groups.count() == 9
    for index, label in enumerate(answers):
        radio = groups.nth(index).get_by_role("radio", name=label, exact=True)
        radio.focus()
        page.keyboard.press("Space")
        assert radio.is_checked()


# Items 1-4 and 5 agree, 6-8 disagree, item 9 "Very much": total 6, subscale 2 -> medium.
MEDIUM_ANSWERS = ["Agree"] * 5 + ["Disagree"] * 3 + ["Very much"]
# Items 5-8 agree, item 9 "Extremely": total 5, subscale 5 -> high.
HIGH_ANSWERS = ["Disagree"] * 4 + ["Agree"] * 4 + ["Extremely"]


def test_app_writes_the_result_and_patient_view_shows_it(
    fhir_server: FhirServer, service: Service, browser: Any, tmp_path: Path
) -> None:
    patient_id = "sb-browser-dev"
    back_pain_patient(fhir_server, patient_id)
    before = service.patient_view(fhir_server.base_url, patient_id)
    assert assert_response_contract(before, "patient-view") == ["startback-screening"]

    page = browser.new_page(viewport={"width": 375, "height": 812})
    query = urlencode({"iss": fhir_server.base_url, "patient": patient_id})
    page.goto(f"{service.base_url}/apps/startback?{query}")
    page.get_by_text("Alex Example").wait_for()
    assert page.get_by_text("Development mode").is_visible()
    assert page.get_by_text("© Keele University").is_visible()
    # Keele's exact wording: the lead-in and every statement, in order (the tool is not modified).
    assert page.locator("#lead-in").inner_text() == WORDING["leadIn"]
    legends = page.locator("fieldset.item legend")
    assert legends.count() == 9
    for index, item in enumerate(WORDING["items"]):
        assert legends.nth(index).inner_text() == f"{item['number']}. {item['text']}"
    options = page.get_by_role("group").nth(8).locator("label.option").all_inner_texts()
    assert [o.strip() for o in options] == WORDING["item9Answers"]
    # Nothing overflows a 375 px wide screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375

    page.get_by_role("button", name="Save to the patient record").click()
    assert page.get_by_role("alert").inner_text().startswith("Please answer every statement")

    answer(page, MEDIUM_ANSWERS)
    page.get_by_text("Medium risk").wait_for()
    assert page.locator("#result-total").inner_text() == "6 of 9"
    assert page.locator("#result-subscale").inner_text() == "2 of 5"

    page.get_by_role("button", name="Save to the patient record").click()
    saved = page.get_by_text("Saved to the record")
    saved.wait_for()
    assert "QuestionnaireResponse/" in saved.inner_text()
    assert saved.inner_text().count("Observation/") == 3
    assert page.evaluate("document.documentElement.scrollWidth") <= 375

    screenshot(page, tmp_path, "startback-app.png")
    page.close()

    responses = httpx.get(
        f"{fhir_server.base_url}/QuestionnaireResponse", params={"patient": patient_id}
    ).json()
    assert responses.get("total", len(responses.get("entry", []))) >= 1
    after = service.patient_view(fhir_server.base_url, patient_id)
    assert assert_response_contract(after, "patient-view") == ["startback-result"]
    card = after["cards"][0]
    assert re.fullmatch(f"STarT Back medium risk {DATE}: physiotherapy", card["summary"])
    assert "total 6/9, psychosocial 2/5" in card["detail"]


def test_ehr_launch_with_pkce_then_saves_with_the_access_token(
    fhir_server: FhirServer, service: Service, browser: Any
) -> None:
    """EHR launch: smart-configuration -> authorize (PKCE S256) -> token -> writes with Bearer.

    sekmet-fhir has no authorization-code flow, so the EHR's authorization server is played by
    request interception; the FHIR reads and writes go to the real FHIR server.
    """
    patient_id = "sb-browser-ehr"
    back_pain_patient(fhir_server, patient_id)
    app_url = f"{service.base_url}/apps/startback"
    seen: dict[str, Any] = {}
    context = browser.new_context(viewport={"width": 1024, "height": 900})
    page = context.new_page()

    def smart_configuration(route: Any) -> None:
        route.fulfill(
            json={
                "authorization_endpoint": f"{FAKE_EHR}/authorize",
                "token_endpoint": f"{FAKE_EHR}/token",
                "capabilities": ["launch-ehr", "client-public", "context-ehr-patient"],
                "code_challenge_methods_supported": ["S256"],
            },
            headers={"Access-Control-Allow-Origin": "*"},
        )

    def authorize(route: Any) -> None:
        params = {k: v[0] for k, v in parse_qs(urlsplit(route.request.url).query).items()}
        seen["authorize"] = params
        back = urlencode({"code": "auth-code-1", "state": params["state"]})
        route.fulfill(status=302, headers={"Location": f"{params['redirect_uri']}?{back}"})

    def token(route: Any) -> None:
        seen["token"] = {k: v[0] for k, v in parse_qs(route.request.post_data or "").items()}
        route.fulfill(
            json={
                "access_token": "access-token-1",
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "launch patient/Patient.read",
                "patient": patient_id,
            },
            headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"},
        )

    page.route(f"{fhir_server.base_url}/.well-known/smart-configuration", smart_configuration)
    page.route(f"{FAKE_EHR}/authorize?*", authorize)
    page.route(f"{FAKE_EHR}/token", token)
    writes: list[dict[str, str]] = []
    page.on(
        "request",
        lambda r: (
            writes.append(r.headers)
            if r.method == "POST" and r.url.rstrip("/") == fhir_server.base_url
            else None
        ),
    )

    query = urlencode({"launch": "launch-xyz", "iss": fhir_server.base_url})
    page.goto(f"{app_url}?{query}")
    page.get_by_text("Signed in through the EHR").wait_for()
    page.get_by_text("Alex Example").wait_for()
    assert page.url == app_url  # the one-time code left the address bar

    auth = seen["authorize"]
    assert auth["response_type"] == "code"
    assert auth["client_id"] == "lbp-cds-startback"
    assert auth["redirect_uri"] == app_url
    assert auth["launch"] == "launch-xyz"
    assert auth["aud"] == fhir_server.base_url
    assert auth["scope"].split() == [
        "launch",
        "patient/Patient.read",
        "patient/QuestionnaireResponse.write",
        "patient/Observation.write",
        "openid",
        "fhirUser",
    ]
    assert auth["code_challenge_method"] == "S256"
    exchanged = seen["token"]
    assert exchanged["grant_type"] == "authorization_code"
    assert exchanged["code"] == "auth-code-1"
    assert exchanged["redirect_uri"] == app_url
    assert exchanged["client_id"] == "lbp-cds-startback"
    digest = hashlib.sha256(exchanged["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == auth["code_challenge"]

    answer(page, HIGH_ANSWERS)
    page.get_by_text("High risk").wait_for()
    page.get_by_role("button", name="Save to the patient record").click()
    page.get_by_text("Saved to the record").wait_for()
    assert [w.get("authorization") for w in writes] == ["Bearer access-token-1"]
    context.close()

    after = service.patient_view(fhir_server.base_url, patient_id)
    assert assert_response_contract(after, "patient-view") == ["startback-result"]
    card = after["cards"][0]
    assert re.fullmatch(
        f"STarT Back high risk {DATE}: psychologically informed physiotherapy", card["summary"]
    )
    assert "total 5/9, psychosocial 5/5" in card["detail"]
