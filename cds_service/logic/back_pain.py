"""Back-pain context and episode onset (RULES.md, "Back-pain context (all cards need it)").

- A Condition coded in the low-back-pain value set counts when its clinicalStatus is active,
  recurrence or relapse, and its verificationStatus is not refuted or entered-in-error.
  Assumption: a Condition with no clinicalStatus and no abatement is a current problem-list
  entry (FHIR requires clinicalStatus except for entered-in-error, but some feeds omit it).
- A draft order counts when its reasonCode, or a Condition it names in reasonReference, is such a code.
- Episode onset: the earliest onsetDateTime (else onsetPeriod.start, else recordedDate) of the
  active back-pain Conditions; unknown when none of them has a date.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from cds_service.logic.dates import parse_fhir_date
from cds_service.logic.fhir import CodeableConcept, Condition, DraftOrder, contained_resource
from cds_service.logic.terminology import value_set

LBP_VALUE_SET = "lbp-diagnosis"
ACTIVE_CLINICAL_STATUSES = frozenset({"active", "recurrence", "relapse"})
EXCLUDED_VERIFICATION_STATUSES = frozenset({"refuted", "entered-in-error"})


def _status_code(concept: CodeableConcept | None) -> str | None:
    if concept is None:
        return None
    for coding in concept.coding:
        if coding.code:
            return coding.code.strip().lower()
    return concept.text.strip().lower() if concept.text else None


def is_excluded_verification(condition: Condition) -> bool:
    return _status_code(condition.verificationStatus) in EXCLUDED_VERIFICATION_STATUSES


def is_clinically_active(condition: Condition) -> bool:
    status = _status_code(condition.clinicalStatus)
    if status is None:
        return condition.abatementDateTime is None
    return status in ACTIVE_CLINICAL_STATUSES


def condition_onset(condition: Condition) -> date | None:
    """onsetDateTime, else onsetPeriod.start, else recordedDate."""
    return (
        parse_fhir_date(condition.onsetDateTime)
        or parse_fhir_date(condition.onsetPeriod.start if condition.onsetPeriod else None)
        or parse_fhir_date(condition.recordedDate)
    )


def is_back_pain_code(concept: CodeableConcept | None) -> bool:
    return value_set(LBP_VALUE_SET).matches(concept)


def is_active_back_pain(condition: Condition) -> bool:
    return (
        is_back_pain_code(condition.code)
        and is_clinically_active(condition)
        and not is_excluded_verification(condition)
    )


def order_has_back_pain_reason(
    order: DraftOrder, conditions_by_id: Mapping[str, Condition]
) -> bool:
    if any(is_back_pain_code(reason) for reason in order.reasonCode):
        return True
    for ref in order.reasonReference:
        condition = resolve_condition(ref.reference, order.contained, conditions_by_id)
        if condition is not None and not is_excluded_verification(condition):
            if is_back_pain_code(condition.code):
                return True
    return False


def resolve_condition(
    reference: str | None,
    contained: Iterable[dict[str, object]],
    conditions_by_id: Mapping[str, Condition],
) -> Condition | None:
    """A Condition named by a reference: contained (#id) or in the record (Condition/id)."""
    if not reference:
        return None
    if reference.startswith("#"):
        return contained_resource(reference, contained, Condition)
    kind, _, rid = reference.rpartition("/")
    if kind and not kind.endswith("Condition"):
        return None
    return conditions_by_id.get(rid)


def episode_onset(conditions: Iterable[Condition]) -> date | None:
    onsets = [d for d in (condition_onset(c) for c in conditions) if d is not None]
    return min(onsets) if onsets else None
