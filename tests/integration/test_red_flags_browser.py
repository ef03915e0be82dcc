"""The red-flag screen app in headless Chromium against the running service and the real FHIR
server (sekmet-fhir), then order-sign read back from that server.

The page runs on a service under uvicorn (auth off: development mode, `?iss=&patient=`) and
writes the QuestionnaireResponse from the browser with the time of the run. The order-sign calls
go to an in-process service whose clock is set from the saved response's own `authored` date
(plus N days where the test says so), so no assertion depends on the day the suite runs.
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from cds_service.config import Settings
from tests.browser import screenshot
from tests.conftest import StartedClients
from tests.contract import assert_response_contract
from tests.factories import SNOMED, hook_request, service_request
from tests.fhir_server import FhirServer
from tests.servers import running_service

pytestmark = [pytest.mark.integration, pytest.mark.browser]

pytest.importorskip("playwright.sync_api")

IMAGING = "imaging-without-red-flags"
PATH = "/fhir/Questionnaire/lbp-red-flag-screen|1.0.0"
FAKE_EHR = "https://ehr.example.test"
NARROW = {"width": 375, "height": 812}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("red-flags-service")
    with running_service(workdir, {"CDS_FHIR_ALLOWLIST": "http://127.0.0.1"}) as running:
        yield running.base_url


def back_pain_patient(fhir_server: FhirServer, patient_id: str) -> None:
    """A patient with active low back pain of unknown onset (a new episode, whatever the date)."""
    fhir_server.put_all(
        [
            {
                "resourceType": "Patient",
                "id": patient_id,
                "name": [{"given": ["Robin"], "family": "Screen"}],
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
            },
        ]
    )


def order_sign(
    started_clients: StartedClients, fhir_server: FhirServer, patient_id: str, today: date
) -> list[dict[str, Any]]:
    """order-sign of a lumbar MRI, the record read from the FHIR server, on `today`."""
    database = Path(tempfile.mkdtemp(prefix="rf-order-sign-")) / "cds.db"
    settings = Settings(
        require_auth=False,
        database_url=f"sqlite:///{database}",
        fhir_allowlist=["http://127.0.0.1"],
    )
    client: TestClient = started_clients.start(settings, today=today)
    body = hook_request(
        "order-sign",
        draft_orders=[service_request(order_id=f"{patient_id}-mri")],
        fhir_server=fhir_server.base_url,
        token="ehr-token",
        patient_id=patient_id,
    )
    body["context"]["draftOrders"]["entry"][0]["resource"]["subject"] = {
        "reference": f"Patient/{patient_id}"
    }
    response = client.post("/cds-services/lbp-order-sign", json=body)
    assert response.status_code == 200, response.text
    assert_response_contract(response.json(), "order-sign")
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards


def imaging(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in cards if c["source"]["topic"]["code"] == IMAGING]


def open_app(browser: Any, service: str, fhir_base: str, patient_id: str) -> Any:
    page = browser.new_page(viewport=NARROW)
    page.goto(f"{service}/apps/red-flags?{urlencode({'iss': fhir_base, 'patient': patient_id})}")
    page.get_by_text("Robin Screen").wait_for()
    return page


def choose(page: Any, item_number: int, answer: str) -> None:
    """Pick Yes or No for one item with the keyboard, as a screen-reader user would."""
    radio = page.get_by_role("group").nth(item_number - 1).get_by_role("radio", name=answer)
    radio.focus()
    page.keyboard.press("Space")
    assert radio.is_checked()


def saved_response(page: Any, fhir_server: FhirServer) -> dict[str, Any]:
    saved = page.get_by_text("Saved to the record")
    saved.wait_for()
    reference = saved.inner_text().removeprefix("Saved to the record: ").rstrip(".")
    assert reference.startswith("QuestionnaireResponse/")
    resource: dict[str, Any] = httpx.get(f"{fhir_server.base_url}/{reference}").json()
    return resource


def authored_day(resource: dict[str, Any]) -> date:
    return date.fromisoformat(resource["authored"][:10])


def no_horizontal_scroll(page: Any) -> bool:
    width: int = page.evaluate("document.documentElement.scrollWidth")
    return width <= NARROW["width"]


def test_a_yes_to_saddle_anaesthesia_is_saved_and_silences_the_imaging_warning(
    fhir_server: FhirServer,
    service: str,
    browser: Any,
    started_clients: StartedClients,
    tmp_path: Path,
) -> None:
    patient_id = "rf-browser-yes"
    back_pain_patient(fhir_server, patient_id)
    before = imaging(order_sign(started_clients, fhir_server, patient_id, date(2026, 11, 22)))
    (card,) = before
    assert [lk["label"] for lk in card["links"] if lk["type"] == "smart"] == [
        "Record a red-flag screen"
    ]

    page = open_app(browser, service, fhir_server.base_url, patient_id)
    assert page.get_by_role("group").count() == 12
    choose(page, 1, "Yes")
    page.get_by_role("button", name="Answer No to the rest").click()
    assert page.locator("#progress").inner_text() == "12 of 12 answered"
    page.get_by_text("1 red flag: consider serious pathology.").wait_for()
    assert "Saddle anaesthesia (cauda equina" in page.locator("#result-flags").inner_text()
    page.get_by_role("button", name="Save to the patient record").click()
    resource = saved_response(page, fhir_server)
    assert no_horizontal_scroll(page)
    screenshot(page, tmp_path, "red-flag-app.png")  # the README picture: 375 px, one "yes", saved
    page.close()

    assert resource["status"] == "completed"
    assert resource["questionnaire"].endswith(PATH)
    assert resource["subject"]["reference"] == f"Patient/{patient_id}"
    answers = {i["linkId"]: i["answer"][0]["valueBoolean"] for i in resource["item"]}
    assert answers["saddle-anaesthesia"] is True
    assert sum(answers.values()) == 1 and len(answers) == 12

    after = order_sign(started_clients, fhir_server, patient_id, authored_day(resource))
    assert imaging(after) == []


def test_an_all_no_screen_is_negative_and_counts_for_14_days_only(
    fhir_server: FhirServer, service: str, browser: Any, started_clients: StartedClients
) -> None:
    patient_id = "rf-browser-no"
    back_pain_patient(fhir_server, patient_id)
    page = open_app(browser, service, fhir_server.base_url, patient_id)
    # Two clicks: "Answer No to the rest", then Save.
    page.get_by_role("button", name="Answer No to the rest").click()
    page.get_by_text("Negative: no red flag.").wait_for()
    page.get_by_role("button", name="Save to the patient record").click()
    resource = saved_response(page, fhir_server)
    page.close()
    day = authored_day(resource)

    (card,) = imaging(order_sign(started_clients, fhir_server, patient_id, day))
    assert f"Red-flag screen on {day.day} {day:%b}: negative." in card["detail"]
    assert "links" not in card or all(lk["type"] != "smart" for lk in card["links"])

    # 20 days later the screen no longer counts: the card asks for a new one.
    later = day + timedelta(days=20)
    (card,) = imaging(order_sign(started_clients, fhir_server, patient_id, later))
    assert "No red-flag screen in 14 days." in card["detail"]
    assert "Record a red-flag screen" in [lk["label"] for lk in card["links"]]


def test_at_375_px_nothing_scrolls_sideways_and_a_missing_answer_is_announced(
    fhir_server: FhirServer, service: str, browser: Any
) -> None:
    patient_id = "rf-browser-narrow"
    back_pain_patient(fhir_server, patient_id)
    page = open_app(browser, service, fhir_server.base_url, patient_id)
    assert no_horizontal_scroll(page)
    legends = page.locator("fieldset.item legend")
    assert legends.count() == 12
    assert legends.nth(0).inner_text().startswith("1. Saddle anaesthesia")
    # Every radio has its label, and the labels are large enough to tap.
    box = page.locator("label.option").first.bounding_box()
    assert box is not None and box["height"] >= 44
    for number in (2, 10, 11, 12):
        choose(page, number, "Yes")
    page.get_by_role("button", name="Save to the patient record").click()
    alert = page.get_by_role("alert")
    assert alert.inner_text().startswith("Please answer every item, yes or no (missing: 1, 3")
    focused = page.evaluate("document.activeElement.name")
    assert focused == "saddle-anaesthesia"
    page.get_by_role("button", name="Answer No to the rest").click()
    page.get_by_text("4 red flags: consider serious pathology.").wait_for()
    assert no_horizontal_scroll(page)
    page.close()


def test_a_write_the_fhir_server_refuses_is_shown_and_not_claimed_saved(
    fhir_server: FhirServer, service: str, browser: Any
) -> None:
    patient_id = "rf-browser-refused"
    back_pain_patient(fhir_server, patient_id)
    page = open_app(browser, service, fhir_server.base_url, patient_id)

    def refuse(route: Any) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        route.fulfill(
            status=403,
            json={
                "resourceType": "OperationOutcome",
                "issue": [
                    {"severity": "error", "code": "forbidden", "diagnostics": "scope missing"}
                ],
            },
            headers={"Access-Control-Allow-Origin": "*"},
        )

    page.route(f"{fhir_server.base_url}/QuestionnaireResponse", refuse)
    page.get_by_role("button", name="Answer No to the rest").click()
    page.get_by_role("button", name="Save to the patient record").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert alert.inner_text() == (
        "The FHIR server refused the screen (HTTP 403): scope missing It is not saved."
    )
    assert page.locator("#status").inner_text() == "Not saved."
    assert page.get_by_role("button", name="Save to the patient record").is_enabled()
    assert page.locator("#saved").is_hidden()
    page.close()
    # Filtered here too: this server ignores `patient` on QuestionnaireResponse searches.
    found = httpx.get(f"{fhir_server.base_url}/QuestionnaireResponse").json()
    subjects = [
        e["resource"].get("subject", {}).get("reference")
        for e in found.get("entry", [])
        if e["resource"]["resourceType"] == "QuestionnaireResponse"
    ]
    assert f"Patient/{patient_id}" not in subjects


def unsigned_id_token(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


def test_ehr_launch_with_pkce_writes_with_the_token_and_names_the_author(
    fhir_server: FhirServer, service: str, browser: Any
) -> None:
    """sekmet-fhir has no authorization-code flow: the EHR's authorization server is played by
    request interception; reads and the write go to the real FHIR server."""
    patient_id = "rf-browser-ehr"
    back_pain_patient(fhir_server, patient_id)
    fhir_server.put_all([{"resourceType": "Practitioner", "id": "rf-dr-1"}])
    app_url = f"{service}/apps/red-flags"
    seen: dict[str, Any] = {}
    context = browser.new_context(viewport={"width": 1024, "height": 900})
    page = context.new_page()
    page.route(
        f"{fhir_server.base_url}/.well-known/smart-configuration",
        lambda route: route.fulfill(
            json={
                "authorization_endpoint": f"{FAKE_EHR}/authorize",
                "token_endpoint": f"{FAKE_EHR}/token",
            },
            headers={"Access-Control-Allow-Origin": "*"},
        ),
    )

    def authorize(route: Any) -> None:
        params = {k: v[0] for k, v in parse_qs(urlsplit(route.request.url).query).items()}
        seen["authorize"] = params
        back = urlencode({"code": "code-1", "state": params["state"]})
        route.fulfill(status=302, headers={"Location": f"{params['redirect_uri']}?{back}"})

    def token(route: Any) -> None:
        seen["token"] = {k: v[0] for k, v in parse_qs(route.request.post_data or "").items()}
        route.fulfill(
            json={
                "access_token": "access-token-rf",
                "token_type": "Bearer",
                "patient": patient_id,
                "id_token": unsigned_id_token(
                    {"fhirUser": f"{fhir_server.base_url}/Practitioner/rf-dr-1"}
                ),
            },
            headers={"Access-Control-Allow-Origin": "*"},
        )

    page.route(f"{FAKE_EHR}/authorize?*", authorize)
    page.route(f"{FAKE_EHR}/token", token)
    writes: list[dict[str, str]] = []
    page.on(
        "request",
        lambda r: writes.append(r.headers) if r.method == "POST" and "/fhir/" in r.url else None,
    )
    page.goto(f"{app_url}?{urlencode({'launch': 'launch-rf', 'iss': fhir_server.base_url})}")
    page.get_by_text("Signed in through the EHR").wait_for()
    assert page.url == app_url  # the one-time code left the address bar
    auth = seen["authorize"]
    assert (auth["launch"], auth["aud"], auth["redirect_uri"]) == (
        "launch-rf",
        fhir_server.base_url,
        app_url,
    )
    assert auth["code_challenge_method"] == "S256"
    assert "patient/QuestionnaireResponse.write" in auth["scope"].split()
    assert seen["token"]["code_verifier"]

    choose(page, 9, "Yes")
    page.get_by_role("button", name="Answer No to the rest").click()
    page.get_by_role("button", name="Save to the patient record").click()
    resource = saved_response(page, fhir_server)
    context.close()
    assert [w.get("authorization") for w in writes] == ["Bearer access-token-rf"]
    assert resource["author"] == {"reference": "Practitioner/rf-dr-1"}
