"""Degenerate doses (RULES.md "Doses", v2): a period, frequency or dose of zero or less, or a
result above 10,000 MME/day, gives "cannot be computed" with the reason; never `inf` or `nan`."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.logic.config import RuleConfig
from cds_service.logic.dosage import doses_per_day, implausible_reason, range_note
from cds_service.logic.fhir import Dosage, MedicationRequest
from cds_service.logic.medications import identify
from cds_service.logic.mme import order_mme
from cds_service.logic.record import PatientRecord
from cds_service.logic.supply import days_supply, intended_course
from tests import medication_factories as mf
from tests.conftest import call
from tests.factories import TODAY, back_pain, hook_request, order_prefetch

NOT_A_NUMBER = re.compile(r"\b(inf|infinity|nan)\b", re.IGNORECASE)


def _mme(request: dict[str, Any], config: RuleConfig | None = None) -> Any:
    record = PatientRecord(today=TODAY, hook="order-sign")
    view = identify(MedicationRequest.model_validate(request), record)
    return order_mme(view, None, active=False, config=config or RuleConfig())


def _oxycodone(repeat: dict[str, Any], dose: float = 1, **extra: Any) -> dict[str, Any]:
    draft = mf.medication_request(mf.OXYCODONE_5, dose=dose, quantity=20, request_id="oxy-odd")
    draft["dosageInstruction"][0]["timing"] = {"repeat": repeat}
    draft.update(extra)
    return draft


CASES = {
    "period-0": (_oxycodone({"frequency": 1, "period": 0, "periodUnit": "h"}), "period of 0 h"),
    "period-negative": (
        _oxycodone({"frequency": 1, "period": -6, "periodUnit": "h"}),
        "period of -6 h",
    ),
    "periodMax-0": (
        _oxycodone({"frequency": 1, "period": 4, "periodMax": 0, "periodUnit": "h"}),
        "periodMax of 0 h",
    ),
    "frequency-0": (
        _oxycodone({"frequency": 0, "period": 6, "periodUnit": "h"}),
        "frequency of 0",
    ),
    "dose-0": (_oxycodone({"frequency": 1, "period": 6, "periodUnit": "h"}, dose=0), "dose of 0"),
    "dose-negative": (
        _oxycodone({"frequency": 1, "period": 6, "periodUnit": "h"}, dose=-2),
        "dose of -2",
    ),
    "dose-1e308": (
        _oxycodone({"frequency": 1, "period": 6, "periodUnit": "h"}, dose=1e308),
        "above 10,000 MME/day",
    ),
}


@pytest.mark.parametrize(("draft", "why"), CASES.values(), ids=CASES.keys())
def test_implausible_dose_cannot_be_computed_and_says_why(draft: dict[str, Any], why: str) -> None:
    figure = _mme(draft)
    assert figure.mme_per_day is None
    assert figure.reason is not None
    assert why in figure.reason


@pytest.mark.parametrize(("draft", "why"), CASES.values(), ids=CASES.keys())
def test_the_card_says_why_and_shows_no_infinite_figure(
    client: TestClient, draft: dict[str, Any], why: str
) -> None:
    body = hook_request("order-sign", prefetch=order_prefetch([back_pain()]), draft_orders=[draft])
    response = call(client, "lbp-order-sign", body)
    assert response.status_code == 200
    [card] = response.json()["cards"]
    [line] = [x for x in card["detail"].split("\n") if x.startswith("**MME/day, this order:**")]
    assert line.startswith("**MME/day, this order:** cannot be computed: ")
    assert why in line
    assert card["indicator"] == "warning"
    assert "7.5 MME/day" not in card["detail"]  # "every 0 h" once read as once a day
    assert not NOT_A_NUMBER.search(response.text)
    # The supply cannot come from an implausible daily dose either.
    if "dose of" in why or "period" in why or "frequency" in why:
        assert "**Days supply:** cannot be computed: the dosage gives" in card["detail"]
    assert "from the quantity and dose" not in card["detail"]


def test_period_zero_is_not_once_a_day() -> None:
    dosage = Dosage.model_validate({"timing": {"repeat": {"frequency": 1, "period": 0}}})
    assert doses_per_day(dosage) is None
    assert implausible_reason(dosage) is not None


def test_the_shorter_of_period_and_period_max_counts() -> None:
    dosage = Dosage.model_validate(
        {"timing": {"repeat": {"frequency": 1, "period": 6, "periodMax": 4, "periodUnit": "h"}}}
    )
    assert doses_per_day(dosage) == pytest.approx(6)


def test_one_implausible_line_spoils_the_whole_order() -> None:
    draft = _oxycodone({"frequency": 1, "period": 6, "periodUnit": "h"})
    second = {
        "timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}},
        "doseAndRate": [{"doseQuantity": {"value": 0, "unit": "tablet"}}],
    }
    draft["dosageInstruction"].append(second)
    figure = _mme(draft)
    assert figure.mme_per_day is None
    assert "dose of 0" in (figure.reason or "")


@pytest.mark.parametrize(("mg", "computed"), [(2500, True), (2500.025, False)])
def test_implausible_above_10000_mme_per_day(mg: float, computed: bool) -> None:
    # Morphine (factor 1) every 6 h: 4 x mg MME/day; 10,000 exactly is still a figure.
    draft = mf.medication_request(
        ("892589", "morphine sulfate 2 MG/ML Oral Solution"), dose=mg, dose_unit="mg"
    )
    figure = _mme(draft)
    assert (figure.mme_per_day is not None) is computed
    if computed:
        assert figure.mme_per_day == 10_000


def test_the_threshold_is_a_setting() -> None:
    draft = mf.medication_request(mf.OXYCODONE_5)  # 30 MME/day
    assert _mme(draft, RuleConfig(mme_implausible_per_day=29)).mme_per_day is None
    assert _mme(draft, RuleConfig(mme_implausible_per_day=30)).mme_per_day == 30


def test_an_infinite_supply_is_not_a_supply() -> None:
    draft = mf.medication_request(mf.OXYCODONE_5)
    draft["dispenseRequest"] = {"expectedSupplyDuration": {"value": "1e400", "code": "d"}}
    record = PatientRecord(today=TODAY, hook="order-sign")
    view = identify(MedicationRequest.model_validate(draft), record)
    assert days_supply(view) is None
    assert intended_course(view) is None


# Values a sloppy or hostile client can put in a dosage: JSON numbers, and strings the lenient
# models read as numbers ("NaN", "Infinity", "1e400" become nan / inf).
_numbers = st.one_of(
    st.none(),
    st.integers(min_value=-10, max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-0", "0.0", "abc"]),
)
_units = st.sampled_from([None, "h", "d", "min", "s", "wk", "mo", "a", "fortnight", ""])
_products = st.sampled_from([mf.OXYCODONE_5, mf.FENTANYL_PATCH_25, mf.CYCLOBENZAPRINE_10])


def _quantity(value: Any, unit: str) -> dict[str, Any] | None:
    return None if value is None else {"value": value, "unit": unit}


@st.composite
def sloppy_lines(draw: st.DrawFn) -> dict[str, Any]:
    """One dosage line, any of its numbers sloppy; v2: with a `sequence` and a maxDosePerPeriod."""
    repeat = {
        "frequency": draw(st.one_of(st.none(), st.integers(-3, 10**9))),
        "frequencyMax": draw(st.one_of(st.none(), st.integers(-3, 10**9))),
        "period": draw(_numbers),
        "periodMax": draw(_numbers),
        "periodUnit": draw(_units),
    }
    dose: dict[str, Any]
    if draw(st.booleans()):
        dose = {"doseQuantity": _quantity(draw(_numbers), "tablet")}
    else:
        dose = {
            "doseRange": {
                "low": _quantity(draw(_numbers), "mg"),
                "high": _quantity(draw(_numbers), "mg"),
            }
        }
    line: dict[str, Any] = {
        "timing": {"repeat": {k: v for k, v in repeat.items() if v is not None}},
        "doseAndRate": [{k: v for k, v in dose.items() if v is not None}],
    }
    sequence = draw(st.one_of(st.none(), st.integers(-2, 3), _numbers))
    if sequence is not None:
        line["sequence"] = sequence
    if draw(st.booleans()):
        line["maxDosePerPeriod"] = {
            k: v
            for k, v in {
                "numerator": _quantity(draw(_numbers), draw(st.sampled_from(["tablet", "mg"]))),
                "denominator": _quantity(draw(_numbers), draw(_units) or "d"),
            }.items()
            if v is not None
        }
    return line


@st.composite
def sloppy_orders(draw: st.DrawFn) -> dict[str, Any]:
    draft = mf.medication_request(draw(_products), request_id="fuzz-1")
    draft["dosageInstruction"] = draw(st.lists(sloppy_lines(), min_size=1, max_size=3))
    draft["dispenseRequest"] = {
        k: v
        for k, v in {
            "quantity": _quantity(draw(_numbers), "tablet"),
            "expectedSupplyDuration": _quantity(draw(_numbers), draw(_units) or "d"),
            "numberOfRepeatsAllowed": draw(st.one_of(st.none(), st.integers(-2, 100))),
        }.items()
        if v is not None
    }
    return draft


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(draft=sloppy_orders())
def test_no_answer_ever_shows_inf_or_nan(client: TestClient, draft: dict[str, Any]) -> None:
    body = hook_request("order-sign", prefetch=order_prefetch([back_pain()]), draft_orders=[draft])
    response = call(client, "lbp-order-sign", body)
    assert response.status_code == 200, response.text[:500]
    assert not NOT_A_NUMBER.search(response.text), response.text[:2000]


@settings(max_examples=400, deadline=None)
@given(draft=sloppy_orders())
def test_no_figure_is_ever_inf_or_nan(draft: dict[str, Any]) -> None:
    """The figures themselves (v2: several lines, sequence, maxDosePerPeriod): MME/day, days
    supply and course are a finite positive number or absent, with a reason when absent."""
    record = PatientRecord(today=TODAY, hook="order-sign")
    view = identify(MedicationRequest.model_validate(draft), record)
    figure = order_mme(view, None, active=False)
    if figure.mme_per_day is None:
        assert figure.reason
        assert not NOT_A_NUMBER.search(figure.reason)
    else:
        assert math.isfinite(figure.mme_per_day)
        assert figure.mme_per_day >= 0
        assert not NOT_A_NUMBER.search(figure.calculation or "")
    for supply in (days_supply(view), intended_course(view)):
        if supply is not None:
            assert math.isfinite(supply.days)
            assert supply.days >= 0
    note = range_note(view.request)
    assert note is None or not NOT_A_NUMBER.search(note)


def test_lines_too_large_to_add_up_cannot_be_computed() -> None:
    """Two lines of 1e308 tablets: their sum overflows to inf, which is no figure (never a crash:
    math.fsum would raise here)."""
    huge = {
        "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
        "doseAndRate": [{"doseQuantity": {"value": 1e308, "unit": "tablet"}}],
    }
    draft = mf.medication_request(mf.OXYCODONE_5, quantity=10)
    draft["dosageInstruction"] = [huge, huge]
    figure = _mme(draft)
    assert figure.mme_per_day is None
    assert "above 10,000 MME/day" in (figure.reason or "")
    view = identify(
        MedicationRequest.model_validate(draft), PatientRecord(today=TODAY, hook="order-sign")
    )
    assert days_supply(view) is None


def test_a_course_too_long_to_be_a_number_is_no_course() -> None:
    """Found by the property above: a huge supply times the fills overflowed to inf."""
    draft = mf.medication_request(mf.CYCLOBENZAPRINE_10)
    draft["dispenseRequest"] = {
        "expectedSupplyDuration": {"value": 1.7e308, "code": "d"},
        "numberOfRepeatsAllowed": 1,
    }
    view = identify(
        MedicationRequest.model_validate(draft), PatientRecord(today=TODAY, hook="order-sign")
    )
    assert days_supply(view) is not None
    assert intended_course(view) is None
