"""Back-pain context and episode onset (RULES.md), on the PatientRecord."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.logic.fhir import Condition, ServiceRequest
from cds_service.logic.record import PatientRecord
from tests.factories import (
    ICD10CM,
    SNOMED,
    TODAY,
    back_pain,
    concept,
    condition,
    days_ago,
    service_request,
)


def record(
    conditions: list[dict[str, Any]], orders: list[dict[str, Any]] | None = None
) -> PatientRecord:
    drafts = tuple(ServiceRequest.model_validate(o) for o in orders or [])
    return PatientRecord(
        today=TODAY,
        hook="order-sign",
        conditions=tuple(Condition.model_validate(c) for c in conditions),
        draft_orders=drafts,
        orders_to_check=drafts,
    )


@pytest.mark.parametrize(
    ("system", "code", "text"),
    [
        (SNOMED, "279039007", None),
        (SNOMED, "278860009", None),
        (SNOMED, "161891005", None),
        (SNOMED, "134407002", None),
        (SNOMED, "161894002", None),
        (SNOMED, "9121000119106", None),
        (ICD10CM, "M54.50", None),
        (ICD10CM, "M54.5", None),
        (ICD10CM, "M5416", None),
        (ICD10CM, "M51.36", None),
        (ICD10CM, "m54.42", None),
        ("urn:oid:2.16.840.1.113883.6.90", "M54.59", None),
        ("http://hl7.org/fhir/sid/icd-10", "M54.5", None),
        (ICD10CM, "S33.5XXD", None),
        (ICD10CM, "S39.012S", None),
        (ICD10CM, "M48.061", None),
        (None, None, "Acute low back pain"),
        ("http://example.org/local", "LBP1", "Lumbago"),
    ],
)
def test_back_pain_codes_give_context(
    system: str | None, code: str | None, text: str | None
) -> None:
    assert record([condition(system, code, text=text)]).has_back_pain_context


@pytest.mark.parametrize(
    ("system", "code", "text"),
    [
        (ICD10CM, "M54.2", "Cervicalgia"),
        (ICD10CM, "M54.6", "Pain in thoracic spine"),
        (SNOMED, "1121000119107", "Chronic neck pain"),
        (ICD10CM, "M54.12", None),
        (ICD10CM, "M47.812", None),
        (ICD10CM, "M48.02", None),
        (ICD10CM, "M51.34", None),
    ],
)
def test_other_pain_gives_no_context(system: str, code: str, text: str | None) -> None:
    assert not record([condition(system, code, text=text)]).has_back_pain_context


@pytest.mark.parametrize("status", ["active", "recurrence", "relapse"])
def test_active_statuses_count(status: str) -> None:
    assert record([back_pain(clinical_status=status)]).has_back_pain_context


@pytest.mark.parametrize("status", ["resolved", "inactive", "remission"])
def test_inactive_statuses_do_not_count(status: str) -> None:
    assert not record([back_pain(clinical_status=status)]).has_back_pain_context


@pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
def test_refuted_or_entered_in_error_never_counts(verification: str) -> None:
    assert not record([back_pain(verification_status=verification)]).has_back_pain_context


def test_missing_clinical_status_without_abatement_counts_as_current() -> None:
    assert record([back_pain(clinical_status=None)]).has_back_pain_context
    abated = back_pain(clinical_status=None)
    abated["abatementDateTime"] = days_ago(3)
    assert not record([abated]).has_back_pain_context


def test_draft_order_reason_code_gives_context() -> None:
    order = service_request(reason=concept(SNOMED, "279039007"))
    assert record([], [order]).has_back_pain_context


def test_draft_order_reason_reference_gives_context() -> None:
    lbp = back_pain(clinical_status="resolved", condition_id="lbp-old")
    order = service_request()
    order["reasonReference"] = [{"reference": "Condition/lbp-old"}]
    assert record([lbp], [order]).has_back_pain_context


def test_contained_reason_reference_gives_context() -> None:
    order = service_request()
    order["contained"] = [
        {"resourceType": "Condition", "id": "r1", "code": concept(ICD10CM, "M54.50")}
    ]
    order["reasonReference"] = [{"reference": "#r1"}]
    assert record([], [order]).has_back_pain_context


def test_episode_onset_is_the_earliest_active_onset() -> None:
    r = record(
        [
            back_pain(onset_days_ago=10),
            back_pain(onset_days_ago=30),
            back_pain(onset_days_ago=90, clinical_status="resolved"),
        ]
    )
    assert r.episode_days == 30


def test_episode_onset_falls_back_to_period_then_recorded_date() -> None:
    by_period = back_pain(onset_days_ago=None)
    by_period["onsetPeriod"] = {"start": days_ago(20)}
    assert record([by_period]).episode_days == 20
    by_recorded = back_pain(onset_days_ago=None, recorded_days_ago=15)
    assert record([by_recorded]).episode_days == 15


def test_unknown_onset_is_none() -> None:
    r = record([back_pain(onset_days_ago=None)])
    assert r.has_back_pain_context
    assert r.episode_onset is None
