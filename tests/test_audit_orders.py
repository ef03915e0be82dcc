"""Independent audit of the order hooks (order-select, order-sign) against RULES.md / CONTRACT.md.

Written from the design documents only (RULES.md, CONTRACT.md, clinical-codes.md, the value sets),
as an outside judge would write them: realistic R4 resources, every boundary named in RULES.md
(in and out), exclusions, no-card situations, card content, ordering and multiplicity.

The divergences it found (red flags missing from the other cards' detail; co-drafted opioids
counted in the total) were fixed; their tests now pass like the rest.
"""

from __future__ import annotations

import itertools
import json
import re
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import call
from tests.contract import assert_response_contract
from tests.factories import CPT, ICD10CM, LOINC, PATIENT_ID, RXNORM, SNOMED, TODAY

UCUM = "http://unitsofmeasure.org"
DRUG_FORM = "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
TOPIC_SYSTEM = "urn:lbp-cds:card-topic"

SELECT = "lbp-order-select"
SIGN = "lbp-order-sign"
HOOKS = {SELECT: "order-select", SIGN: "order-sign"}
BOTH = pytest.mark.parametrize("service", [SELECT, SIGN])

IMAGING = "imaging-without-red-flags"
OPIOID = "opioid-order"
MR_DURATION = "muscle-relaxant-duration"
MR_OLDER = "muscle-relaxant-older-adult"

# RULES.md v2 "Summaries": the order and its decisive figure.
IMAGING_SUMMARY = (
    "Lumbar MRI on day 10 of back pain, no red flags: imaging not advised before 6 weeks"
)
OPIOID_SUMMARY = "Oxycodone 30 MME/day, 5-day supply: opioids are not first-line for back pain"
MR_SUMMARY = ": muscle relaxants are for 2-3 weeks at most"

_seq = itertools.count(1)


def _id(prefix: str) -> str:
    return f"audit-{prefix}-{next(_seq)}"


def ago(days: int) -> str:
    return (TODAY - timedelta(days=days)).isoformat()


def ago_dt(days: int) -> str:
    return f"{ago(days)}T09:30:00Z"


# --------------------------------------------------------------------------- FHIR builders


def cc(
    system: str | None, code: str, display: str | None, text: str | None = None
) -> dict[str, Any]:
    coding = {k: v for k, v in (("system", system), ("code", code), ("display", display)) if v}
    out: dict[str, Any] = {"coding": [coding]}
    if text or display:
        out["text"] = text or display
    return out


def patient_resource(*, age: int | None = 40, birth_date: str | None = None) -> dict[str, Any]:
    if birth_date is None:
        assert age is not None
        # birthday 100 days ago: unambiguous age in whole years
        b = TODAY - timedelta(days=100)
        birth_date = b.replace(year=b.year - age).isoformat()
    return {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "active": True,
        "name": [{"family": "Rivera", "given": ["Dana"]}],
        "gender": "female",
        "birthDate": birth_date,
    }


def condition(
    system: str,
    code: str,
    display: str,
    *,
    onset: int | None = 10,
    status: str | None = "active",
    verification: str | None = "confirmed",
    onset_period_start: int | None = None,
    recorded: int | None = None,
    text_only: bool = False,
    cond_id: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Condition",
        "id": cond_id or _id("cond"),
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                        "display": "Problem List Item",
                    }
                ]
            }
        ],
        "code": {"text": display} if text_only else cc(system, code, display),
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }
    if status:
        out["clinicalStatus"] = {"coding": [{"system": CLINICAL, "code": status}]}
    if verification:
        out["verificationStatus"] = {"coding": [{"system": VERIFICATION, "code": verification}]}
    if onset is not None:
        out["onsetDateTime"] = ago(onset)
    if onset_period_start is not None:
        out["onsetPeriod"] = {"start": ago(onset_period_start)}
    if recorded is not None:
        out["recordedDate"] = ago(recorded)
    return out


def lbp(onset: int | None = 10, **kw: Any) -> dict[str, Any]:
    return condition(SNOMED, "279039007", "Low back pain (finding)", onset=onset, **kw)


def temperature(
    value: float,
    unit: str = "Cel",
    *,
    days: int | None = 2,
    period_start: int | None = None,
    issued: int | None = None,
    code: str = "8310-5",
    display: str = "Body temperature",
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Observation",
        "id": _id("obs"),
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                        "display": "Vital Signs",
                    }
                ]
            }
        ],
        "code": cc(LOINC, code, display),
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "valueQuantity": {
            "value": value,
            "unit": "C" if unit == "Cel" else "F",
            "system": UCUM,
            "code": unit,
        },
    }
    if days is not None:
        out["effectiveDateTime"] = ago_dt(days)
    if period_start is not None:
        out["effectivePeriod"] = {"start": ago_dt(period_start), "end": ago_dt(period_start)}
    if issued is not None:
        out["issued"] = f"{ago(issued)}T10:00:00.000Z"
    return out


def procedure(
    code: str | None,
    display: str,
    *,
    status: str = "completed",
    performed: int = 1500,
    system: str = CPT,
) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": _id("proc"),
        "status": status,
        "code": cc(system, code, display) if code else {"text": display},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "performedDateTime": ago(performed),
    }


def imaging_order(
    code: str | None = "72148",
    display: str | None = "MRI lumbar spine without contrast",
    *,
    system: str | None = CPT,
    reasons: list[dict[str, Any]] | None = None,
    reason_refs: list[str] | None = None,
    order_id: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": order_id or _id("sr"),
        "status": "draft",
        "intent": "order",
        "category": [
            {
                "coding": [
                    {
                        "system": SNOMED,
                        "code": "363679005",
                        "display": "Imaging",
                    }
                ]
            }
        ],
        "code": cc(system, code, display) if code else {"text": display},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authoredOn": TODAY.isoformat(),
        "requester": {"reference": "Practitioner/dr-1"},
    }
    if reasons:
        out["reasonCode"] = reasons
    if reason_refs:
        out["reasonReference"] = [{"reference": r} for r in reason_refs]
    return out


def med_request(
    code: str | None,
    display: str,
    *,
    status: str = "draft",
    dose: float | None = 1,
    dose_unit: str = "tablet",
    dose_high: float | None = None,
    frequency: int = 1,
    period: float = 6,
    period_unit: str = "h",
    supply_days: int | None = None,
    quantity: float | None = None,
    repeats: int | None = None,
    authored: int = 0,
    validity: tuple[int, int] | None = None,
    bounds_days: int | None = None,
    bounds_period: tuple[int, int] | None = None,
    reasons: list[dict[str, Any]] | None = None,
    reason_refs: list[str] | None = None,
    as_needed: bool = False,
    no_dosage: bool = False,
    text_only: bool = False,
    med_id: str | None = None,
) -> dict[str, Any]:
    """A MedicationRequest as an EHR sends it. validity/bounds_period are (start, end) offsets
    from TODAY in days (negative = in the past)."""
    out: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": med_id or _id("mr"),
        "status": status,
        "intent": "order",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                        "code": "community",
                        "display": "Community",
                    }
                ]
            }
        ],
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authoredOn": ago_dt(authored) if authored else f"{TODAY.isoformat()}T08:00:00Z",
        "requester": {"reference": "Practitioner/dr-1"},
    }
    if text_only or code is None:
        out["medicationCodeableConcept"] = {"text": display}
    else:
        out["medicationCodeableConcept"] = cc(RXNORM, code, display)
    if not no_dosage:
        unit_code = {"tablet": "TAB", "capsule": "CAP", "film": "FILM"}.get(dose_unit)
        qty = (
            {"value": dose, "unit": dose_unit, "system": DRUG_FORM, "code": unit_code}
            if unit_code
            else {"value": dose, "unit": dose_unit, "system": UCUM, "code": dose_unit}
        )
        repeat: dict[str, Any] = {
            "frequency": frequency,
            "period": period,
            "periodUnit": period_unit,
        }
        if bounds_days is not None:
            repeat["boundsDuration"] = {
                "value": bounds_days,
                "unit": "days",
                "system": UCUM,
                "code": "d",
            }
        if bounds_period is not None:
            repeat["boundsPeriod"] = {
                "start": (TODAY + timedelta(days=bounds_period[0])).isoformat(),
                "end": (TODAY + timedelta(days=bounds_period[1])).isoformat(),
            }
        dosage: dict[str, Any] = {
            "sequence": 1,
            "text": f"{dose} {dose_unit} every {period} {period_unit}",
            "timing": {"repeat": repeat},
            "route": cc(SNOMED, "26643006", "Oral route"),
        }
        if dose_high is not None:
            hi = dict(qty)
            hi["value"] = dose_high
            dosage["doseAndRate"] = [{"doseRange": {"low": qty, "high": hi}}]
        elif dose is not None:
            dosage["doseAndRate"] = [{"doseQuantity": qty}]
        if as_needed:
            dosage["asNeededBoolean"] = True
        out["dosageInstruction"] = [dosage]
    dispense: dict[str, Any] = {}
    if supply_days is not None:
        dispense["expectedSupplyDuration"] = {
            "value": supply_days,
            "unit": "days",
            "system": UCUM,
            "code": "d",
        }
    if quantity is not None:
        dispense["quantity"] = {
            "value": quantity,
            "unit": dose_unit,
            "system": DRUG_FORM,
            "code": {"tablet": "TAB", "capsule": "CAP"}.get(dose_unit, "TAB"),
        }
    if repeats is not None:
        dispense["numberOfRepeatsAllowed"] = repeats
    if validity is not None:
        dispense["validityPeriod"] = {
            "start": (TODAY + timedelta(days=validity[0])).isoformat(),
            "end": (TODAY + timedelta(days=validity[1])).isoformat(),
        }
    if dispense:
        out["dispenseRequest"] = dispense
    if reasons:
        out["reasonCode"] = reasons
    if reason_refs:
        out["reasonReference"] = [{"reference": r} for r in reason_refs]
    return out


# Products (RxNorm SCDs from the CDC / VSAC value sets under /work/shared/reference/valuesets)
def oxycodone5(**kw: Any) -> dict[str, Any]:
    """oxycodone 5 mg tablet: 7.5 MME per tablet (factor 1.5)."""
    kw.setdefault("supply_days", 5)
    return med_request("1049621", "oxycodone hydrochloride 5 MG Oral Tablet", **kw)


def oxycodone15(**kw: Any) -> dict[str, Any]:
    kw.setdefault("supply_days", 5)
    return med_request("1049611", "oxycodone hydrochloride 15 MG Oral Tablet", **kw)


def hydrocodone10(**kw: Any) -> dict[str, Any]:
    """acetaminophen 325 / hydrocodone 10 mg tablet: 10 MME per tablet."""
    kw.setdefault("supply_days", 5)
    return med_request(
        "856999", "acetaminophen 325 MG / hydrocodone bitartrate 10 MG Oral Tablet", **kw
    )


def codeine60(**kw: Any) -> dict[str, Any]:
    """codeine 60 mg tablet: 9 MME per tablet (factor 0.15)."""
    return med_request("997301", "codeine phosphate 60 MG Oral Tablet", **kw)


def tramadol50(**kw: Any) -> dict[str, Any]:
    """tramadol 50 mg tablet: 10 MME per tablet (factor 0.2)."""
    return med_request("835603", "tramadol hydrochloride 50 MG Oral Tablet", **kw)


def meperidine50(**kw: Any) -> dict[str, Any]:
    kw.setdefault("supply_days", 5)
    return med_request("861467", "meperidine hydrochloride 50 MG Oral Tablet", **kw)


def alprazolam(**kw: Any) -> dict[str, Any]:
    kw.setdefault("period", 12)
    return med_request("308048", "alprazolam 0.5 MG Oral Tablet", **kw)


def cyclobenzaprine(**kw: Any) -> dict[str, Any]:
    kw.setdefault("period", 8)
    return med_request("828348", "cyclobenzaprine hydrochloride 10 MG Oral Tablet", **kw)


def methocarbamol(**kw: Any) -> dict[str, Any]:
    kw.setdefault("period", 8)
    return med_request("197944", "methocarbamol 750 MG Oral Tablet", **kw)


def tizanidine(**kw: Any) -> dict[str, Any]:
    kw.setdefault("period", 8)
    return med_request("57258", "tizanidine", **kw) | {
        "medicationCodeableConcept": cc(RXNORM, "57258", "tizanidine", "tizanidine 4 mg tablet")
    }


def baclofen(**kw: Any) -> dict[str, Any]:
    kw.setdefault("period", 8)
    return med_request("1292", "baclofen", **kw) | {
        "medicationCodeableConcept": cc(RXNORM, "1292", "baclofen", "baclofen 10 mg tablet")
    }


def prednisone(**kw: Any) -> dict[str, Any]:
    kw.setdefault("period", 1)
    kw.setdefault("period_unit", "d")
    kw.setdefault("status", "completed")
    return med_request("198145", "prednisone 10 MG Oral Tablet", **kw)


# --------------------------------------------------------------------------- request helpers


def prefetch(
    conditions: list[dict[str, Any]] | None = None,
    *,
    age: int | None = 40,
    birth_date: str | None = None,
    observations: list[dict[str, Any]] | None = None,
    meds: list[dict[str, Any]] | None = None,
    procedures: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    def b(items: list[dict[str, Any]] | None) -> dict[str, Any]:
        items = items or []
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(items),
            "entry": [
                {"fullUrl": f"http://ehr.example/fhir/{r['resourceType']}/{r['id']}", "resource": r}
                for r in items
            ],
        }

    return {
        "patient": patient_resource(age=age, birth_date=birth_date),
        "conditions": b(conditions),
        "temperatureObservations": b(observations),
        "medicationRequests": b(meds),
        "procedures": b(procedures),
    }


def request(
    service: str,
    drafts: list[dict[str, Any]],
    pf: dict[str, Any],
    selections: list[str] | None = None,
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "userId": "Practitioner/dr-1",
        "patientId": PATIENT_ID,
        "encounterId": "enc-1",
        "draftOrders": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": d} for d in drafts],
        },
    }
    if service == SELECT:
        context["selections"] = (
            selections
            if selections is not None
            else [f"{d['resourceType']}/{d['id']}" for d in drafts]
        )
    return {
        "hook": HOOKS[service],
        "hookInstance": f"d1577c69-dfbe-44ad-ba6d-3e05e953b2ea-{next(_seq)}",
        "context": context,
        "prefetch": pf,
    }


def run(
    client: Any,
    service: str,
    drafts: list[dict[str, Any]],
    pf: dict[str, Any],
    selections: list[str] | None = None,
) -> list[dict[str, Any]]:
    resp = call(client, service, request(service, drafts, pf, selections))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert_response_contract(body, HOOKS[service])
    return body["cards"]


def topic(card: dict[str, Any]) -> str:
    return card["source"]["topic"]["code"]


def of(cards: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    return [c for c in cards if topic(c) == code]


def one(cards: list[dict[str, Any]], code: str) -> dict[str, Any]:
    found = of(cards, code)
    assert len(found) == 1, [topic(c) for c in cards]
    return found[0]


def text(card: dict[str, Any]) -> str:
    return card.get("detail", "")


def actions(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for s in card.get("suggestions", []) for a in s.get("actions", [])]


def supply_of(resource: dict[str, Any]) -> float | None:
    d = resource.get("dispenseRequest", {}).get("expectedSupplyDuration")
    if not d:
        return None
    factor = {"d": 1, "wk": 7, "h": 1 / 24, "mo": 30}[d.get("code", "d")]
    return d["value"] * factor


def imaging_cards(client: Any, service: str, drafts: list, pf: dict) -> list[dict[str, Any]]:
    return of(run(client, service, drafts, pf), IMAGING)


# =========================================================================== imaging


@BOTH
def test_imaging_typical_card_content(client: Any, service: str) -> None:
    order = imaging_order()
    cards = run(client, service, [order], prefetch([lbp(10)]))
    card = one(cards, IMAGING)
    assert card["summary"] == IMAGING_SUMMARY
    assert card["indicator"] == "warning"
    assert card["source"]["topic"]["system"] == TOPIC_SYSTEM
    detail = text(card).lower()
    assert re.search(r"\b10\b", detail), detail  # episode length
    assert "red flag" in detail
    for checked in ("cancer", "cauda equina", "fever"):
        assert checked in detail, checked
    # suggestion: delete the draft ServiceRequest by id
    deletes = [a for a in actions(card) if a["type"] == "delete"]
    assert deletes, card.get("suggestions")
    assert any(a["resourceId"] in (f"ServiceRequest/{order['id']}",) for a in deletes), deletes
    displays = {r["display"] for r in card["overrideReasons"]}
    for needed in (
        "Red flag present but not coded",
        "Failed 6 weeks of conservative care",
        "Surgery or intervention candidate",
    ):
        assert needed in displays, displays
    blob = json.dumps(card)
    assert "ACP" in blob
    for src in ("ACR", "Choosing Wisely", "NICE"):
        assert src in blob, src


@BOTH
@pytest.mark.parametrize(
    ("onset", "fires"), [(0, True), (41, True), (42, False), (43, False), (400, False)]
)
def test_imaging_episode_boundary(client: Any, service: str, onset: int, fires: bool) -> None:
    cards = imaging_cards(client, service, [imaging_order()], prefetch([lbp(onset)]))
    assert bool(cards) is fires


def test_imaging_episode_uses_earliest_active_condition(client: Any) -> None:
    conds = [
        lbp(10),
        condition(ICD10CM, "M54.50", "Low back pain, unspecified", onset=50),
    ]
    assert not imaging_cards(client, SIGN, [imaging_order()], prefetch(conds))


def test_imaging_episode_ignores_resolved_back_pain_condition(client: Any) -> None:
    conds = [lbp(10), lbp(200, status="resolved")]
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch(conds))


@pytest.mark.parametrize("status", ["recurrence", "relapse"])
def test_imaging_recurrence_relapse_is_active_episode(client: Any, status: str) -> None:
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(20, status=status)]))
    assert not imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(60, status=status)]))


@pytest.mark.parametrize(("start", "fires"), [(41, True), (43, False)])
def test_imaging_episode_from_onset_period(client: Any, start: int, fires: bool) -> None:
    cond = lbp(None, onset_period_start=start)
    assert bool(imaging_cards(client, SIGN, [imaging_order()], prefetch([cond]))) is fires


@pytest.mark.parametrize(("recorded", "fires"), [(41, True), (43, False)])
def test_imaging_episode_from_recorded_date(client: Any, recorded: int, fires: bool) -> None:
    cond = lbp(None, recorded=recorded)
    assert bool(imaging_cards(client, SIGN, [imaging_order()], prefetch([cond]))) is fires


def test_imaging_episode_ignores_refuted_back_pain_condition(client: Any) -> None:
    conds = [lbp(100, verification="refuted"), lbp(10)]
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch(conds))


def test_imaging_onset_datetime_takes_precedence_over_recorded_date(client: Any) -> None:
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10, recorded=100)]))
    assert not imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(100, recorded=10)]))


@BOTH
def test_imaging_unknown_onset_is_new_episode_and_says_so(client: Any, service: str) -> None:
    cards = imaging_cards(client, service, [imaging_order()], prefetch([lbp(None)]))
    assert len(cards) == 1
    detail = text(cards[0]).lower()
    assert "unknown" in detail or "not recorded" in detail, detail
    assert "new episode" in detail, detail


def test_imaging_context_from_reason_code_only(client: Any) -> None:
    order = imaging_order(reasons=[cc(ICD10CM, "M54.50", "Low back pain, unspecified")])
    cards = imaging_cards(client, SIGN, [order], prefetch([]))
    assert len(cards) == 1
    assert "new episode" in text(cards[0]).lower()


def test_imaging_context_from_reason_reference(client: Any) -> None:
    # a back-pain Condition that is resolved (so not context by itself) but referenced by the order
    cond = lbp(10, status="resolved")
    order = imaging_order(reason_refs=[f"Condition/{cond['id']}"])
    assert imaging_cards(client, SIGN, [order], prefetch([cond]))


@pytest.mark.parametrize(
    ("system", "code", "display"),
    [
        (ICD10CM, "M54.50", "Low back pain, unspecified"),
        (ICD10CM, "M54.41", "Lumbago with sciatica, right side"),
        (ICD10CM, "M51.16", "Intervertebral disc disorders with radiculopathy, lumbar region"),
        (ICD10CM, "M47.816", "Spondylosis without myelopathy or radiculopathy, lumbar region"),
        (ICD10CM, "S39.012A", "Strain of muscle, fascia and tendon of lower back, initial"),
        (SNOMED, "278860009", "Chronic low back pain (finding)"),
        (SNOMED, "161891005", "Backache (finding)"),
        (SNOMED, "9121000119106", "Low back pain in pregnancy (finding)"),
    ],
)
def test_imaging_back_pain_codes_give_context(
    client: Any, system: str, code: str, display: str
) -> None:
    cond = condition(system, code, display, onset=10)
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([cond]))


def test_imaging_back_pain_text_only_condition_gives_context(client: Any) -> None:
    cond = condition(SNOMED, "", "Low back pain", onset=10, text_only=True)
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([cond]))


@BOTH
@pytest.mark.parametrize(
    "conds",
    [
        [],
        [lbp(10, verification="refuted")],
        [lbp(10, verification="entered-in-error")],
        [lbp(10, status="resolved")],
        [lbp(10, status="inactive")],
        [condition(ICD10CM, "M54.2", "Cervicalgia", onset=10)],
    ],
    ids=["none", "refuted", "entered-in-error", "resolved", "inactive", "neck-pain"],
)
def test_no_back_pain_context_no_cards(client: Any, service: str, conds: list) -> None:
    drafts = [
        imaging_order(),
        oxycodone5(supply_days=10, frequency=1, period=4),
        cyclobenzaprine(supply_days=30),
    ]
    resp = call(client, service, request(service, drafts, prefetch(conds, age=70)))
    assert resp.status_code == 200
    assert resp.json() == {"cards": []}


@pytest.mark.parametrize(
    ("system", "code", "display"),
    [
        (CPT, "72148", "MRI lumbar spine without contrast"),
        (CPT, "72149", "MRI lumbar spine with contrast"),
        (CPT, "72158", "MRI lumbar spine without and with contrast"),
        (CPT, "72131", "CT lumbar spine without contrast"),
        (CPT, "72100", "X-ray lumbosacral spine, 2 or 3 views"),
        (CPT, "72110", "X-ray lumbosacral spine, minimum of 4 views"),
        (CPT, "72020", "X-ray spine, single view"),
        (CPT, "72220", "X-ray sacrum and coccyx, minimum of 2 views"),
        (LOINC, "24968-0", "MR Lumbar spine"),
        (LOINC, "30679-5", "MR Lumbar spine WO contrast"),
        (LOINC, "24963-1", "CT Lumbar spine"),
        (LOINC, "36670-8", "XR Lumbar spine 2 Views"),
    ],
)
def test_imaging_lumbar_codes_fire(client: Any, system: str, code: str, display: str) -> None:
    order = imaging_order(code, display, system=system)
    assert imaging_cards(client, SIGN, [order], prefetch([lbp(10)]))


@pytest.mark.parametrize(
    "display",
    [
        "MRI lumbar spine",
        "X-ray lumbosacral spine AP and lateral",
        "CT lumbar spine without contrast",
        "Lumbar spine radiograph",
    ],
)
def test_imaging_text_only_lumbar_orders_fire(client: Any, display: str) -> None:
    order = imaging_order(None, display)
    assert imaging_cards(client, SIGN, [order], prefetch([lbp(10)]))


@pytest.mark.parametrize(
    ("system", "code", "display"),
    [
        (CPT, "72141", "MRI cervical spine without contrast"),
        (CPT, "72146", "MRI thoracic spine without contrast"),
        (CPT, "71046", "X-ray chest, 2 views"),
        (CPT, "73721", "MRI lower extremity joint without contrast"),
        (LOINC, "36643-5", "XR Chest 2 Views"),
        (None, None, "MRI cervical spine"),
        (None, None, "Physical therapy evaluation for low back pain"),
    ],
)
def test_non_lumbar_orders_no_imaging_card(
    client: Any, system: str | None, code: str | None, display: str | None
) -> None:
    order = imaging_order(code, display, system=system) if code else imaging_order(None, display)
    assert not imaging_cards(client, SIGN, [order], prefetch([lbp(10)]))


def test_imaging_order_select_only_selected_orders(client: Any) -> None:
    a, b = imaging_order(), imaging_order("72100", "X-ray lumbosacral spine, 2 or 3 views")
    cards = run(
        client, SELECT, [a, b], prefetch([lbp(10)]), selections=[f"ServiceRequest/{b['id']}"]
    )
    imgs = of(cards, IMAGING)
    assert len(imgs) == 1
    assert [x["resourceId"] for x in actions(imgs[0]) if x["type"] == "delete"] == [
        f"ServiceRequest/{b['id']}"
    ]


def test_imaging_order_select_nothing_selected_imaging(client: Any) -> None:
    a = imaging_order()
    cards = run(client, SELECT, [a], prefetch([lbp(10)]), selections=[])
    assert not cards


def test_imaging_order_sign_one_card_per_order(client: Any) -> None:
    a, b = imaging_order(), imaging_order("72131", "CT lumbar spine without contrast")
    imgs = of(run(client, SIGN, [a, b], prefetch([lbp(10)])), IMAGING)
    assert len(imgs) == 2
    ids = sorted(x["resourceId"] for c in imgs for x in actions(c) if x["type"] == "delete")
    assert ids == sorted([f"ServiceRequest/{a['id']}", f"ServiceRequest/{b['id']}"])
    assert len({c["uuid"] for c in imgs}) == 2


@BOTH
def test_draft_without_code_skipped_without_error(client: Any, service: str) -> None:
    blank = imaging_order()
    del blank["code"]
    blank_med = oxycodone5()
    del blank_med["medicationCodeableConcept"]
    good = imaging_order()
    cards = run(client, service, [blank, blank_med, good], prefetch([lbp(10)]))
    assert len(of(cards, IMAGING)) == 1
    assert not of(cards, OPIOID)


# --- red flags: conditions with windows


CANCER = (ICD10CM, "C79.51", "Secondary malignant neoplasm of bone")
CANCER_HX = (ICD10CM, "Z85.3", "Personal history of malignant neoplasm of breast")
CANCER_SCT = (SNOMED, "363346000", "Malignant neoplastic disease (disorder)")
INFECTION = (ICD10CM, "M46.26", "Osteomyelitis of vertebra, lumbar region")
EPIDURAL = (ICD10CM, "G06.1", "Intraspinal abscess and granuloma")
FEVER = (ICD10CM, "R50.9", "Fever, unspecified")
FEVER_SCT = (SNOMED, "386661006", "Fever (finding)")
IVDU = (ICD10CM, "F11.20", "Opioid dependence, uncomplicated")
IVDU_SCT = (SNOMED, "228388006", "Intravenous drug user (finding)")
COCAINE = (ICD10CM, "F14.10", "Cocaine abuse, uncomplicated")
HIV = (ICD10CM, "B20", "Human immunodeficiency virus [HIV] disease")
TRANSPLANT = (ICD10CM, "Z94.0", "Kidney transplant status")
IMMUNOMOD = (ICD10CM, "Z79.69", "Long term (current) use of other immunomodulators")
STEROID_Z = (ICD10CM, "Z79.52", "Long term (current) use of systemic steroids")
OSTEOPOROSIS = (ICD10CM, "M81.0", "Age-related osteoporosis without current pathological fracture")
FRAGILITY = (ICD10CM, "M80.08XA", "Age-related osteoporosis with current pathological fracture")
FRACTURE = (ICD10CM, "S32.010A", "Wedge compression fracture of first lumbar vertebra, initial")
CAUDA_EQUINA = (ICD10CM, "G83.4", "Cauda equina syndrome")
CAUDA_SCT = (SNOMED, "192970008", "Cauda equina syndrome (disorder)")
SADDLE = (SNOMED, "449813001", "Numbness of saddle area (finding)")
RETENTION = (ICD10CM, "R33.9", "Retention of urine, unspecified")
FOOT_DROP = (ICD10CM, "M21.371", "Foot drop, right foot")
PARAPLEGIA = (ICD10CM, "G82.22", "Paraplegia, incomplete")
MONOPLEGIA = (ICD10CM, "G83.11", "Monoplegia of lower limb affecting right dominant side")
WEIGHT_LOSS = (ICD10CM, "R63.4", "Abnormal weight loss")
WEIGHT_LOSS_SCT = (SNOMED, "448765001", "Unintentional weight loss (finding)")

ANY_TIME = [CANCER, CANCER_HX, CANCER_SCT, HIV, TRANSPLANT, IMMUNOMOD, OSTEOPOROSIS, FRAGILITY]
WINDOWED = [  # (code, inside, outside) in days before TODAY
    (INFECTION, 300, 400),
    (EPIDURAL, 300, 400),
    (FEVER, 10, 20),
    (FEVER_SCT, 10, 20),
    (IVDU, 300, 400),
    (IVDU_SCT, 300, 400),
    (COCAINE, 300, 400),
    (STEROID_Z, 300, 400),
    (FRACTURE, 80, 100),
    (CAUDA_EQUINA, 300, 400),
    (CAUDA_SCT, 300, 400),
    (SADDLE, 300, 400),
    (RETENTION, 300, 400),
    (FOOT_DROP, 300, 400),
    (PARAPLEGIA, 300, 400),
    (MONOPLEGIA, 300, 400),
    (WEIGHT_LOSS, 300, 400),
    (WEIGHT_LOSS_SCT, 300, 400),
]


def _ids(items: list) -> list[str]:
    return [i[0][1] if isinstance(i[0], tuple) else i[1] for i in items]


@BOTH
@pytest.mark.parametrize("flag", ANY_TIME, ids=[f[1] for f in ANY_TIME])
@pytest.mark.parametrize("status", ["active", "resolved", "inactive", "remission"])
def test_any_time_red_flags_suppress_in_any_status(
    client: Any, service: str, flag: tuple, status: str
) -> None:
    rf = condition(*flag, onset=3000, status=status)
    assert not imaging_cards(client, service, [imaging_order()], prefetch([lbp(10), rf]))


@pytest.mark.parametrize("flag", WINDOWED, ids=_ids(WINDOWED))
def test_windowed_red_flag_inside_window_resolved_suppresses(client: Any, flag: tuple) -> None:
    code, inside, _ = flag
    rf = condition(*code, onset=inside, status="resolved")
    assert not imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10), rf]))


@pytest.mark.parametrize("flag", WINDOWED, ids=_ids(WINDOWED))
def test_windowed_red_flag_outside_window_resolved_does_not_suppress(
    client: Any, flag: tuple
) -> None:
    code, _, outside = flag
    rf = condition(*code, onset=outside, status="resolved")
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10), rf]))


@pytest.mark.parametrize("flag", WINDOWED, ids=_ids(WINDOWED))
@pytest.mark.parametrize("status", ["active", "recurrence", "relapse"])
def test_windowed_red_flag_still_active_suppresses_whatever_onset(
    client: Any, flag: tuple, status: str
) -> None:
    code, _, outside = flag
    rf = condition(*code, onset=outside, status=status)
    assert not imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10), rf]))


@pytest.mark.parametrize("flag", [CANCER, FRACTURE, CAUDA_EQUINA, HIV], ids=lambda f: f[1])
@pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
def test_refuted_or_erroneous_red_flag_never_counts(
    client: Any, flag: tuple, verification: str
) -> None:
    rf = condition(*flag, onset=5, status="active", verification=verification)
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10), rf]))


@pytest.mark.parametrize("verification", ["unconfirmed", "provisional", "differential", None])
def test_unconfirmed_red_flag_counts(client: Any, verification: str | None) -> None:
    rf = condition(*CAUDA_EQUINA, onset=5, verification=verification)
    assert not imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10), rf]))


@pytest.mark.parametrize(
    ("flag", "last_inside"),
    [(FEVER, 14), (FRACTURE, 90), (INFECTION, 365), (WEIGHT_LOSS, 365)],
    ids=["fever-14d", "trauma-90d", "infection-12mo", "weight-loss-12mo"],
)
def test_windowed_red_flag_window_edges(client: Any, flag: tuple, last_inside: int) -> None:
    """Window edges read as inclusive: onset exactly N days ago is inside an N-day window."""
    inside = condition(*flag, onset=last_inside, status="resolved")
    outside = condition(*flag, onset=last_inside + 1, status="resolved")
    assert not imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10), inside]))
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10), outside]))


def test_red_flag_onset_period_start_used_for_window(client: Any) -> None:
    inside = condition(*FRACTURE, onset=None, onset_period_start=60, status="resolved")
    outside = condition(*FRACTURE, onset=None, onset_period_start=120, status="resolved")
    assert not imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10), inside]))
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10), outside]))


def test_red_flag_recorded_date_used_when_no_onset(client: Any) -> None:
    inside = condition(*FRACTURE, onset=None, recorded=60, status="resolved")
    outside = condition(*FRACTURE, onset=None, recorded=120, status="resolved")
    assert not imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10), inside]))
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10), outside]))


def test_red_flag_onset_takes_precedence_over_recorded_date(client: Any) -> None:
    rf = condition(*FRACTURE, onset=200, recorded=30, status="resolved")
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10), rf]))


@pytest.mark.parametrize(
    "reason",
    [
        cc(ICD10CM, "G83.4", "Cauda equina syndrome"),
        cc(ICD10CM, "C79.51", "Secondary malignant neoplasm of bone"),
        cc(ICD10CM, "S32.010A", "Wedge compression fracture of first lumbar vertebra"),
        cc(ICD10CM, "M46.26", "Osteomyelitis of vertebra, lumbar region"),
    ],
    ids=["cauda", "cancer", "fracture", "infection"],
)
def test_red_flag_in_order_reason_code_suppresses(client: Any, reason: dict) -> None:
    order = imaging_order(reasons=[cc(ICD10CM, "M54.50", "Low back pain, unspecified"), reason])
    assert not imaging_cards(client, SIGN, [order], prefetch([lbp(10)]))


# --- fever observations


@pytest.mark.parametrize(
    ("value", "unit", "fires"),
    [
        (38.0, "Cel", False),
        (38.6, "Cel", False),
        (37.9, "Cel", True),
        (100.4, "[degF]", False),
        (100.3, "[degF]", True),
    ],
)
def test_fever_observation_threshold(client: Any, value: float, unit: str, fires: bool) -> None:
    obs = temperature(value, unit, days=3)
    cards = imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], observations=[obs]))
    assert bool(cards) is fires


@pytest.mark.parametrize(
    "code",
    ["8310-5", "8331-1", "8332-9", "8333-7", "8328-7", "75539-7"],
)
def test_fever_observation_temperature_codes(client: Any, code: str) -> None:
    obs = temperature(38.9, code=code, display="Temperature", days=2)
    assert not imaging_cards(
        client, SIGN, [imaging_order()], prefetch([lbp(10)], observations=[obs])
    )


@pytest.mark.parametrize(("days", "fires"), [(0, False), (13, False), (15, True), (30, True)])
def test_fever_observation_window(client: Any, days: int, fires: bool) -> None:
    obs = temperature(38.8, days=days)
    cards = imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], observations=[obs]))
    assert bool(cards) is fires


def test_fever_observation_effective_period_start(client: Any) -> None:
    inside = temperature(38.8, days=None, period_start=5)
    outside = temperature(38.8, days=None, period_start=20)
    assert not imaging_cards(
        client, SIGN, [imaging_order()], prefetch([lbp(10)], observations=[inside])
    )
    assert imaging_cards(
        client, SIGN, [imaging_order()], prefetch([lbp(10)], observations=[outside])
    )


def test_fever_observation_issued_fallback(client: Any) -> None:
    inside = temperature(38.8, days=None, issued=5)
    outside = temperature(38.8, days=None, issued=20)
    assert not imaging_cards(
        client, SIGN, [imaging_order()], prefetch([lbp(10)], observations=[inside])
    )
    assert imaging_cards(
        client, SIGN, [imaging_order()], prefetch([lbp(10)], observations=[outside])
    )


# --- prolonged corticosteroids


def test_corticosteroid_courses_90_days_suppress(client: Any) -> None:
    meds = [
        prednisone(supply_days=45, authored=200),
        prednisone(supply_days=45, authored=100),
    ]
    assert not imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], meds=meds))


def test_corticosteroid_courses_89_days_do_not_suppress(client: Any) -> None:
    meds = [
        prednisone(supply_days=45, authored=200),
        prednisone(supply_days=44, authored=100),
    ]
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], meds=meds))


def test_corticosteroid_course_with_refills_counts_repeats(client: Any) -> None:
    # 30 days x (1 + 2 repeats) = 90 days
    meds = [prednisone(supply_days=30, repeats=2, authored=150, status="active")]
    assert not imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], meds=meds))


def test_corticosteroid_course_from_quantity(client: Any) -> None:
    # 90 tablets, 1 tablet daily = 90 days; no expectedSupplyDuration
    meds = [prednisone(quantity=90, authored=150, dose=1, frequency=1, period=1, period_unit="d")]
    assert not imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], meds=meds))


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled", "draft"])
def test_corticosteroid_excluded_statuses(client: Any, status: str) -> None:
    meds = [
        prednisone(supply_days=45, authored=200),
        prednisone(supply_days=45, authored=100, status=status),
    ]
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], meds=meds))


@pytest.mark.parametrize("status", ["active", "completed", "stopped", "on-hold"])
def test_corticosteroid_counted_statuses(client: Any, status: str) -> None:
    meds = [
        prednisone(supply_days=45, authored=200),
        prednisone(supply_days=45, authored=100, status=status),
    ]
    assert not imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], meds=meds))


def test_corticosteroid_course_clipped_to_last_365_days(client: Any) -> None:
    # 90-day course started 380 days ago: only ~75 days fall in the last 365 days
    meds = [prednisone(supply_days=90, authored=380)]
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], meds=meds))
    meds = [prednisone(supply_days=90, authored=300)]
    assert not imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], meds=meds))


def test_non_glucocorticoid_long_course_does_not_suppress(client: Any) -> None:
    meds = [
        med_request(
            "197806",
            "ibuprofen 600 MG Oral Tablet",
            status="completed",
            supply_days=120,
            authored=150,
        )
    ]
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], meds=meds))


# --- prior lumbar surgery


@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("22612", "Arthrodesis, posterior technique, lumbar"),
        ("22630", "Arthrodesis, posterior interbody technique, lumbar"),
        ("63030", "Laminotomy with decompression of nerve root, lumbar"),
        ("63047", "Laminectomy, facetectomy and foraminotomy, lumbar"),
        ("62380", "Endoscopic decompression of spinal cord, lumbar"),
    ],
)
def test_prior_lumbar_surgery_procedure_suppresses(client: Any, code: str, display: str) -> None:
    proc = procedure(code, display, performed=3000)
    assert not imaging_cards(
        client, SIGN, [imaging_order()], prefetch([lbp(10)], procedures=[proc])
    )


@pytest.mark.parametrize(
    "display",
    [
        "Lumbar spinal fusion L4-L5",
        "Lumbar laminectomy",
        "Lumbosacral discectomy",
        "Decompression of lumbar spine",
    ],
)
def test_prior_lumbar_surgery_by_text_suppresses(client: Any, display: str) -> None:
    proc = procedure(None, display, performed=2000)
    assert not imaging_cards(
        client, SIGN, [imaging_order()], prefetch([lbp(10)], procedures=[proc])
    )


@pytest.mark.parametrize("status", ["not-done", "entered-in-error", "preparation"])
def test_prior_lumbar_surgery_not_completed_does_not_count(client: Any, status: str) -> None:
    proc = procedure("63030", "Laminotomy with decompression, lumbar", status=status)
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], procedures=[proc]))


def test_prior_lumbar_surgery_without_date_counts(client: Any) -> None:
    proc = procedure("22612", "Arthrodesis, posterior technique, lumbar")
    del proc["performedDateTime"]
    assert not imaging_cards(
        client, SIGN, [imaging_order()], prefetch([lbp(10)], procedures=[proc])
    )


def test_non_lumbar_procedure_does_not_count(client: Any) -> None:
    proc = procedure("22551", "Arthrodesis, anterior interbody, cervical")
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], procedures=[proc]))
    proc = procedure(None, "Cervical discectomy and fusion C5-C6")
    assert imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], procedures=[proc]))


# --- age


@BOTH
@pytest.mark.parametrize("age", [50, 51, 72])
def test_imaging_age_50_or_more_is_not_red_flag(client: Any, service: str, age: int) -> None:
    cards = imaging_cards(client, service, [imaging_order()], prefetch([lbp(10)], age=age))
    assert len(cards) == 1
    card = cards[0]
    assert card["indicator"] == "warning"
    detail = text(card).lower()
    assert re.search(rf"\b{age}\b", detail), detail
    assert "weaker risk factor" in detail, detail


def test_imaging_age_49_no_age_statement(client: Any) -> None:
    cards = imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], age=49))
    assert len(cards) == 1
    assert "weaker risk factor" not in text(cards[0]).lower()


def test_imaging_age_50_turns_today(client: Any) -> None:
    bd = TODAY.replace(year=TODAY.year - 50).isoformat()
    cards = imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], birth_date=bd))
    assert len(cards) == 1
    assert "weaker risk factor" in text(cards[0]).lower()


def test_imaging_age_49_turning_50_tomorrow(client: Any) -> None:
    bd = (TODAY + timedelta(days=1)).replace(year=TODAY.year - 50).isoformat()
    cards = imaging_cards(client, SIGN, [imaging_order()], prefetch([lbp(10)], birth_date=bd))
    assert len(cards) == 1
    assert "weaker risk factor" not in text(cards[0]).lower()


# =========================================================================== opioid-order


@BOTH
def test_opioid_typical_5_day_30_mme_gets_no_suggestions(client: Any, service: str) -> None:
    order = oxycodone5(supply_days=5, frequency=1, period=6)  # 4/day x 5 mg x 1.5 = 30
    cards = run(client, service, [order], prefetch([lbp(10)]))
    card = one(cards, OPIOID)
    assert card["summary"] == OPIOID_SUMMARY
    assert card["indicator"] == "warning"
    detail = text(card)
    assert re.search(r"\b30(\.0)?\b", detail), detail
    assert "MME" in detail
    assert re.search(r"\b5\b", detail), detail
    assert re.search(r"non-?opioid", detail.lower()), detail
    assert "suggestions" not in card, card.get("suggestions")
    assert "CDC" in card["source"]["label"]
    assert card["source"]["topic"]["system"] == TOPIC_SYSTEM


@BOTH
def test_opioid_mme_50_single_order_naloxone(client: Any, service: str) -> None:
    order = hydrocodone10(frequency=1, period=4, dose=1, supply_days=5)  # 6/day? no: see below
    # q4h = 6 administrations/day x 10 MME = 60; use frequency 5 per day instead for exactly 50
    order["dosageInstruction"][0]["timing"]["repeat"] = {
        "frequency": 5,
        "period": 1,
        "periodUnit": "d",
    }
    card = one(run(client, service, [order], prefetch([lbp(10)])), OPIOID)
    assert card["indicator"] == "warning"
    assert re.search(r"\b50(\.0)?\b", text(card)), text(card)
    creates = [a for a in actions(card) if a["type"] == "create"]
    assert creates, card.get("suggestions")
    res = creates[0]["resource"]
    assert res["resourceType"] == "MedicationRequest"
    med = json.dumps(res.get("medicationCodeableConcept", {})).lower()
    assert "naloxone" in med
    assert res.get("subject", {}).get("reference") == f"Patient/{PATIENT_ID}"
    assert not [a for a in actions(card) if a["type"] == "update"]


def test_opioid_total_mme_49_no_naloxone(client: Any) -> None:
    draft = hydrocodone10(frequency=1, period=6)  # 40 MME
    active = codeine60(status="active", authored=10, frequency=1, period=1, period_unit="d")
    card = one(run(client, SIGN, [draft], prefetch([lbp(10)], meds=[active])), OPIOID)
    assert card["indicator"] == "warning"
    assert re.search(r"\b49(\.0)?\b", text(card)), text(card)
    assert not [a for a in actions(card) if a["type"] == "create"]


def test_opioid_total_mme_50_with_active_order_naloxone(client: Any) -> None:
    draft = hydrocodone10(frequency=1, period=6)  # 40 MME
    active = tramadol50(status="active", authored=10, frequency=1, period=1, period_unit="d")
    card = one(run(client, SIGN, [draft], prefetch([lbp(10)], meds=[active])), OPIOID)
    assert card["indicator"] == "warning"
    assert re.search(r"\b50(\.0)?\b", text(card)), text(card)
    assert [a for a in actions(card) if a["type"] == "create"]


def test_opioid_total_mme_89_is_warning(client: Any) -> None:
    draft = hydrocodone10(frequency=8, period=1, period_unit="d")  # 80 MME
    active = codeine60(status="active", authored=10, frequency=1, period=1, period_unit="d")
    card = one(run(client, SIGN, [draft], prefetch([lbp(10)], meds=[active])), OPIOID)
    assert card["indicator"] == "warning"
    assert re.search(r"\b89(\.0)?\b", text(card)), text(card)


@BOTH
def test_opioid_mme_90_single_order_is_critical(client: Any, service: str) -> None:
    order = oxycodone15(frequency=1, period=6)  # 4 x 15 x 1.5 = 90
    card = one(run(client, service, [order], prefetch([lbp(10)])), OPIOID)
    assert card["indicator"] == "critical"
    assert re.search(r"\b90(\.0)?\b", text(card)), text(card)


def test_opioid_total_mme_90_with_active_order_is_critical(client: Any) -> None:
    draft = hydrocodone10(frequency=8, period=1, period_unit="d")  # 80
    active = tramadol50(status="active", authored=10, frequency=1, period=1, period_unit="d")  # 10
    card = one(run(client, SIGN, [draft], prefetch([lbp(10)], meds=[active])), OPIOID)
    assert card["indicator"] == "critical"


@pytest.mark.parametrize(
    ("code", "display", "dose", "per_day", "mme", "naloxone"),
    [
        # CDC 2022 factors: hydromorphone 5 (not the 2016 value 4), methadone 4.7, tapentadol 0.4
        ("897696", "hydromorphone hydrochloride 2 MG Oral Tablet", 1, 6, "60", True),
        ("864718", "methadone hydrochloride 5 MG Oral Tablet", 1, 3, "70.5", True),
        ("825411", "tapentadol 50 MG Oral Tablet", 1, 4, "80", True),
        ("997301", "codeine phosphate 60 MG Oral Tablet", 1, 4, "36", False),
        ("835603", "tramadol hydrochloride 50 MG Oral Tablet", 1, 4, "40", False),
    ],
)
def test_opioid_cdc_2022_factors(
    client: Any, code: str, display: str, dose: int, per_day: int, mme: str, naloxone: bool
) -> None:
    order = med_request(
        code, display, dose=dose, frequency=per_day, period=1, period_unit="d", supply_days=5
    )
    card = one(run(client, SIGN, [order], prefetch([lbp(10)])), OPIOID)
    assert re.search(rf"\b{re.escape(mme)}\b", text(card)), text(card)
    assert bool([a for a in actions(card) if a["type"] == "create"]) is naloxone
    assert card["indicator"] == "warning"


def test_opioid_fentanyl_patch_mcg_per_hour(client: Any) -> None:
    # 25 mcg/h x 2.4 = 60 MME/day; one patch every 72 hours
    order = med_request(
        "245134",
        "72 HR fentanyl 0.025 MG/HR Transdermal System",
        dose=1,
        dose_unit="patch",
        frequency=1,
        period=72,
        period_unit="h",
        supply_days=6,
    )
    card = one(run(client, SIGN, [order], prefetch([lbp(10)])), OPIOID)
    assert re.search(r"\b60(\.0)?\b", text(card)), text(card)
    assert [a for a in actions(card) if a["type"] == "create"]


@pytest.mark.parametrize("status", ["stopped", "completed", "entered-in-error", "cancelled"])
def test_opioid_inactive_orders_not_added(client: Any, status: str) -> None:
    draft = hydrocodone10(frequency=8, period=1, period_unit="d")  # 80
    other = tramadol50(status=status, authored=30, frequency=1, period=1, period_unit="d")
    card = one(run(client, SIGN, [draft], prefetch([lbp(10)], meds=[other])), OPIOID)
    assert card["indicator"] == "warning"


def test_opioid_dose_range_upper_bound(client: Any) -> None:
    # 1-2 tablets q6h of oxycodone 5 mg: upper bound 2 x 4 x 5 x 1.5 = 60 MME/day
    order = oxycodone5(dose=1, dose_high=2, frequency=1, period=6, as_needed=True)
    card = one(run(client, SIGN, [order], prefetch([lbp(10)])), OPIOID)
    assert re.search(r"\b60(\.0)?\b", text(card)), text(card)
    assert [a for a in actions(card) if a["type"] == "create"]


@BOTH
def test_opioid_active_benzodiazepine_critical_and_naloxone(client: Any, service: str) -> None:
    order = oxycodone5(frequency=1, period=6)  # 30 MME, 5 days
    benzo = alprazolam(status="active", authored=60)
    card = one(run(client, service, [order], prefetch([lbp(10)], meds=[benzo])), OPIOID)
    assert card["indicator"] == "critical"
    assert "benzodiazepine" in text(card).lower()
    creates = [a for a in actions(card) if a["type"] == "create"]
    assert creates and "naloxone" in json.dumps(creates[0]["resource"]).lower()


@pytest.mark.parametrize(
    "benzo",
    [
        med_request(None, "Diazepam 5 mg tablet", status="active", authored=20),
        med_request("3322", "diazepam", status="active", authored=20),
        med_request("197901", "lorazepam 1 MG Oral Tablet", status="active", authored=20),
    ],
    ids=["text", "ingredient", "product"],
)
def test_opioid_benzodiazepine_matched_by_text_ingredient_product(client: Any, benzo: dict) -> None:
    card = one(run(client, SIGN, [oxycodone5()], prefetch([lbp(10)], meds=[benzo])), OPIOID)
    assert card["indicator"] == "critical"


def test_opioid_naloxone_resource_is_a_naloxone_product(client: Any) -> None:
    order = oxycodone5(dose=2, frequency=1, period=6)  # 60 MME
    card = one(run(client, SIGN, [order], prefetch([lbp(10)])), OPIOID)
    res = [a for a in actions(card) if a["type"] == "create"][0]["resource"]
    codes = {c["code"] for c in res["medicationCodeableConcept"].get("coding", [])}
    naloxone_vs = {"7242", "1725059", "1870933", "2540703", "2637879", "2673091", "2685612"}
    naloxone_vs |= {"1725064", "1870935", "2540709", "2680741"}
    assert codes & naloxone_vs, codes
    assert res["status"] == "draft" and res["intent"] == "order"


def test_opioid_drafted_benzodiazepine_not_selected_still_critical(client: Any) -> None:
    order = oxycodone5(frequency=1, period=6)
    benzo = alprazolam()
    cards = run(
        client,
        SELECT,
        [order, benzo],
        prefetch([lbp(10)]),
        selections=[f"MedicationRequest/{order['id']}"],
    )
    assert one(cards, OPIOID)["indicator"] == "critical"


def test_opioid_drafted_benzodiazepine_order_sign_critical(client: Any) -> None:
    order = oxycodone5(frequency=1, period=6)
    benzo = med_request("197901", "lorazepam 1 MG Oral Tablet", period=12)
    cards = run(client, SIGN, [order, benzo], prefetch([lbp(10)]))
    assert one(cards, OPIOID)["indicator"] == "critical"


@pytest.mark.parametrize("status", ["stopped", "completed", "entered-in-error", "cancelled"])
def test_opioid_inactive_benzodiazepine_not_critical(client: Any, status: str) -> None:
    order = oxycodone5(frequency=1, period=6)
    benzo = alprazolam(status=status, authored=200)
    card = one(run(client, SIGN, [order], prefetch([lbp(10)], meds=[benzo])), OPIOID)
    assert card["indicator"] == "warning"
    assert "suggestions" not in card


def test_opioid_benzodiazepine_only_selected_no_opioid_card(client: Any) -> None:
    order = oxycodone5(frequency=1, period=6)
    benzo = alprazolam()
    cards = run(
        client,
        SELECT,
        [order, benzo],
        prefetch([lbp(10)]),
        selections=[f"MedicationRequest/{benzo['id']}"],
    )
    assert not of(cards, OPIOID)


@BOTH
@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("1010600", "buprenorphine 2 MG / naloxone 0.5 MG Sublingual Film"),
        ("351265", "buprenorphine 8 MG Sublingual Tablet"),
        ("1716057", "buprenorphine 0.15 MG Buccal Film"),
        ("904870", "168 HR buprenorphine 0.01 MG/HR Transdermal System"),
        ("1819", "buprenorphine"),
    ],
)
def test_buprenorphine_never_gets_opioid_card(
    client: Any, service: str, code: str, display: str
) -> None:
    order = med_request(code, display, frequency=1, period=1, period_unit="d", supply_days=30)
    assert not of(run(client, service, [order], prefetch([lbp(10)])), OPIOID)


def test_buprenorphine_text_only_no_opioid_card(client: Any) -> None:
    order = med_request(None, "Buprenorphine 8 mg sublingual tablet", supply_days=30)
    assert not of(run(client, SIGN, [order], prefetch([lbp(10)])), OPIOID)


def test_opioid_oud_reason_code_no_card(client: Any) -> None:
    order = oxycodone5(
        reasons=[cc(ICD10CM, "F11.20", "Opioid dependence, uncomplicated")],
    )
    assert not of(run(client, SIGN, [order], prefetch([lbp(10)])), OPIOID)


def test_opioid_oud_reason_reference_no_card(client: Any) -> None:
    oud = condition(ICD10CM, "F11.20", "Opioid dependence, uncomplicated", onset=400)
    order = oxycodone5(reason_refs=[f"Condition/{oud['id']}"])
    assert not of(run(client, SIGN, [order], prefetch([lbp(10), oud])), OPIOID)


def test_opioid_oud_in_history_but_reason_back_pain_still_fires(client: Any) -> None:
    oud = condition(ICD10CM, "F11.20", "Opioid dependence, uncomplicated", onset=400)
    order = oxycodone5(reasons=[cc(ICD10CM, "M54.50", "Low back pain, unspecified")])
    assert of(run(client, SIGN, [order], prefetch([lbp(10), oud])), OPIOID)


@pytest.mark.parametrize(("days", "suggested"), [(7, False), (8, True), (14, True)])
def test_opioid_days_supply_7_vs_8(client: Any, days: int, suggested: bool) -> None:
    order = oxycodone5(frequency=1, period=6, supply_days=days)  # 30 MME
    card = one(run(client, SIGN, [order], prefetch([lbp(10)])), OPIOID)
    assert re.search(rf"\b{days}\b", text(card)), text(card)
    updates = [a for a in actions(card) if a["type"] == "update"]
    assert bool(updates) is suggested, card.get("suggestions")
    assert not [a for a in actions(card) if a["type"] == "create"]
    if suggested:
        res = updates[0]["resource"]
        assert res["resourceType"] == "MedicationRequest"
        assert res["id"] == order["id"]
        assert res["status"] == "draft"
        supply = supply_of(res)
        assert supply is not None
        assert supply <= 7
        assert res["medicationCodeableConcept"] == order["medicationCodeableConcept"]


@pytest.mark.parametrize(("quantity", "suggested"), [(28, False), (32, True)])
def test_opioid_days_supply_from_quantity(client: Any, quantity: int, suggested: bool) -> None:
    order = oxycodone5(frequency=1, period=6, supply_days=None, quantity=quantity)  # 4/day
    card = one(run(client, SIGN, [order], prefetch([lbp(10)])), OPIOID)
    updates = [a for a in actions(card) if a["type"] == "update"]
    assert bool(updates) is suggested, card.get("suggestions")
    if suggested:
        res = updates[0]["resource"]
        assert res["id"] == order["id"]
        new_supply = supply_of(res)
        if new_supply is None:
            q = res["dispenseRequest"]["quantity"]["value"]
            assert q <= 28
        else:
            assert new_supply <= 7


def test_opioid_both_suggestions_when_both_conditions(client: Any) -> None:
    order = oxycodone15(frequency=1, period=6, supply_days=10)  # 90 MME, 10 days
    card = one(run(client, SIGN, [order], prefetch([lbp(10)])), OPIOID)
    assert card["indicator"] == "critical"
    types = sorted(a["type"] for a in actions(card))
    assert "create" in types and "update" in types
    assert card["selectionBehavior"] in ("any", "at-most-one")


@BOTH
def test_opioid_meperidine_mme_cannot_be_computed(client: Any, service: str) -> None:
    order = meperidine50(frequency=1, period=4)
    card = one(run(client, service, [order], prefetch([lbp(10)])), OPIOID)
    assert card["indicator"] == "warning"
    detail = text(card).lower()
    assert "meperidine" in detail, detail
    assert "factor" in detail or "conversion" in detail, detail


def test_opioid_meperidine_with_benzodiazepine_critical(client: Any) -> None:
    order = meperidine50(frequency=1, period=4)
    benzo = alprazolam(status="active", authored=30)
    card = one(run(client, SIGN, [order], prefetch([lbp(10)], meds=[benzo])), OPIOID)
    assert card["indicator"] == "critical"


def test_opioid_no_usable_dose_says_why(client: Any) -> None:
    order = oxycodone5(no_dosage=True, supply_days=5)
    card = one(run(client, SIGN, [order], prefetch([lbp(10)])), OPIOID)
    assert card["indicator"] == "warning"
    detail = text(card).lower()
    assert "dose" in detail, detail
    assert re.search(r"cannot|could not|not be computed|unable|missing|no usable", detail), detail


def test_opioid_text_only_medication(client: Any) -> None:
    order = med_request(None, "Oxycodone 5 mg tablet", supply_days=5)
    assert of(run(client, SIGN, [order], prefetch([lbp(10)])), OPIOID)


def test_opioid_ingredient_coded_medication(client: Any) -> None:
    order = med_request("7804", "oxycodone", supply_days=5)
    assert of(run(client, SIGN, [order], prefetch([lbp(10)])), OPIOID)


def test_opioid_contained_medication(client: Any) -> None:
    order = oxycodone5(frequency=1, period=6)
    concept = order.pop("medicationCodeableConcept")
    order["contained"] = [{"resourceType": "Medication", "id": "med1", "code": concept}]
    order["medicationReference"] = {"reference": "#med1"}
    card = one(run(client, SIGN, [order], prefetch([lbp(10)])), OPIOID)
    assert re.search(r"\b30(\.0)?\b", text(card)), text(card)


def test_opioid_not_selected_no_card(client: Any) -> None:
    order = oxycodone5()
    img = imaging_order()
    cards = run(
        client,
        SELECT,
        [order, img],
        prefetch([lbp(10)]),
        selections=[f"ServiceRequest/{img['id']}"],
    )
    assert not of(cards, OPIOID)
    assert of(cards, IMAGING)


def test_non_opioid_medication_no_card(client: Any) -> None:
    order = med_request("197806", "ibuprofen 600 MG Oral Tablet", supply_days=10)
    assert run(client, SIGN, [order], prefetch([lbp(10)])) == []


def test_opioid_card_shows_red_flags_in_detail(client: Any) -> None:
    rf = condition(*CANCER_HX, onset=2000, status="resolved")
    card = one(run(client, SIGN, [oxycodone5()], prefetch([lbp(10), rf])), OPIOID)
    assert "cancer" in text(card).lower()


def test_opioid_card_shows_active_cauda_equina_in_detail(client: Any) -> None:
    rf = condition(*CAUDA_EQUINA, onset=3)
    card = one(run(client, SIGN, [oxycodone5()], prefetch([lbp(10), rf])), OPIOID)
    assert "cauda equina" in text(card).lower()


def test_two_drafted_opioids_total_counts_only_active_orders(client: Any) -> None:
    """RULES: total = MME/day of this order plus MME/day of active opioid orders."""
    a = oxycodone5(frequency=1, period=6, dose=2)  # 60 MME
    b = hydrocodone10(frequency=1, period=6)  # 40 MME
    cards = of(run(client, SIGN, [a, b], prefetch([lbp(10)])), OPIOID)
    assert len(cards) == 2
    assert [c["indicator"] for c in cards] == ["warning", "warning"]


def test_opioid_context_from_reason_code_only(client: Any) -> None:
    order = oxycodone5(reasons=[cc(ICD10CM, "M54.50", "Low back pain, unspecified")])
    assert of(run(client, SIGN, [order], prefetch([])), OPIOID)


def test_two_opioid_drafts_two_cards(client: Any) -> None:
    a = oxycodone5(frequency=1, period=6)
    b = tramadol50(frequency=1, period=6, supply_days=5)
    cards = of(run(client, SIGN, [a, b], prefetch([lbp(10)])), OPIOID)
    assert len(cards) == 2


# =========================================================================== muscle relaxants


def _mr_cards(client: Any, service: str, order: dict, age: int = 40) -> list[dict[str, Any]]:
    return of(run(client, service, [order], prefetch([lbp(10)], age=age)), MR_DURATION)


@BOTH
@pytest.mark.parametrize(("days", "fires"), [(14, False), (21, False), (22, True), (30, True)])
def test_mr_duration_expected_supply(client: Any, service: str, days: int, fires: bool) -> None:
    order = cyclobenzaprine(supply_days=days)
    cards = _mr_cards(client, service, order)
    assert bool(cards) is fires
    if fires:
        card = cards[0]
        assert card["summary"] == f"Cyclobenzaprine for {days} days{MR_SUMMARY}"
        assert card["indicator"] == "warning"
        updates = [a for a in actions(card) if a["type"] == "update"]
        assert updates, card.get("suggestions")
        res = updates[0]["resource"]
        assert res["resourceType"] == "MedicationRequest" and res["id"] == order["id"]
        assert supply_of(res) == 14
        assert not res.get("dispenseRequest", {}).get("numberOfRepeatsAllowed")


@pytest.mark.parametrize("days", [21, 22, 365])
def test_mr_duration_validity_period_is_never_a_course(client: Any, days: int) -> None:
    """RULES.md v2: validityPeriod is how long the prescription may be filled, not taken."""
    order = cyclobenzaprine(validity=(0, days))
    assert not _mr_cards(client, SIGN, order)


@pytest.mark.parametrize(("days", "fires"), [(21, False), (22, True)])
def test_mr_duration_bounds_duration(client: Any, days: int, fires: bool) -> None:
    order = cyclobenzaprine(bounds_days=days)
    assert bool(_mr_cards(client, SIGN, order)) is fires


@pytest.mark.parametrize(("days", "fires"), [(21, False), (22, True)])
def test_mr_duration_bounds_period(client: Any, days: int, fires: bool) -> None:
    order = cyclobenzaprine(bounds_period=(0, days))
    assert bool(_mr_cards(client, SIGN, order)) is fires


@pytest.mark.parametrize(("quantity", "fires"), [(63, False), (66, True)])
def test_mr_duration_quantity_over_daily_dose(client: Any, quantity: int, fires: bool) -> None:
    order = cyclobenzaprine(quantity=quantity, frequency=1, period=8)  # 3 tablets/day
    assert bool(_mr_cards(client, SIGN, order)) is fires


@pytest.mark.parametrize(
    ("supply", "repeats", "fires"),
    [(7, 2, False), (11, 1, True), (10, 0, False), (7, 3, True)],
)
def test_mr_duration_refills(client: Any, supply: int, repeats: int, fires: bool) -> None:
    order = cyclobenzaprine(supply_days=supply, repeats=repeats)
    assert bool(_mr_cards(client, SIGN, order)) is fires


@pytest.mark.parametrize(("quantity", "repeats", "fires"), [(21, 2, False), (21, 3, True)])
def test_mr_duration_quantity_with_refills(
    client: Any, quantity: int, repeats: int, fires: bool
) -> None:
    order = cyclobenzaprine(quantity=quantity, repeats=repeats, frequency=1, period=8)
    assert bool(_mr_cards(client, SIGN, order)) is fires


def test_mr_duration_expected_supply_in_weeks(client: Any) -> None:
    order = cyclobenzaprine()
    order["dispenseRequest"] = {
        "expectedSupplyDuration": {"value": 4, "unit": "weeks", "system": UCUM, "code": "wk"}
    }
    assert _mr_cards(client, SIGN, order)
    order["dispenseRequest"]["expectedSupplyDuration"]["value"] = 3
    assert not _mr_cards(client, SIGN, order)


def test_mr_duration_expected_supply_takes_precedence(client: Any) -> None:
    order = cyclobenzaprine(supply_days=14, validity=(0, 90), bounds_days=60)
    assert not _mr_cards(client, SIGN, order)
    order = cyclobenzaprine(supply_days=30, validity=(0, 10))
    assert _mr_cards(client, SIGN, order)


def test_mr_duration_bounds_count_whatever_the_validity(client: Any) -> None:
    order = cyclobenzaprine(validity=(0, 14), bounds_days=60)
    assert _mr_cards(client, SIGN, order)
    order = cyclobenzaprine(validity=(0, 365), bounds_days=10)
    assert not _mr_cards(client, SIGN, order)


@pytest.mark.parametrize(
    "factory",
    [methocarbamol, tizanidine, baclofen],
    ids=["methocarbamol", "tizanidine", "baclofen"],
)
def test_mr_duration_other_relaxants(client: Any, factory: Any) -> None:
    assert _mr_cards(client, SIGN, factory(supply_days=30))
    assert not _mr_cards(client, SIGN, factory(supply_days=21))


@pytest.mark.parametrize(
    "display",
    ["Carisoprodol 350 mg tablet", "Metaxalone 800 mg tablet", "Orphenadrine ER 100 mg tablet"],
)
def test_mr_duration_text_only(client: Any, display: str) -> None:
    order = med_request(None, display, period=8, supply_days=30)
    assert _mr_cards(client, SIGN, order)


def test_mr_duration_active_long_order_not_judged_by_order_hooks(client: Any) -> None:
    active = cyclobenzaprine(status="active", authored=60, supply_days=30)
    cards = run(client, SIGN, [imaging_order()], prefetch([lbp(10)], meds=[active]))
    assert not of(cards, MR_DURATION)
    assert of(cards, IMAGING)


def test_mr_duration_order_select_only_selected(client: Any) -> None:
    mr = cyclobenzaprine(supply_days=30)
    img = imaging_order()
    cards = run(
        client, SELECT, [mr, img], prefetch([lbp(10)]), selections=[f"ServiceRequest/{img['id']}"]
    )
    assert not of(cards, MR_DURATION)


def test_mr_duration_card_shows_red_flags_in_detail(client: Any) -> None:
    rf = condition(*CAUDA_EQUINA, onset=3)
    card = one(
        run(client, SIGN, [cyclobenzaprine(supply_days=30)], prefetch([lbp(10), rf])), MR_DURATION
    )
    assert "cauda equina" in text(card).lower()


def test_mr_duration_no_back_pain_no_card(client: Any) -> None:
    cards = run(client, SIGN, [cyclobenzaprine(supply_days=30)], prefetch([]))
    assert cards == []


# --- older adult


@BOTH
@pytest.mark.parametrize(("age", "fires"), [(64, False), (65, True), (80, True)])
def test_mr_older_adult_age(client: Any, service: str, age: int, fires: bool) -> None:
    order = cyclobenzaprine(supply_days=7)
    cards = run(client, service, [order], prefetch([lbp(10)], age=age))
    found = of(cards, MR_OLDER)
    assert bool(found) is fires
    assert not of(cards, MR_DURATION)
    if fires:
        card = found[0]
        assert card["indicator"] == "warning"
        assert "Beers" in card["source"]["label"] or "Beers" in card["summary"]


def test_mr_older_adult_turns_65_today(client: Any) -> None:
    bd = TODAY.replace(year=TODAY.year - 65).isoformat()
    cards = run(client, SIGN, [cyclobenzaprine(supply_days=7)], prefetch([lbp(10)], birth_date=bd))
    assert of(cards, MR_OLDER)


def test_mr_older_adult_turns_65_tomorrow(client: Any) -> None:
    bd = (TODAY + timedelta(days=1)).replace(year=TODAY.year - 65).isoformat()
    cards = run(client, SIGN, [cyclobenzaprine(supply_days=7)], prefetch([lbp(10)], birth_date=bd))
    assert not of(cards, MR_OLDER)


@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("197446", "carisoprodol 350 MG Oral Tablet"),
        ("197502", "chlorzoxazone 500 MG Oral Tablet"),
        ("351254", "metaxalone 800 MG Oral Tablet"),
        ("197943", "methocarbamol 500 MG Oral Tablet"),
        ("994521", "12 HR orphenadrine citrate 100 MG Extended Release Oral Tablet"),
        ("828358", "24 HR cyclobenzaprine hydrochloride 15 MG Extended Release Oral Capsule"),
        ("21949", "cyclobenzaprine"),
        ("2101", "carisoprodol"),
    ],
)
def test_mr_older_adult_beers_products(client: Any, code: str, display: str) -> None:
    order = med_request(code, display, period=8, supply_days=7)
    assert of(run(client, SIGN, [order], prefetch([lbp(10)], age=70)), MR_OLDER)


def test_mr_older_adult_text_only(client: Any) -> None:
    order = med_request(None, "Cyclobenzaprine 10 mg tablet", period=8, supply_days=7)
    assert of(run(client, SIGN, [order], prefetch([lbp(10)], age=70)), MR_OLDER)


@pytest.mark.parametrize("factory", [tizanidine, baclofen], ids=["tizanidine", "baclofen"])
def test_mr_older_adult_excludes_baclofen_tizanidine(client: Any, factory: Any) -> None:
    cards = run(client, SIGN, [factory(supply_days=7)], prefetch([lbp(10)], age=80))
    assert not of(cards, MR_OLDER)
    assert cards == []


def test_mr_older_adult_and_duration_together(client: Any) -> None:
    """RULES.md v2 "One card per order": the Beers card alone, giving the course and a delete;
    no duration card ("avoid" and "shorten to 14 days" never side by side)."""
    order = methocarbamol(supply_days=30)
    cards = run(client, SIGN, [order], prefetch([lbp(10)], age=70))
    [card] = of(cards, MR_OLDER)
    assert not of(cards, MR_DURATION)
    assert "30 days" in card["detail"] and "over the 21-day limit" in card["detail"]
    [delete] = [a for a in actions(card) if a["type"] == "delete"]
    assert delete["resourceId"] == f"MedicationRequest/{order['id']}"


def test_mr_older_adult_active_order_not_judged(client: Any) -> None:
    active = cyclobenzaprine(status="active", authored=10, supply_days=10)
    cards = run(client, SIGN, [imaging_order()], prefetch([lbp(10)], age=70, meds=[active]))
    assert not of(cards, MR_OLDER)


def test_mr_older_adult_needs_back_pain_context(client: Any) -> None:
    assert run(client, SIGN, [cyclobenzaprine(supply_days=7)], prefetch([], age=70)) == []


# =========================================================================== ordering / mix


@BOTH
def test_mixed_orders_cards_most_urgent_first(client: Any, service: str) -> None:
    img = imaging_order()
    opioid = oxycodone15(frequency=1, period=6, supply_days=10)  # 90 MME -> critical
    mr = cyclobenzaprine(supply_days=30)
    cards = run(client, service, [img, opioid, mr], prefetch([lbp(10)], age=70))
    topics = [topic(c) for c in cards]
    assert topics[0] == OPIOID
    # v2: one card per Beers order (at 70 the relaxant gets the older-adult card only).
    assert sorted(topics) == sorted([IMAGING, OPIOID, MR_OLDER])
    assert len({c["uuid"] for c in cards}) == len(cards)


def test_red_flag_suppresses_imaging_only(client: Any) -> None:
    rf = condition(*CAUDA_EQUINA, onset=3)
    cards = run(
        client,
        SIGN,
        [imaging_order(), oxycodone5(), cyclobenzaprine(supply_days=30)],
        prefetch([lbp(10), rf]),
    )
    assert sorted(topic(c) for c in cards) == sorted([OPIOID, MR_DURATION])
