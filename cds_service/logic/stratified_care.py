"""Stratified care as an order: the referral a STarT Back risk group calls for.

RULES.md v2 "Red-flag screen and stratified care": the startback-result card suggests the matched
care as a resource to create. Keele STarT Back stratified care: medium risk - physiotherapy; high
risk - psychologically informed physiotherapy (combined physical and psychological care); low
risk - advice and self-management, no referral. A total >= 4 without the subscale has no risk
group, so no referral either: medium and high cannot be told apart.

The referral is for the back pain the record holds: the Condition that dates the episode (the
earliest onset; RULES.md "Episode onset"), named by reference when it has an id, else by its code.
The codes are in `data/stratified-care-referrals.json` (sources in data/SOURCES.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

from cds_service.logic.back_pain import LBP_VALUE_SET, condition_onset
from cds_service.logic.fhir import CodeableConcept, Coding, Condition
from cds_service.logic.record import PatientRecord
from cds_service.logic.startback import RiskGroup
from cds_service.logic.terminology import normalise_code, normalise_system, value_set

REFERRAL_CODES = "stratified-care-referrals.json"


@dataclass(frozen=True)
class Referral:
    """What a referral order for the matched care needs from the record and the code tables."""

    risk: RiskGroup
    service: Coding  # ServiceRequest.code
    category: Coding  # ServiceRequest.category
    performer_type: Coding  # ServiceRequest.performerType
    # "Condition/<id>" of the back-pain Condition the referral is for, with its name (its text,
    # else the display of its back-pain code)...
    reason_reference: str | None
    reason_display: str | None
    # ...else its back-pain code (or the default code when the record holds no such Condition).
    reason_code: CodeableConcept | None


@dataclass(frozen=True)
class _Codes:
    referrals: dict[RiskGroup, Coding]
    category: Coding
    performer_type: Coding
    default_reason: Coding


@cache
def _codes() -> _Codes:
    text = resources.files("cds_service.logic").joinpath("data", REFERRAL_CODES).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return _Codes(
        referrals={RiskGroup(k): Coding.model_validate(v) for k, v in data["referrals"].items()},
        category=Coding.model_validate(data["category"]),
        performer_type=Coding.model_validate(data["performerType"]),
        default_reason=Coding.model_validate(data["defaultReason"]),
    )


def _episode_condition(conditions: tuple[Condition, ...]) -> Condition | None:
    """The back-pain Condition that dates the episode: the earliest onset among those the record
    can reference (an id), else among all; an undated one only when none is dated."""
    if not conditions:
        return None
    with_id = tuple(c for c in conditions if c.id)
    pool = with_id or conditions
    # min() keeps the first of equals, so record order breaks ties.
    return min(pool, key=lambda c: condition_onset(c) or date.max)


def _name(concept: CodeableConcept | None) -> str | None:
    texts = [t.strip() for t in concept.texts()] if concept else []
    return next((t for t in texts if t), None)


def _back_pain_code(condition: Condition) -> CodeableConcept:
    """The code that makes the Condition back pain, rebuilt from the value set's member (a
    record's coding may carry an OID system or stray whitespace that a new resource must not),
    with the Condition's text; a Condition found by its text alone keeps only that text."""
    members = value_set(LBP_VALUE_SET)
    coding = members.matching_coding(condition.code)
    text = _name(condition.code)
    if coding is None or not coding.code:
        return CodeableConcept(text=text)
    system = normalise_system(coding.system) or None
    code = coding.code.strip()
    own = (coding.display or "").strip() or None
    display = members.displays.get((system or "", normalise_code(system or "", code))) or own
    return CodeableConcept(
        coding=[Coding(system=system, code=code, display=display)],
        text=text,
    )


def self_care_plan_matches(risk: RiskGroup | None) -> bool:
    """Low risk: advice, reassurance and self-management, which the self-care plan page is."""
    return risk is RiskGroup.LOW


def referral_for(risk: RiskGroup | None, record: PatientRecord) -> Referral | None:
    """The referral the risk group calls for, or None (low risk, or no risk group)."""
    codes = _codes()
    service = codes.referrals.get(risk) if risk is not None else None
    if risk is None or service is None:
        return None
    condition = _episode_condition(record.back_pain_conditions)
    if condition is None:
        code = CodeableConcept(coding=[codes.default_reason])
    else:
        code = _back_pain_code(condition)
    reference = f"Condition/{condition.id}" if condition and condition.id else None
    display = code.text or next((c.display for c in code.coding if c.display), None)
    return Referral(
        risk=risk,
        service=service,
        category=codes.category,
        performer_type=codes.performer_type,
        reason_reference=reference,
        reason_display=display if reference else None,
        reason_code=None if reference else code,
    )
