"""RULES.md v2 opioid-order "Not for patients the CDC 2022 guideline excludes": no opioid card with
sickle cell disease (any clinicalStatus) or active cancer (active / recurrence / relapse); never
for a refuted or entered-in-error Condition. Cancer stays an imaging red flag in any status."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests import medication_factories as mf
from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import (
    ICD10CM,
    SNOMED,
    back_pain,
    condition,
    hook_request,
    order_prefetch,
    service_request,
)

SICKLE_CELL = (ICD10CM, "D57.00")  # Hb-SS disease with crisis, unspecified
SICKLE_CELL_SNOMED = (SNOMED, "127040003")  # Sickle cell anemia
BREAST_CANCER = (ICD10CM, "C50.911")


def topics(
    client: TestClient, conditions: list[dict[str, Any]], drafts: list[dict[str, Any]]
) -> list[str]:
    body = hook_request(
        "order-sign", prefetch=order_prefetch([back_pain(), *conditions]), draft_orders=drafts
    )
    response = call(client, "lbp-order-sign", body)
    assert response.status_code == 200, response.text
    assert_response_contract(response.json(), "order-sign")
    return [c["source"]["topic"]["code"] for c in response.json()["cards"]]


def opioid_draft() -> dict[str, Any]:
    return mf.medication_request(mf.OXYCODONE_5, quantity=12)


def has_opioid_card(client: TestClient, extra: dict[str, Any]) -> bool:
    return "opioid-order" in topics(client, [extra], [opioid_draft()])


def test_the_opioid_card_fires_without_an_exclusion(client: TestClient) -> None:
    assert topics(client, [], [opioid_draft()]) == ["opioid-order"]


@pytest.mark.parametrize("status", ["active", "recurrence", "inactive", "resolved", "remission"])
@pytest.mark.parametrize("code", [SICKLE_CELL, SICKLE_CELL_SNOMED], ids=["icd10cm", "snomed"])
def test_sickle_cell_in_any_clinical_status_gives_no_opioid_card(
    client: TestClient, code: tuple[str, str], status: str
) -> None:
    assert not has_opioid_card(client, condition(*code, clinical_status=status))


@pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
def test_refuted_sickle_cell_does_not_exclude(client: TestClient, verification: str) -> None:
    refuted = condition(*SICKLE_CELL, verification_status=verification)
    assert has_opioid_card(client, refuted)


@pytest.mark.parametrize(
    ("status", "excluded"),
    [
        ("active", True),
        ("recurrence", True),
        ("relapse", True),
        ("resolved", False),
        ("remission", False),
        ("inactive", False),
    ],
)
def test_active_cancer_gives_no_opioid_card(
    client: TestClient, status: str, excluded: bool
) -> None:
    cancer = condition(*BREAST_CANCER, clinical_status=status, onset_days_ago=400)
    assert has_opioid_card(client, cancer) is not excluded


def test_refuted_active_cancer_does_not_exclude(client: TestClient) -> None:
    cancer = condition(*BREAST_CANCER, verification_status="refuted")
    assert has_opioid_card(client, cancer)


@pytest.mark.parametrize("status", ["active", "resolved"])
def test_cancer_stays_an_imaging_red_flag_in_any_status(client: TestClient, status: str) -> None:
    cancer = condition(*BREAST_CANCER, clinical_status=status, onset_days_ago=400)
    assert topics(client, [], [service_request()]) == ["imaging-without-red-flags"]
    assert topics(client, [cancer], [service_request()]) == []


def test_only_the_opioid_card_is_silenced(client: TestClient) -> None:
    relaxant = mf.medication_request(mf.CYCLOBENZAPRINE_10, supply_days=30)
    found = topics(client, [condition(*SICKLE_CELL)], [opioid_draft(), relaxant])
    assert found == ["muscle-relaxant-duration"]
