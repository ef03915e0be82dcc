from __future__ import annotations

from typing import Any

import pytest

from cds_service.logic.dosage import dose_per_administration, doses_per_day, duration_days
from cds_service.logic.fhir import Dosage, MedicationRequest, Quantity
from cds_service.logic.medications import identify
from cds_service.logic.record import PatientRecord
from cds_service.logic.supply import Course, intended_course
from tests.factories import TODAY


def request(**fields: Any) -> MedicationRequest:
    return MedicationRequest.model_validate(
        {"resourceType": "MedicationRequest", "status": "draft", **fields}
    )


def course_length(r: MedicationRequest) -> Course | None:
    return intended_course(identify(r, PatientRecord(today=TODAY, hook="order-sign")))


def dosage(
    timing: dict[str, Any] | None = None, dose: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if timing is not None:
        out["timing"] = timing
    if dose is not None:
        out["doseAndRate"] = [dose]
    return out


@pytest.mark.parametrize(
    ("value", "unit", "days"),
    [(7, "d", 7), (2, "wk", 14), (1, "mo", 30), (48, "h", 2), (1, "a", 365), (10, "days", 10)],
)
def test_duration_units(value: float, unit: str, days: float) -> None:
    assert duration_days(Quantity(value=value, code=unit)) == pytest.approx(days)


def test_unknown_unit_is_none() -> None:
    assert duration_days(Quantity(value=3, code="fortnights")) is None


@pytest.mark.parametrize(
    ("timing", "per_day"),
    [
        ({"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}}, 4),
        ({"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}, 2),
        ({"repeat": {"frequency": 1, "frequencyMax": 2, "period": 4, "periodUnit": "h"}}, 12),
        ({"repeat": {"timeOfDay": ["08:00:00", "20:00:00"]}}, 2),
        ({"code": {"coding": [{"code": "TID"}]}}, 3),
        ({"code": {"coding": [{"code": "Q6H"}]}}, 4),
        ({"repeat": {"frequency": 1, "period": 3, "periodUnit": "d"}}, 1 / 3),
    ],
)
def test_doses_per_day(timing: dict[str, Any], per_day: float) -> None:
    assert doses_per_day(Dosage.model_validate({"timing": timing})) == pytest.approx(per_day)


def test_dose_range_takes_the_upper_bound() -> None:
    d = Dosage.model_validate(
        dosage(dose={"doseRange": {"low": {"value": 1}, "high": {"value": 2, "unit": "tablet"}}})
    )
    dose = dose_per_administration(d)
    assert dose is not None
    assert dose.value == 2


def test_course_from_expected_supply_duration_times_fills() -> None:
    r = request(
        dispenseRequest={
            "expectedSupplyDuration": {"value": 10, "code": "d"},
            "numberOfRepeatsAllowed": 2,
        }
    )
    course = course_length(r)
    assert course is not None
    assert course.days == 30


def test_a_validity_period_is_never_a_course() -> None:
    """RULES.md v2: validityPeriod is how long the prescription may be filled, not taken."""
    r = request(dispenseRequest={"validityPeriod": {"start": "2026-01-01", "end": "2026-01-23"}})
    assert course_length(r) is None
    with_supply = request(
        dispenseRequest={
            "validityPeriod": {"start": "2026-01-01", "end": "2027-01-01"},
            "expectedSupplyDuration": {"value": 10, "code": "d"},
        }
    )
    assert course_length(with_supply).days == 10  # type: ignore[union-attr]


def test_course_from_timing_bounds() -> None:
    r = request(
        dosageInstruction=[
            dosage(
                {
                    "repeat": {
                        "boundsDuration": {"value": 3, "code": "wk"},
                        "frequency": 3,
                        "period": 1,
                        "periodUnit": "d",
                    }
                }
            )
        ]
    )
    assert course_length(r).days == 21  # type: ignore[union-attr]


def test_course_from_quantity_over_daily_dose() -> None:
    r = request(
        dosageInstruction=[
            dosage(
                {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
                {"doseQuantity": {"value": 1}},
            )
        ],
        dispenseRequest={"quantity": {"value": 66}},
    )
    assert course_length(r).days == 22  # type: ignore[union-attr]


def test_course_unknown_without_any_figure() -> None:
    assert course_length(request(dosageInstruction=[{"text": "as directed"}])) is None


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        ("2026-01-01", "2026-01-15", 14.0),
        ("2026-01-01", "2026-01-01", 0.0),
        ("2026-01-15", "2026-01-01", None),
        ("2026-01-01", None, None),
    ],
)
def test_period_days(start: str, end: str | None, days: float | None) -> None:
    from cds_service.logic.dosage import period_days
    from cds_service.logic.fhir import Period

    assert period_days(Period(start=start, end=end)) == days
    assert period_days(None) is None


def test_contained_resource_by_type_and_id() -> None:
    from cds_service.logic.fhir import Condition, Medication, contained_resource

    contained: list[dict[str, Any]] = [
        {"resourceType": "Condition", "id": "a", "code": {"text": "Low back pain"}},
        {"resourceType": "Medication", "id": "a", "code": {"text": "oxycodone"}},
        {"resourceType": "Medication", "id": "bad", "code": "not a concept"},
    ]
    medication = contained_resource("#a", contained, Medication)
    assert medication is not None
    assert medication.code is not None
    assert medication.code.text == "oxycodone"
    assert contained_resource("#bad", contained, Medication) is None
    assert contained_resource("Medication/a", contained, Medication) is None
    assert contained_resource("#missing", contained, Condition) is None
