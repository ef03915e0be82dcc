"""Only the context patient's data counts (RULES.md v2 "Whose data, and which patients").

Another patient's resource, in prefetch, in what the FHIR server returns or in draftOrders,
neither raises nor suppresses a card, and the call's log line counts it. Also: adults only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient

from cds_service.logic.config import RuleConfig
from cds_service.logic.rules import evaluate
from cds_service.records.assemble import DraftResources, belongs_to, build_record
from cds_service.records.data import DataKey
from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import (
    FHIR_BASE,
    ICD10CM,
    PATIENT_ID,
    TODAY,
    back_pain,
    bundle,
    chart_prefetch,
    condition,
    hook_request,
    order_prefetch,
    patient,
    service_request,
)
from tests.startback_builders import RISK, answers_for, observation, questionnaire_response

OTHER = "SOMEONE-ELSE"


def of(resource: dict[str, Any], reference: Any) -> dict[str, Any]:
    """The resource with its subject set to `reference` (a string: a Reference to it)."""
    out = dict(resource)
    out["subject"] = {"reference": reference} if isinstance(reference, str) else reference
    return out


def high_risk_qr() -> dict[str, Any]:
    # Items 5-8 agreed and item 9 "Very much": psychosocial subscale 5 of 5 -> high risk.
    return questionnaire_response(answers_for({1, 5, 6, 7, 8}, item9="Very much"))


def topics(client: TestClient, service: str, body: dict[str, Any]) -> list[str]:
    response = call(client, service, body)
    assert response.status_code == 200, response.text
    return assert_response_contract(response.json(), body["hook"])


def chart_topics(client: TestClient, **prefetch: Any) -> list[str]:
    conditions = prefetch.pop("conditions", [back_pain()])
    body = hook_request("patient-view", prefetch=chart_prefetch(conditions, **prefetch))
    return topics(client, "lbp-patient-view", body)


# --- another patient's data neither raises nor suppresses a card -------------------------------


def test_another_patients_startback_observation_is_not_this_patients_result(
    client: TestClient,
) -> None:
    mine_too = chart_topics(client, observations=[observation(RISK, risk="high")])
    assert mine_too == ["startback-result"]
    foreign = of(observation(RISK, risk="high"), f"Patient/{OTHER}")
    assert chart_topics(client, observations=[foreign]) == ["startback-screening"]


def test_another_patients_questionnaire_response_is_not_this_patients_result(
    client: TestClient,
) -> None:
    assert chart_topics(client, questionnaire_responses=[high_risk_qr()]) == ["startback-result"]
    foreign = of(high_risk_qr(), f"Patient/{OTHER}")
    assert chart_topics(client, questionnaire_responses=[foreign]) == ["startback-screening"]


def test_another_patients_back_pain_gives_no_context(client: TestClient) -> None:
    assert chart_topics(client, conditions=[of(back_pain(), f"Patient/{OTHER}")]) == []


def test_another_patients_red_flag_does_not_suppress_the_imaging_card(client: TestClient) -> None:
    cancer = of(condition(ICD10CM, "C79.51", onset_days_ago=100), f"Patient/{OTHER}")
    body = hook_request(
        "order-sign",
        prefetch=order_prefetch([back_pain(), cancer]),
        draft_orders=[service_request()],
    )
    assert topics(client, "lbp-order-sign", body) == ["imaging-without-red-flags"]


def test_another_patients_end_of_life_condition_does_not_silence_the_cards(
    client: TestClient,
) -> None:
    palliative = of(condition(ICD10CM, "Z51.5"), f"Patient/{OTHER}")
    assert chart_topics(client, conditions=[back_pain(), palliative]) == ["startback-screening"]


def test_a_draft_order_for_another_patient_gets_no_card(client: TestClient) -> None:
    foreign = of(service_request(order_id="sr-other"), f"Patient/{OTHER}")
    body = hook_request(
        "order-sign", prefetch=order_prefetch([back_pain()]), draft_orders=[foreign]
    )
    assert topics(client, "lbp-order-sign", body) == []


def test_what_the_fhir_server_returns_for_another_patient_is_ignored(
    client: TestClient, fhir_mock: respx.MockRouter
) -> None:
    # A server that ignores `patient=` (as sekmet does for QuestionnaireResponse) returns
    # everyone's responses: only the context patient's count.
    fhir_mock.get(url__regex=r".*/QuestionnaireResponse\?patient=pt-1&.*").mock(
        return_value=httpx.Response(200, json=bundle([of(high_risk_qr(), f"Patient/{OTHER}")]))
    )
    prefetch = chart_prefetch([back_pain()])
    del prefetch["questionnaireResponses"]
    body = hook_request("patient-view", prefetch=prefetch, fhir_server=FHIR_BASE, token="t")
    assert topics(client, "lbp-patient-view", body) == ["startback-screening"]


# --- which references name the context patient --------------------------------------------------


@pytest.mark.parametrize(
    "reference",
    [
        f"Patient/{PATIENT_ID}",
        f"http://ehr.example.org/fhir/R4/Patient/{PATIENT_ID}",
        f"https://other.example/base/Patient/{PATIENT_ID}/_history/3",
        "urn:uuid:0d5d6c43-2a8f-4a38-9d4c-6f7f5a1c0a11",
        "#patient-1",
    ],
)
def test_references_that_count_as_the_context_patient(client: TestClient, reference: str) -> None:
    qr = of(high_risk_qr(), reference)
    assert chart_topics(client, questionnaire_responses=[qr]) == ["startback-result"]


@pytest.mark.parametrize(
    "subject",
    [
        None,
        {"display": "Ann Example"},
        {"identifier": {"value": "MRN-1"}},
        {"reference": "Group/g"},
    ],
)
def test_no_patient_reference_counts(client: TestClient, subject: dict[str, Any] | None) -> None:
    obs = observation(RISK, risk="medium")
    del obs["subject"]
    if subject is not None:
        obs["subject"] = subject
    assert chart_topics(client, observations=[obs]) == ["startback-result"]


@pytest.mark.parametrize(
    ("resource", "mine"),
    [
        ({"resourceType": "Condition", "subject": {"reference": "Patient/pt-1"}}, True),
        ({"resourceType": "Condition", "subject": {"reference": "Patient/pt-10"}}, False),
        ({"resourceType": "Condition", "subject": {"reference": "http://x/Patient/pt-2"}}, False),
        ({"resourceType": "Condition", "subject": "Patient/pt-2"}, False),
        ({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/pt-2"}}, False),
        ({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/pt-1"}}, True),
        ({"resourceType": "Medication", "id": "m"}, True),
        ({"resourceType": "Patient", "id": "pt-1"}, True),
        ({"resourceType": "Patient", "id": "pt-2"}, False),
        ({"resourceType": "Patient"}, False),
    ],
)
def test_belongs_to(resource: dict[str, Any], mine: bool) -> None:
    assert belongs_to(resource, PATIENT_ID) is mine


def test_another_patients_patient_resource_leaves_age_unknown() -> None:
    record, skipped = build_record(
        hook="patient-view",
        today=TODAY,
        context={"patientId": PATIENT_ID},
        drafts=DraftResources([]),
        resources={
            DataKey.PATIENT: [patient(age=10, patient_id=OTHER)],
            DataKey.CONDITIONS: [back_pain()],
        },
    )
    assert record.patient is None
    assert record.age_years is None
    assert record.other_patient_resources == 1
    assert skipped == 0
    # Age unknown counts as an adult: the child's Patient resource belongs to someone else.
    assert [f.topic for f in evaluate(record, RuleConfig())] == ["startback-screening"]


def test_the_log_line_counts_what_was_left_out(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    prefetch = chart_prefetch(
        [back_pain(), of(back_pain(), f"Patient/{OTHER}")],
        observations=[of(observation(RISK, risk="high"), f"http://x/fhir/Patient/{OTHER}")],
        questionnaire_responses=[of(high_risk_qr(), "Patient/third")],
    )
    prefetch["patient"] = patient(patient_id=OTHER)
    with caplog.at_level(logging.INFO, logger="cds_service.hooks"):
        assert topics(client, "lbp-patient-view", hook_request("patient-view", prefetch=prefetch))
    (line,) = [r for r in caplog.records if r.getMessage() == "hook call"]
    assert getattr(line, "other_patient_resources") == 4  # noqa: B009 (a log record extra)
    assert OTHER not in repr(line.__dict__)


def test_the_log_line_says_zero_when_all_data_is_the_patients(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="cds_service.hooks"):
        chart_topics(client)
    (line,) = [r for r in caplog.records if r.getMessage() == "hook call"]
    assert getattr(line, "other_patient_resources") == 0  # noqa: B009 (a log record extra)


# --- adults only --------------------------------------------------------------------------------


def birth_date_years_ago(years: int, plus_days: int = 0) -> str:
    return (TODAY.replace(year=TODAY.year - years) + timedelta(days=plus_days)).isoformat()


@pytest.mark.parametrize(
    ("birth_date", "expected"),
    [
        (birth_date_years_ago(18), ["startback-screening"]),  # 18 today
        (birth_date_years_ago(18, plus_days=1), []),  # 18 tomorrow: still 17
        (birth_date_years_ago(17), []),
        (birth_date_years_ago(5), []),
        (None, ["startback-screening"]),  # birthDate unknown: an adult
    ],
)
def test_no_card_under_18(client: TestClient, birth_date: str | None, expected: list[str]) -> None:
    prefetch = chart_prefetch([back_pain()])
    if birth_date is None:
        del prefetch["patient"]["birthDate"]
    else:
        prefetch["patient"]["birthDate"] = birth_date
    assert topics(client, "lbp-patient-view", hook_request("patient-view", prefetch=prefetch)) == (
        expected
    )


def test_no_order_card_under_18(client: TestClient) -> None:
    body = hook_request(
        "order-sign",
        prefetch=order_prefetch([back_pain()], age=17),
        draft_orders=[service_request()],
    )
    assert topics(client, "lbp-order-sign", body) == []


def test_min_age_is_a_setting(
    client_factory: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDS_RULES__MIN_AGE_YEARS", "16")
    client = client_factory()
    prefetch = chart_prefetch([back_pain()], age=17)
    assert topics(client, "lbp-patient-view", hook_request("patient-view", prefetch=prefetch)) == [
        "startback-screening"
    ]
