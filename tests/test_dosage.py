from __future__ import annotations

from typing import Any

import pytest

from cds_service.logic.dosage import (
    DailyDose,
    DoseNotReadable,
    daily_dose,
    dose_per_administration,
    doses_per_day,
    duration_days,
    range_note,
)
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


# Daily dose across dosage lines (RULES.md "Doses", v2): lines taken together add up, sequential
# lines count at the largest step, a lower maxDosePerPeriod caps. Amounts here are tablets.


def _line(
    tablets: float,
    per_day: float,
    *,
    sequence: int | None = None,
    max_per_day: float | None = None,
) -> dict[str, Any]:
    line = dosage(
        {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
        {"doseQuantity": {"value": tablets, "unit": "tablet"}},
    )
    if sequence is not None:
        line["sequence"] = sequence
    if max_per_day is not None:
        line["maxDosePerPeriod"] = {
            "numerator": {"value": max_per_day, "unit": "tablet"},
            "denominator": {"value": 24, "unit": "h", "code": "h"},
        }
    return line


def _tablets(dose: Quantity) -> float:
    assert dose.value is not None
    return dose.value


def _daily(*lines: dict[str, Any]) -> DailyDose:
    return daily_dose(request(dosageInstruction=list(lines)), _tablets)


def test_lines_without_sequence_run_together_and_add_up() -> None:
    # 2 tablets in the morning + 1 in the evening: 3 a day, not 2.
    daily = _daily(_line(2, 1), _line(1, 1))
    assert daily.amount == 3
    assert len(daily.lines) == 2
    assert daily.steps == 1


def test_lines_sharing_a_sequence_add_up() -> None:
    assert _daily(_line(2, 1, sequence=1), _line(1, 1, sequence=1)).amount == 3


def test_lines_with_different_sequences_follow_one_another_the_largest_counts() -> None:
    # A taper: 2 tablets 4 times a day, then 1 tablet 4 times a day.
    daily = _daily(_line(2, 4, sequence=1), _line(1, 4, sequence=2))
    assert daily.amount == 8
    assert daily.steps == 2
    # The order of the lines does not matter.
    assert _daily(_line(1, 4, sequence=2), _line(2, 4, sequence=1)).amount == 8


def test_an_unsequenced_line_runs_alongside_every_step() -> None:
    daily = _daily(_line(2, 1, sequence=1), _line(1, 1, sequence=2), _line(1, 2))
    assert daily.amount == 4  # step 1 (2) + the unsequenced line (2)


def test_a_lower_max_dose_per_period_caps_the_daily_dose() -> None:
    # 2 tablets every 4 h would be 12 a day; at most 6 a day.
    daily = _daily(_line(2, 6, max_per_day=6))
    assert daily.amount == 6
    assert daily.capped_at == 6


def test_a_higher_max_dose_per_period_changes_nothing() -> None:
    daily = _daily(_line(2, 6, max_per_day=20))
    assert daily.amount == 12
    assert daily.capped_at is None


def test_max_dose_per_period_caps_the_lines_taken_together() -> None:
    assert _daily(_line(2, 2, max_per_day=5), _line(1, 2)).amount == 5


def test_each_sequential_step_keeps_its_own_cap() -> None:
    daily = _daily(_line(2, 6, sequence=1, max_per_day=8), _line(1, 4, sequence=2))
    assert daily.amount == 8  # step 1 capped at 8, step 2 gives 4


@pytest.mark.parametrize(
    "ratio",
    [
        {"numerator": {"value": 0, "unit": "tablet"}, "denominator": {"value": 1, "code": "d"}},
        {"numerator": {"value": 4, "unit": "tablet"}, "denominator": {"value": 0, "code": "d"}},
        {"numerator": {"value": 4, "unit": "tablet"}, "denominator": {"value": 1, "code": "xyz"}},
        {"numerator": {"value": 4, "unit": "tablet"}},
        {"denominator": {"value": 1, "code": "d"}},
    ],
)
def test_an_unreadable_max_dose_per_period_caps_nothing(ratio: dict[str, Any]) -> None:
    line = _line(2, 6)
    line["maxDosePerPeriod"] = ratio
    assert _daily(line).amount == 12


def test_a_text_only_line_adds_nothing() -> None:
    assert _daily(_line(2, 1), {"text": "take with food"}).amount == 2


@pytest.mark.parametrize(
    ("second", "why"),
    [
        (dosage({"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}), "no usable dose"),
        (dosage(None, {"doseQuantity": {"value": 1, "unit": "tablet"}}), "no usable frequency"),
    ],
)
def test_a_line_without_a_dose_or_frequency_leaves_the_daily_dose_unknown(
    second: dict[str, Any], why: str
) -> None:
    with pytest.raises(DoseNotReadable, match=why):
        _daily(_line(2, 1), second)


def test_no_line_no_daily_dose() -> None:
    with pytest.raises(DoseNotReadable, match="no usable dose"):
        _daily()


def test_range_note_names_the_upper_bound() -> None:
    ranged = dosage(
        {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}},
        {
            "doseRange": {
                "low": {"value": 1, "unit": "tablet"},
                "high": {"value": 2, "unit": "tablet"},
            }
        },
    )
    assert range_note(request(dosageInstruction=[ranged])) == "1-2 tablets: 2 used"
    in_mg = dosage(
        None,
        {"doseRange": {"low": {"value": 5, "unit": "mg"}, "high": {"value": 10, "unit": "mg"}}},
    )
    assert range_note(request(dosageInstruction=[ranged, in_mg])) == (
        "1-2 tablets: 2 used; 5-10 mg: 10 used"
    )
    assert range_note(request(dosageInstruction=[_line(2, 1)])) is None


def test_a_single_object_where_r4_has_an_array_is_read_as_one_element() -> None:
    r = MedicationRequest.model_validate(
        {
            "resourceType": "MedicationRequest",
            "category": {"text": "outpatient"},
            "reasonCode": {"text": "low back pain"},
            "dosageInstruction": {
                "timing": {"repeat": {"timeOfDay": "08:00:00"}},
                "doseAndRate": {"doseQuantity": {"value": 1}},
            },
        }
    )
    assert [c.text for c in r.category] == ["outpatient"]
    assert [c.text for c in r.reasonCode] == ["low back pain"]
    [line] = r.dosageInstruction
    assert doses_per_day(line) == 1


def test_range_note_stays_bounded() -> None:
    lines = [
        dosage(None, {"doseRange": {"low": {"value": 1}, "high": {"value": n, "unit": "tablet"}}})
        for n in range(2, 52)
    ]
    note = range_note(request(dosageInstruction=lines))
    assert note == "1-2 tablets: 2 used; 1-3 tablets: 3 used; 1-4 tablets: 4 used; and 47 more"


def test_a_line_with_only_timing_bounds_adds_nothing() -> None:
    bounds_only = dosage({"repeat": {"boundsDuration": {"value": 5, "code": "d"}}})
    assert _daily(_line(2, 1), bounds_only).amount == 2
