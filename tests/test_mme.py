"""MME/day (CDC 2022) and days supply against figures computed by hand."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cds_service.logic.fhir import Medication, MedicationRequest
from cds_service.logic.medications import identify
from cds_service.logic.mme import order_mme
from cds_service.logic.record import PatientRecord
from cds_service.logic.supply import days_supply
from tests import medication_factories as mf
from tests.factories import TODAY


def record(medications: list[dict[str, Any]] | None = None) -> PatientRecord:
    meds = {m["id"]: Medication.model_validate(m) for m in medications or []}
    return PatientRecord(today=TODAY, hook="order-sign", medications=meds)


def mme_of(request: dict[str, Any], medications: list[dict[str, Any]] | None = None):
    view = identify(MedicationRequest.model_validate(request), record(medications))
    return order_mme(view, None, active=False)


@pytest.mark.parametrize(
    ("product", "dosing", "expected"),
    [
        # oxycodone 5 mg, 1 tablet every 6 h: 5 x 4 x 1.5
        (mf.OXYCODONE_5, {"dose": 1, "every_hours": 6}, 30.0),
        # hydrocodone 7.5 mg / acetaminophen, 2 tablets every 6 h: 7.5 x 2 x 4 x 1
        (mf.HYDROCODONE_APAP_7_5, {"dose": 2, "every_hours": 6}, 60.0),
        # morphine ER 15 mg every 12 h: 15 x 2 x 1
        (mf.MORPHINE_ER_15, {"dose": 1, "every_hours": 12}, 30.0),
        # tramadol 50 mg, 1-2 tablets every 6 h (upper bound 2): 100 x 4 x 0.2
        (mf.TRAMADOL_50, {"dose": 1, "dose_high": 2, "every_hours": 6}, 80.0),
        # tapentadol 50 mg every 6 h: 50 x 4 x 0.4
        (mf.TAPENTADOL_50, {"dose": 1, "every_hours": 6}, 80.0),
        # hydromorphone 2 mg every 4 h: 2 x 6 x 5
        (mf.HYDROMORPHONE_2, {"dose": 1, "every_hours": 4}, 60.0),
        # codeine 30 mg / acetaminophen, 2 tablets every 4 h: 60 x 6 x 0.15
        (mf.CODEINE_APAP_30, {"dose": 2, "every_hours": 4}, 54.0),
        # methadone 10 mg three times a day: 30 x 4.7
        (mf.METHADONE_10, {"dose": 1, "per_day": 3}, 141.0),
        # fentanyl 25 mcg/hr patch changed every 72 h: 25 x 2.4
        (mf.FENTANYL_PATCH_25, {"dose": 1, "dose_unit": "patch", "every_hours": 72}, 60.0),
        # oxymorphone 10 mg every 12 h: 10 x 2 x 3
        (mf.OXYMORPHONE_10, {"dose": 1, "every_hours": 12}, 60.0),
        # morphine 2 mg/mL solution, 5 mL every 4 h: 10 x 6 x 1
        (mf.MORPHINE_SOLUTION_2, {"dose": 5, "dose_unit": "mL", "every_hours": 4}, 60.0),
        # dose written in mg: oxycodone 10 mg every 4 h: 10 x 6 x 1.5
        (mf.OXYCODONE_5, {"dose": 10, "dose_unit": "mg", "every_hours": 4}, 90.0),
    ],
)
def test_mme_per_day_matches_hand_computed_figures(
    product: tuple[str, str], dosing: dict[str, Any], expected: float
) -> None:
    result = mme_of(mf.medication_request(product, **dosing))
    assert result.reason is None
    assert result.mme_per_day == pytest.approx(expected)


def test_as_needed_frequency_range_counts_at_its_most_frequent() -> None:
    request = mf.medication_request(mf.OXYCODONE_5, every_hours=None)
    request["dosageInstruction"][0]["timing"] = {
        "repeat": {"frequency": 1, "period": 4, "periodMax": 6, "periodUnit": "h"}
    }
    request["dosageInstruction"][0]["asNeededBoolean"] = True
    assert mme_of(request).mme_per_day == 45.0  # 5 mg x 6/day x 1.5


def test_strength_from_a_contained_medication_ingredient() -> None:
    med = mf.medication(
        "med-oxy",
        None,
        ingredients=[
            mf.ingredient("oxycodone hydrochloride", "7804", 10),
            mf.ingredient("acetaminophen", "161", 325),
        ],
    )
    request = mf.medication_request(None, medication_reference="#med-oxy", contained=[med])
    request["contained"][0]["id"] = "med-oxy"
    result = mme_of(request)
    assert result.mme_per_day == 60.0  # 10 mg x 4/day x 1.5


def test_strength_from_a_medication_in_the_record() -> None:
    med = mf.medication("hydro-1", mf.HYDROMORPHONE_2)
    request = mf.medication_request(None, medication_reference="Medication/hydro-1", every_hours=4)
    assert mme_of(request, [med]).mme_per_day == 60.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("oxyCODONE-acetaminophen 5-325 MG per tablet", 30.0),  # Epic style, 5 mg x 4 x 1.5
        ("HYDROcodone-acetaminophen 10-325 mg tablet", 40.0),  # 10 x 4 x 1
        ("Oxycodone 5mg tablet", 30.0),
    ],
)
def test_strength_parsed_from_the_name_when_there_is_no_code(text: str, expected: float) -> None:
    assert mme_of(mf.medication_request(None, text=text)).mme_per_day == expected


def test_fentanyl_patch_written_as_a_rate_in_text() -> None:
    request = mf.medication_request(
        None, text="fentanyl 50 mcg/hr transdermal patch", dose_unit="patch", every_hours=72
    )
    assert mme_of(request).mme_per_day == 120.0  # 50 x 2.4


@pytest.mark.parametrize(
    ("request_fields", "reason_part"),
    [
        ({"product": mf.MEPERIDINE_50}, "no MME conversion factor for meperidine"),
        ({"product": mf.OXYCODONE_5, "dose": None}, "no usable dose"),
        ({"product": mf.OXYCODONE_5, "every_hours": None}, "no usable frequency"),
        ({"product": mf.BUPRENORPHINE_NALOXONE_FILM}, "buprenorphine"),
        (
            {"product": ("1053654", "fentanyl 0.2 MG Sublingual Tablet [Abstral]")},
            "only for transdermal patches",
        ),
        ({"product": mf.MORPHINE_SOLUTION_2, "dose": 2}, "strength per tablet is not known"),
    ],
)
def test_cannot_compute_says_why(request_fields: dict[str, Any], reason_part: str) -> None:
    product = request_fields.pop("product")
    result = mme_of(mf.medication_request(product, **request_fields))
    assert result.mme_per_day is None
    assert result.reason is not None
    assert reason_part in result.reason


@pytest.mark.parametrize(
    ("fields", "days", "basis"),
    [
        ({"supply_days": 7}, 7, "expected supply duration"),
        ({"supply_days": 1, "quantity": 999}, 1, "expected supply duration"),
        # 40 tablets, 2 every 6 h (8 a day): 5 days
        ({"dose": 2, "quantity": 40}, 5, "quantity and dose"),
        # 60 tablets of 5 mg, 10 mg every 6 h (8 tablets a day): 7.5 days
        ({"dose": 10, "dose_unit": "mg", "quantity": 60}, 7.5, "quantity and dose"),
    ],
)
def test_days_supply(fields: dict[str, Any], days: float, basis: str) -> None:
    view = identify(
        MedicationRequest.model_validate(mf.medication_request(mf.OXYCODONE_5, **fields)), record()
    )
    supply = days_supply(view)
    assert supply is not None
    assert supply.days == pytest.approx(days)
    assert supply.basis == basis


def test_days_supply_ignores_the_validity_period() -> None:
    request = mf.medication_request(mf.OXYCODONE_5)
    request["dispenseRequest"] = {"validityPeriod": {"start": "2026-11-22", "end": "2026-12-22"}}
    view = identify(MedicationRequest.model_validate(request), record())
    assert days_supply(view) is None


def test_days_supply_unknown_when_units_do_not_match() -> None:
    request = mf.medication_request(mf.OXYCODONE_5, quantity=100, quantity_unit="mL")
    view = identify(MedicationRequest.model_validate(request), record())
    assert days_supply(view) is None


# Several dosage lines (RULES.md "Doses", v2): MME/day and days supply read the same daily dose.


def _line(
    tablets: float,
    timing: dict[str, Any],
    *,
    sequence: int | None = None,
    max_dose: tuple[float, str] | None = None,
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "timing": timing,
        "doseAndRate": [{"doseQuantity": {"value": tablets, "unit": "tablet"}}],
    }
    if sequence is not None:
        line["sequence"] = sequence
    if max_dose is not None:
        line["maxDosePerPeriod"] = {
            "numerator": {"value": max_dose[0], "unit": max_dose[1]},
            "denominator": {"value": 1, "unit": "day", "code": "d"},
        }
    return line


MORNING = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "when": ["MORN"]}}
EVENING = {"code": {"coding": [{"code": "QPM"}]}}
Q6H = {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}}
Q4H = {"repeat": {"frequency": 1, "period": 4, "periodUnit": "h"}}


def _oxycodone(*lines: dict[str, Any], quantity: float | None = None) -> dict[str, Any]:
    request = mf.medication_request(mf.OXYCODONE_5, quantity=quantity)
    request["dosageInstruction"] = list(lines)
    return request


def test_two_lines_taken_together_add_up() -> None:
    """The issue's case: 2 tablets in the morning + 1 in the evening of oxycodone 5 mg is
    15 mg a day: 22.5 MME/day, not 15 (the first line alone)."""
    result = mme_of(_oxycodone(_line(2, MORNING), _line(1, EVENING)))
    assert result.mme_per_day == 22.5
    assert result.calculation == ("oxycodone 15 mg/day (10 mg x 1/day + 5 mg x 1/day) x 1.5 = 22.5")


def test_sequential_lines_count_at_the_largest_step() -> None:
    # 2 tablets every 6 h (60 MME/day), then 1 tablet every 6 h (30 MME/day).
    taper = _oxycodone(_line(2, Q6H, sequence=1), _line(1, Q6H, sequence=2))
    result = mme_of(taper)
    assert result.mme_per_day == 60.0
    assert result.calculation is not None
    assert "the largest of 2 sequential steps" in result.calculation
    # The same two lines sharing a sequence run together: 90.
    together = _oxycodone(_line(2, Q6H, sequence=1), _line(1, Q6H, sequence=1))
    assert mme_of(together).mme_per_day == 90.0


@pytest.mark.parametrize(
    ("max_dose", "expected"),
    [
        ((6, "tablet"), 45.0),  # 12 tablets a day capped at 6: 30 mg x 1.5
        ((30, "mg"), 45.0),  # the cap in mg: 30 mg x 1.5
        ((20, "tablet"), 90.0),  # higher than 12 a day: changes nothing
        ((0, "tablet"), 90.0),  # unreadable: caps nothing
    ],
)
def test_max_dose_per_period_caps_the_daily_dose(
    max_dose: tuple[float, str], expected: float
) -> None:
    # 2 tablets every 4 h: 12 tablets, 60 mg, 90 MME a day.
    result = mme_of(_oxycodone(_line(2, Q4H, max_dose=max_dose)))
    assert result.mme_per_day == expected
    assert result.calculation is not None
    assert ("capped by maxDosePerPeriod" in result.calculation) is (expected < 90)


def test_one_line_keeps_the_one_line_calculation() -> None:
    result = mme_of(_oxycodone(_line(1, Q6H)))
    assert result.calculation == "oxycodone 5 mg x 4/day x 1.5 = 30"


def test_two_patches_worn_together_add_their_rates() -> None:
    request = mf.medication_request(mf.FENTANYL_PATCH_25, dose_unit="patch", every_hours=72)
    request["dosageInstruction"].append(copy.deepcopy(request["dosageInstruction"][0]))
    result = mme_of(request)
    assert result.mme_per_day == 120.0  # (25 + 25) mcg/hr x 2.4


def test_days_supply_from_quantity_with_two_lines_taken_together() -> None:
    # 30 tablets, 2 in the morning + 1 in the evening: 10 days (the first line alone: 15).
    request = _oxycodone(_line(2, MORNING), _line(1, EVENING), quantity=30)
    supply = days_supply(identify(MedicationRequest.model_validate(request), record()))
    assert supply is not None
    assert supply.days == pytest.approx(10)
    assert supply.basis == "quantity and dose"


def test_days_supply_reads_the_capped_daily_dose() -> None:
    # 60 tablets, 2 every 4 h (12 a day) but at most 6 a day: 10 days, as MME/day counts it.
    request = _oxycodone(_line(2, Q4H, max_dose=(6, "tablet")), quantity=60)
    supply = days_supply(identify(MedicationRequest.model_validate(request), record()))
    assert supply is not None
    assert supply.days == pytest.approx(10)


def test_days_supply_of_a_taper_reads_the_largest_step() -> None:
    request = _oxycodone(_line(2, Q6H, sequence=1), _line(1, Q6H, sequence=2), quantity=40)
    supply = days_supply(identify(MedicationRequest.model_validate(request), record()))
    assert supply is not None
    assert supply.days == pytest.approx(5)  # 40 / 8 a day


def test_many_lines_keep_the_calculation_bounded() -> None:
    lines = [_line(1, MORNING) for _ in range(200)]
    result = mme_of(_oxycodone(*lines))
    assert result.mme_per_day == 1500.0  # 200 x 5 mg x 1.5
    assert result.calculation is not None
    assert "+ 196 more lines" in result.calculation
    assert len(result.calculation) < 200
