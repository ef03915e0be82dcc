"""End-of-life care: no card at all (RULES.md v2), and the `encounters` data it reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import respx
from fastapi.testclient import TestClient

from cds_service.logic.fhir import Coding
from cds_service.logic.terminology import value_set
from tests.conftest import SERVICE_IDS, call
from tests.contract import assert_response_contract
from tests.factories import (
    FHIR_BASE,
    ICD10CM,
    PATIENT_ID,
    SNOMED,
    back_pain,
    bundle,
    chart_prefetch,
    condition,
    days_ago,
    hook_request,
    next_id,
    order_prefetch,
    patient,
    service_request,
)

DISCHARGE_DISPOSITION = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
SCREENING = ["startback-screening"]


def encounter(
    *,
    start_days_ago: int | None = 30,
    end_days_ago: int | None = None,
    disposition: tuple[str, str] | None = (SNOMED, "385763009"),
    status: str = "finished",
) -> dict[str, Any]:
    """An inpatient Encounter discharged to hospice (by default SNOMED 385763009 Hospice care)."""
    out: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": next_id("enc"),
        "status": status,
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "IMP",
        },
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }
    period = {}
    if start_days_ago is not None:
        period["start"] = days_ago(start_days_ago)
    if end_days_ago is not None:
        period["end"] = days_ago(end_days_ago)
    if period:
        out["period"] = period
    if disposition is not None:
        system, code = disposition
        out["hospitalization"] = {
            "dischargeDisposition": {"coding": [{"system": system, "code": code}]}
        }
    return out


def chart_topics(
    client: TestClient,
    conditions: list[dict[str, Any]] | None = None,
    encounters: list[dict[str, Any]] | None = None,
) -> list[str]:
    prefetch = chart_prefetch([back_pain(), *(conditions or [])], encounters=encounters)
    response = call(client, "lbp-patient-view", hook_request("patient-view", prefetch=prefetch))
    assert response.status_code == 200, response.text
    return assert_response_contract(response.json(), "patient-view")


# --- Conditions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clinical_status", "verification_status", "expected"),
    [
        ("active", "confirmed", []),
        ("recurrence", "confirmed", []),
        ("relapse", "unconfirmed", []),
        ("resolved", "confirmed", SCREENING),
        ("inactive", "confirmed", SCREENING),
        ("remission", "confirmed", SCREENING),
        ("active", "refuted", SCREENING),
        ("active", "entered-in-error", SCREENING),
    ],
)
def test_palliative_care_z51_5(
    client: TestClient, clinical_status: str, verification_status: str, expected: list[str]
) -> None:
    palliative = condition(
        ICD10CM,
        "Z51.5",
        clinical_status=clinical_status,
        verification_status=verification_status,
        onset_days_ago=20,
    )
    assert chart_topics(client, [palliative]) == expected


@pytest.mark.parametrize(
    ("system", "code"),
    [
        (SNOMED, "300936002"),  # Terminal illness (limited life expectancy)
        (SNOMED, "170969009"),  # Prognosis bad (limited life expectancy)
        (ICD10CM, "C25.0"),  # Malignant neoplasm of head of pancreas (likely terminal)
        (ICD10CM, "C78.7"),  # Secondary malignant neoplasm of liver (likely terminal)
        (ICD10CM, "K72.10"),  # Chronic hepatic failure (likely terminal)
    ],
)
def test_terminal_and_limited_life_expectancy_conditions(
    client: TestClient, system: str, code: str
) -> None:
    assert chart_topics(client, [condition(system, code)]) == []


def test_no_category_needed_and_category_does_not_matter(client: TestClient) -> None:
    palliative = condition(ICD10CM, "Z51.5")
    assert "category" not in palliative
    palliative["category"] = [{"text": "something local"}]
    assert chart_topics(client, [palliative]) == []


def test_an_unrelated_active_condition_does_not_silence(client: TestClient) -> None:
    assert chart_topics(client, [condition(ICD10CM, "I10")]) == SCREENING


def test_value_sets_hold_z51_5_and_the_hospice_codes() -> None:
    conditions = value_set("end-of-life-conditions")
    assert conditions.contains(Coding(system=ICD10CM, code="Z51.5"))
    assert not conditions.contains(Coding(system=ICD10CM, code="M54.50"))
    dispositions = value_set("end-of-life-discharge-disposition")
    assert dispositions.contains(Coding(system=SNOMED, code="385765002"))
    assert dispositions.contains(Coding(system=DISCHARGE_DISPOSITION, code="hosp"))
    assert not dispositions.contains(Coding(system=DISCHARGE_DISPOSITION, code="home"))


# --- Encounters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start_days_ago", "expected"),
    [
        (0, []),
        (335, []),  # about 11 months ago
        (365, []),  # the last day of the window
        (366, SCREENING),
        (395, SCREENING),  # about 13 months ago
        (-10, SCREENING),  # a future date is not in the last 12 months
    ],
)
def test_hospice_discharge_in_the_last_12_months(
    client: TestClient, start_days_ago: int, expected: list[str]
) -> None:
    assert chart_topics(client, encounters=[encounter(start_days_ago=start_days_ago)]) == expected


def test_period_end_when_there_is_no_start(client: TestClient) -> None:
    recent = encounter(start_days_ago=None, end_days_ago=100)
    old = encounter(start_days_ago=None, end_days_ago=400)
    undated = encounter(start_days_ago=None)
    assert chart_topics(client, encounters=[recent]) == []
    assert chart_topics(client, encounters=[old, undated]) == SCREENING


def test_start_wins_over_end(client: TestClient) -> None:
    # Admitted 13 months ago, discharged to hospice 11 months ago: the start decides.
    long_stay = encounter(start_days_ago=395, end_days_ago=335)
    assert chart_topics(client, encounters=[long_stay]) == SCREENING


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ((SNOMED, "385763009"), []),
        ((SNOMED, "385765002"), []),
        ((DISCHARGE_DISPOSITION, "hosp"), []),
        ((DISCHARGE_DISPOSITION, "home"), SCREENING),
        ((DISCHARGE_DISPOSITION, "exp"), SCREENING),
        (None, SCREENING),
    ],
)
def test_hospice_disposition_codes(
    client: TestClient, disposition: tuple[str, str] | None, expected: list[str]
) -> None:
    assert chart_topics(client, encounters=[encounter(disposition=disposition)]) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("finished", []),
        ("in-progress", []),
        ("entered-in-error", SCREENING),
        ("cancelled", SCREENING),
    ],
)
def test_encounter_status(client: TestClient, status: str, expected: list[str]) -> None:
    assert chart_topics(client, encounters=[encounter(status=status)]) == expected


def test_window_is_a_setting(
    client_factory: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDS_RULES__END_OF_LIFE_ENCOUNTER_WINDOW_DAYS", "90")
    client = client_factory()
    assert chart_topics(client, encounters=[encounter(start_days_ago=100)]) == SCREENING
    assert chart_topics(client, encounters=[encounter(start_days_ago=80)]) == []


def test_another_patients_hospice_discharge_does_not_count(client: TestClient) -> None:
    theirs = encounter()
    theirs["subject"] = {"reference": "Patient/SOMEONE-ELSE"}
    assert chart_topics(client, encounters=[theirs]) == SCREENING


# --- every hook is silenced ---------------------------------------------------------------------


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_order_hooks_are_silenced_too(client: TestClient, hook: str) -> None:
    draft = service_request()
    plain = hook_request(hook, prefetch=order_prefetch([back_pain()]), draft_orders=[draft])
    response = call(client, f"lbp-{hook}", plain)
    assert assert_response_contract(response.json(), hook) == ["imaging-without-red-flags"]
    body = hook_request(
        hook,
        prefetch=order_prefetch([back_pain()], encounters=[encounter()]),
        draft_orders=[draft],
    )
    assert call(client, f"lbp-{hook}", body).json() == {"cards": []}


# --- the encounters data key --------------------------------------------------------------------


def test_discovery_lists_the_encounters_prefetch_on_every_service(client: TestClient) -> None:
    services = {s["id"]: s for s in client.get("/cds-services").json()["services"]}
    assert set(services) == set(SERVICE_IDS)
    for service in services.values():
        assert service["prefetch"]["encounters"] == "Encounter?patient={{context.patientId}}"
        assert "Encounters" in service["usageRequirements"]


def test_fhir_fallback_queries_encounter(client: TestClient, fhir_mock: respx.MockRouter) -> None:
    fhir_mock.get(f"/Patient/{PATIENT_ID}").respond(200, json=patient())
    fhir_mock.get("/Condition").respond(200, json=bundle([back_pain()]))
    fhir_mock.get(
        url__regex=r".*/(Observation|MedicationRequest|QuestionnaireResponse)\?.*"
    ).respond(200, json=bundle([]))
    encounters = fhir_mock.get(url__regex=r".*/Encounter\?patient=pt-1&_count=\d+$").respond(
        200, json=bundle([encounter(disposition=(DISCHARGE_DISPOSITION, "hosp"))])
    )
    body = hook_request("patient-view", fhir_server=FHIR_BASE, token="tok")
    response = call(client, "lbp-patient-view", body)
    assert response.status_code == 200, response.text
    assert encounters.call_count == 1
    assert encounters.calls[0].request.headers["Authorization"] == "Bearer tok"
    assert response.json() == {"cards": []}


def test_only_the_absent_encounters_key_is_fetched(
    client: TestClient, fhir_mock: respx.MockRouter
) -> None:
    encounters = fhir_mock.get(url__regex=r".*/Encounter\?.*").respond(200, json=bundle([]))
    prefetch = chart_prefetch([back_pain()])
    del prefetch["encounters"]
    body = hook_request("patient-view", prefetch=prefetch, fhir_server=FHIR_BASE, token="t")
    response = call(client, "lbp-patient-view", body)
    assert assert_response_contract(response.json(), "patient-view") == SCREENING
    assert encounters.call_count == 1
    assert len(fhir_mock.calls) == 1


@pytest.mark.parametrize("status", [403, 404, 500])
def test_encounters_the_server_cannot_give_do_not_fail_the_call(
    client: TestClient, fhir_mock: respx.MockRouter, status: int
) -> None:
    # A token not scoped to Encounter, or a server without it: the cards still come.
    fhir_mock.get(url__regex=r".*/Encounter\?.*").respond(status)
    prefetch = chart_prefetch([back_pain()])
    del prefetch["encounters"]
    body = hook_request("patient-view", prefetch=prefetch, fhir_server=FHIR_BASE, token="t")
    response = call(client, "lbp-patient-view", body)
    assert response.status_code == 200, response.text
    assert assert_response_contract(response.json(), "patient-view") == SCREENING


def test_encounters_absent_without_fhir_access_still_answers(client: TestClient) -> None:
    # A client on the v1 prefetch (no `encounters`) and no FHIR access: the other keys are
    # there, so the call answers; the Conditions still find end-of-life care.
    prefetch = chart_prefetch([back_pain()])
    del prefetch["encounters"]
    response = call(client, "lbp-patient-view", hook_request("patient-view", prefetch=prefetch))
    assert assert_response_contract(response.json(), "patient-view") == SCREENING
    prefetch["conditions"] = bundle([back_pain(), condition(ICD10CM, "Z51.5")])
    response = call(client, "lbp-patient-view", hook_request("patient-view", prefetch=prefetch))
    assert response.json() == {"cards": []}
