"""The red-flag evaluator (RULES.md "Red flags"): every group in and out of its window, both code systems."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from cds_service.logic.config import RuleConfig
from cds_service.logic.fhir import (
    Condition,
    Medication,
    MedicationRequest,
    Observation,
    Procedure,
    Quantity,
    ServiceRequest,
)
from cds_service.logic.medication_orders import medication_orders
from cds_service.logic.record import PatientRecord
from cds_service.logic.red_flags import (
    RedFlag,
    RedFlagReport,
    record_red_flags,
    temperature_celsius,
    with_order_reason,
)
from tests.factories import (
    CPT,
    ICD10CM,
    LOINC,
    RXNORM,
    SNOMED,
    TODAY,
    concept,
    condition,
    days_ago,
    next_id,
    service_request,
)

CONFIG = RuleConfig()


def make_record(
    *,
    conditions: Sequence[dict[str, Any]] = (),
    observations: Sequence[dict[str, Any]] = (),
    medication_requests: Sequence[dict[str, Any]] = (),
    medications: Sequence[dict[str, Any]] = (),
    procedures: Sequence[dict[str, Any]] = (),
) -> PatientRecord:
    meds = [Medication.model_validate(m) for m in medications]
    return PatientRecord(
        today=TODAY,
        hook="order-sign",
        conditions=tuple(Condition.model_validate(c) for c in conditions),
        observations=tuple(Observation.model_validate(o) for o in observations),
        medication_requests=tuple(MedicationRequest.model_validate(m) for m in medication_requests),
        medications={m.id: m for m in meds if m.id},
        procedures=tuple(Procedure.model_validate(p) for p in procedures),
    )


def report_for(record: PatientRecord, order: dict[str, Any] | None = None) -> RedFlagReport:
    """The record's red flags, plus those in a draft order's stated reason, as the rules ask."""
    report = record_red_flags(record, CONFIG, medication_orders(record))
    if order is None:
        return report
    return with_order_reason(report, ServiceRequest.model_validate(order), record)


def flags_in(record: PatientRecord, order: dict[str, Any] | None = None) -> set[RedFlag]:
    return set(report_for(record, order).flags)


def temperature(
    value: float, unit: str | None = "Cel", *, days: int = 1, status: str = "final", code="8310-5"
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Observation",
        "id": next_id("temp"),
        "status": status,
        "code": concept(LOINC, code, display="Body temperature"),
        "effectiveDateTime": days_ago(days),
        "valueQuantity": {"value": value},
    }
    if unit is not None:
        out["valueQuantity"].update({"unit": unit, "system": "http://unitsofmeasure.org"})
        out["valueQuantity"]["code"] = unit
    return out


def prednisone(
    *, authored_days_ago: int, supply_days: int, status: str = "active", repeats: int = 0
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": next_id("mr"),
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": concept(
            RXNORM, "312615", display="prednisone 20 MG Oral Tablet"
        ),
        "authoredOn": days_ago(authored_days_ago),
        "dispenseRequest": {
            "numberOfRepeatsAllowed": repeats,
            "expectedSupplyDuration": {"value": supply_days, "unit": "days", "code": "d"},
        },
    }


def procedure(system: str | None, code: str | None, text: str, status: str = "completed"):
    return {
        "resourceType": "Procedure",
        "id": next_id("proc"),
        "status": status,
        "code": concept(system, code, text),
        "performedDateTime": days_ago(3000),
    }


# (flag, system, code, window_days or None): a code of each group in each code system.
GROUP_CODES = [
    (RedFlag.CANCER, ICD10CM, "C79.51", None),
    (RedFlag.CANCER, ICD10CM, "Z85.3", None),
    (RedFlag.CANCER, SNOMED, "363346000", None),
    (RedFlag.SPINAL_INFECTION, ICD10CM, "M46.26", 365),
    (RedFlag.SPINAL_INFECTION, SNOMED, "63627007", 365),
    (RedFlag.FEVER, ICD10CM, "R50.9", 14),
    (RedFlag.FEVER, SNOMED, "386661006", 14),
    (RedFlag.IV_DRUG_USE, ICD10CM, "F11.20", 365),
    (RedFlag.IV_DRUG_USE, ICD10CM, "F14.10", 365),
    (RedFlag.IV_DRUG_USE, SNOMED, "228388006", 365),
    (RedFlag.IMMUNOSUPPRESSION, ICD10CM, "Z94.0", None),
    (RedFlag.IMMUNOSUPPRESSION, ICD10CM, "Z79.69", None),
    (RedFlag.IMMUNOSUPPRESSION, SNOMED, "86406008", None),
    (RedFlag.CORTICOSTEROIDS, ICD10CM, "Z79.52", 365),
    (RedFlag.OSTEOPOROSIS, ICD10CM, "M81.0", None),
    (RedFlag.OSTEOPOROSIS, ICD10CM, "M80.08XA", None),
    (RedFlag.OSTEOPOROSIS, SNOMED, "64859006", None),
    (RedFlag.TRAUMA, ICD10CM, "S32.010A", 90),
    (RedFlag.TRAUMA, ICD10CM, "S34.3XXA", 90),
    (RedFlag.TRAUMA, SNOMED, "866087009", 90),
    (RedFlag.CAUDA_EQUINA, ICD10CM, "G83.4", 365),
    (RedFlag.CAUDA_EQUINA, ICD10CM, "R33.9", 365),
    (RedFlag.CAUDA_EQUINA, SNOMED, "192970008", 365),
    (RedFlag.CAUDA_EQUINA, SNOMED, "449813001", 365),
    (RedFlag.NEURO_DEFICIT, ICD10CM, "M21.372", 365),
    (RedFlag.NEURO_DEFICIT, ICD10CM, "G83.11", 365),
    (RedFlag.NEURO_DEFICIT, SNOMED, "23042008", 365),
    (RedFlag.WEIGHT_LOSS, ICD10CM, "R63.4", 365),
    (RedFlag.WEIGHT_LOSS, SNOMED, "422868009", 365),
]


@pytest.mark.parametrize(("flag", "system", "code", "window"), GROUP_CODES)
def test_resolved_condition_counts_inside_its_window_only(flag, system, code, window) -> None:
    if window is None:  # "any time": a resolved condition from 10 years ago still counts
        old = condition(system, code, onset_days_ago=3650, clinical_status="resolved")
        assert flag in flags_in(make_record(conditions=[old]))
        return
    inside = condition(system, code, onset_days_ago=window, clinical_status="resolved")
    outside = condition(system, code, onset_days_ago=window + 1, clinical_status="resolved")
    assert flag in flags_in(make_record(conditions=[inside]))
    assert flag not in flags_in(make_record(conditions=[outside]))


@pytest.mark.parametrize(("flag", "system", "code", "window"), GROUP_CODES)
def test_active_condition_counts_whatever_its_onset(flag, system, code, window) -> None:
    del window  # an active Condition counts in every group, windowed or not
    for status in ("active", "recurrence", "relapse"):
        old = condition(system, code, onset_days_ago=3650, clinical_status=status)
        assert flag in flags_in(make_record(conditions=[old]))


@pytest.mark.parametrize(("flag", "system", "code", "window"), GROUP_CODES)
def test_refuted_or_entered_in_error_never_counts(flag, system, code, window) -> None:
    del window
    for verification in ("refuted", "entered-in-error"):
        c = condition(system, code, onset_days_ago=1, verification_status=verification)
        assert flag not in flags_in(make_record(conditions=[c]))
    # A suspected diagnosis is a reason to image: unconfirmed and provisional do count.
    suspected = condition(system, code, onset_days_ago=1, verification_status="unconfirmed")
    assert flag in flags_in(make_record(conditions=[suspected]))


def test_window_falls_back_to_onset_period_then_recorded_date() -> None:
    by_period = condition(ICD10CM, "S32.010A", onset_days_ago=None, clinical_status="resolved")
    by_period["onsetPeriod"] = {"start": days_ago(30)}
    by_recorded = condition(
        ICD10CM, "S32.010A", onset_days_ago=None, clinical_status="inactive", recorded_days_ago=30
    )
    old_recorded = condition(
        ICD10CM, "S32.010A", onset_days_ago=None, clinical_status="inactive", recorded_days_ago=91
    )
    assert RedFlag.TRAUMA in flags_in(make_record(conditions=[by_period]))
    assert RedFlag.TRAUMA in flags_in(make_record(conditions=[by_recorded]))
    assert RedFlag.TRAUMA not in flags_in(make_record(conditions=[old_recorded]))


def test_condition_without_clinical_status_is_judged_by_onset() -> None:
    old = condition(ICD10CM, "S32.010A", onset_days_ago=400, clinical_status=None)
    recent = condition(ICD10CM, "S32.010A", onset_days_ago=20, clinical_status=None)
    undated = condition(ICD10CM, "S32.010A", onset_days_ago=None, clinical_status=None)
    assert RedFlag.TRAUMA not in flags_in(make_record(conditions=[old]))
    assert RedFlag.TRAUMA in flags_in(make_record(conditions=[recent]))
    assert RedFlag.TRAUMA in flags_in(make_record(conditions=[undated]))


@pytest.mark.parametrize(
    ("system", "code"),
    [
        (ICD10CM, "F10.20"),  # alcohol dependence is not IV drug use
        (SNOMED, "413096007"),  # Never injecting drug user
        (SNOMED, "707848009"),  # Patient denies drug use
        (ICD10CM, "E43"),  # malnutrition is not unexplained weight loss
        (SNOMED, "89362005"),  # "Weight loss", not said to be unexplained
        (ICD10CM, "M54.50"),  # low back pain itself
        (ICD10CM, "M79.1"),  # myalgia
        (SNOMED, "38341003"),  # hypertension
        (ICD10CM, "Z87.891"),  # history of nicotine dependence
    ],
)
def test_codes_outside_every_group_raise_no_flag(system: str, code: str) -> None:
    c = condition(system, code, onset_days_ago=5)
    assert flags_in(make_record(conditions=[c])) == set()


def test_hit_names_its_evidence_and_source() -> None:
    c = condition(ICD10CM, "R33.9", onset_days_ago=5, condition_id="ret-1")
    c["code"]["coding"][0]["display"] = "Retention of urine, unspecified"
    report = report_for(make_record(conditions=[c]))
    [hit] = report.found
    assert (hit.flag, hit.evidence, hit.source, hit.on) == (
        RedFlag.CAUDA_EQUINA,
        "Retention of urine, unspecified",
        "Condition/ret-1",
        TODAY - timedelta(days=5),
    )
    assert len(report.checked) == 12 and report.present


# --- fever from body temperature Observations ---


@pytest.mark.parametrize(
    ("value", "unit", "fever"),
    [
        (38.0, "Cel", True),
        (37.9, "Cel", False),
        (38.2, "°C", True),
        (38.2, "C", True),
        (100.4, "[degF]", True),
        (100.3, "[degF]", False),
        (101.0, "°F", True),
        (101.0, "F", True),
        (38.5, None, True),  # no unit: a Celsius reading
        (101.5, None, True),  # no unit: a Fahrenheit reading
        (99.0, None, False),
        (38.5, "mmHg", False),  # not a temperature unit: ignored
    ],
)
def test_fever_threshold_is_unit_aware(value: float, unit: str | None, fever: bool) -> None:
    record = make_record(observations=[temperature(value, unit)])
    assert (RedFlag.FEVER in flags_in(record)) is fever


def test_fever_observation_window_is_14_days() -> None:
    assert RedFlag.FEVER in flags_in(make_record(observations=[temperature(39.0, days=14)]))
    assert RedFlag.FEVER not in flags_in(make_record(observations=[temperature(39.0, days=15)]))


def test_fever_observation_date_falls_back_to_period_then_issued() -> None:
    by_period = temperature(39.0)
    del by_period["effectiveDateTime"]
    by_period["effectivePeriod"] = {"start": days_ago(3)}
    by_issued = temperature(39.0)
    del by_issued["effectiveDateTime"]
    by_issued["issued"] = f"{days_ago(3)}T10:00:00Z"
    stale_issued = temperature(39.0)
    del stale_issued["effectiveDateTime"]
    stale_issued["issued"] = f"{days_ago(20)}T10:00:00Z"
    assert RedFlag.FEVER in flags_in(make_record(observations=[by_period]))
    assert RedFlag.FEVER in flags_in(make_record(observations=[by_issued]))
    assert RedFlag.FEVER not in flags_in(make_record(observations=[stale_issued]))


def test_fever_ignores_other_codes_and_entered_in_error() -> None:
    heart_rate = temperature(39.0, code="8867-4")
    wrong = temperature(39.0, status="entered-in-error")
    oral = temperature(39.0, code="8331-1")
    assert flags_in(make_record(observations=[heart_rate, wrong])) == set()
    assert RedFlag.FEVER in flags_in(make_record(observations=[oral]))


def test_temperature_conversion() -> None:
    assert temperature_celsius(Quantity(value=212, code="[degF]")) == pytest.approx(100.0)
    assert temperature_celsius(Quantity(value=37.0, unit="Cel")) == 37.0
    assert temperature_celsius(None) is None


# --- prolonged corticosteroids from MedicationRequests ---


def test_oral_steroid_courses_add_up_to_90_days() -> None:
    assert RedFlag.CORTICOSTEROIDS in flags_in(
        make_record(medication_requests=[prednisone(authored_days_ago=100, supply_days=90)])
    )
    assert RedFlag.CORTICOSTEROIDS not in flags_in(
        make_record(medication_requests=[prednisone(authored_days_ago=100, supply_days=89)])
    )
    two_courses = [
        prednisone(authored_days_ago=300, supply_days=45, status="completed"),
        prednisone(authored_days_ago=100, supply_days=45, status="stopped"),
    ]
    assert RedFlag.CORTICOSTEROIDS in flags_in(make_record(medication_requests=two_courses))
    # 30 days x (1 + 2 repeats) is a 90-day intended course.
    refills = [prednisone(authored_days_ago=20, supply_days=30, repeats=2)]
    assert RedFlag.CORTICOSTEROIDS in flags_in(make_record(medication_requests=refills))


def test_steroid_course_is_clipped_to_the_last_365_days() -> None:
    # Began 400 days ago for 100 days: only the last 65 days of it lie in the window.
    clipped = [prednisone(authored_days_ago=400, supply_days=100)]
    assert RedFlag.CORTICOSTEROIDS not in flags_in(make_record(medication_requests=clipped))
    # Began 390 days ago for 115 days: 90 days in the window.
    enough = [prednisone(authored_days_ago=390, supply_days=115)]
    assert RedFlag.CORTICOSTEROIDS in flags_in(make_record(medication_requests=enough))


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled", "draft"])
def test_steroid_orders_in_error_cancelled_or_draft_do_not_count(status: str) -> None:
    record = make_record(
        medication_requests=[prednisone(authored_days_ago=100, supply_days=120, status=status)]
    )
    assert RedFlag.CORTICOSTEROIDS not in flags_in(record)


def test_steroid_by_medication_reference_and_validity_start() -> None:
    order = prednisone(authored_days_ago=100, supply_days=120)
    del order["medicationCodeableConcept"]
    del order["authoredOn"]
    order["medicationReference"] = {"reference": "Medication/pred-1"}
    order["dispenseRequest"]["validityPeriod"] = {"start": days_ago(100)}
    medication = {
        "resourceType": "Medication",
        "id": "pred-1",
        "code": concept(RXNORM, "312617", display="prednisone 5 MG Oral Tablet"),
    }
    record = make_record(medication_requests=[order], medications=[medication])
    assert RedFlag.CORTICOSTEROIDS in flags_in(record)


def test_steroids_not_taken_by_mouth_do_not_count() -> None:
    drops = prednisone(authored_days_ago=100, supply_days=120)
    drops["medicationCodeableConcept"] = {"text": "prednisolone acetate 1% ophthalmic suspension"}
    tablets_by_text = prednisone(authored_days_ago=100, supply_days=120)
    tablets_by_text["medicationCodeableConcept"] = {"text": "prednisone 20 mg tablets"}
    assert RedFlag.CORTICOSTEROIDS not in flags_in(make_record(medication_requests=[drops]))
    assert RedFlag.CORTICOSTEROIDS in flags_in(make_record(medication_requests=[tablets_by_text]))


# --- prior lumbar surgery from Procedures ---


@pytest.mark.parametrize(
    ("system", "code", "text", "status", "expected"),
    [
        (CPT, "63030", "Laminotomy", "completed", True),
        (CPT, "22612", "Arthrodesis", "completed", True),
        (None, None, "Posterior lumbar interbody fusion L4-L5", "completed", True),
        (SNOMED, "999999", "Decompression of lumbar spine", "completed", True),
        (CPT, "63030", "Laminotomy", "not-done", False),
        (CPT, "63030", "Laminotomy", "preparation", False),
        (None, None, "Anterior cervical discectomy and fusion", "completed", False),
        (CPT, "29881", "Knee arthroscopy", "completed", False),
    ],
)
def test_prior_lumbar_surgery(system, code, text, status, expected: bool) -> None:
    record = make_record(procedures=[procedure(system, code, text, status)])
    assert (RedFlag.PRIOR_LUMBAR_SURGERY in flags_in(record)) is expected


# --- the draft order's own reason ---


def test_red_flag_in_the_orders_reason_code() -> None:
    record = make_record()
    flagged = service_request(reason=concept(ICD10CM, "G83.4"))
    plain = service_request(reason=concept(ICD10CM, "M54.50"))
    surgery = service_request(reason={"text": "Back pain after lumbar fusion"})
    # G83.4 is also in the VSAC Neurologic impairment set (the CMS166 exclusion).
    assert flags_in(record, flagged) == {RedFlag.CAUDA_EQUINA, RedFlag.NEURO_DEFICIT}
    assert flags_in(record, plain) == set()
    assert flags_in(record, surgery) == {RedFlag.PRIOR_LUMBAR_SURGERY}


def test_red_flag_in_the_orders_reason_reference_ignores_windows() -> None:
    old_fracture = condition(
        ICD10CM, "S32.010A", onset_days_ago=400, clinical_status="resolved", condition_id="fx-1"
    )
    record = make_record(conditions=[old_fracture])
    assert flags_in(record) == set()
    order = service_request()
    order["reasonReference"] = [{"reference": "Condition/fx-1"}]
    assert flags_in(record, order) == {RedFlag.TRAUMA}
    contained = service_request()
    contained["contained"] = [
        {
            "resourceType": "Condition",
            "id": "c1",
            "code": concept(SNOMED, "363346000"),
        }
    ]
    contained["reasonReference"] = [{"reference": "#c1"}]
    assert flags_in(make_record(), contained) == {RedFlag.CANCER}
