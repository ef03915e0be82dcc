"""The kinds of patient data a service reads, and the prefetch template of each.

Templates keep to the CDS Hooks 2.0 prefetch subset (read, type search, reference and token
parameters, `_count`, `_sort`); codes for the Observation query come from value sets.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache

from cds_service.logic.terminology import value_set


class DataKey(StrEnum):
    """Prefetch keys, also the names of the FHIR fallback queries."""

    PATIENT = "patient"
    CONDITIONS = "conditions"
    TEMPERATURE_OBSERVATIONS = "temperatureObservations"
    STARTBACK_OBSERVATIONS = "startbackObservations"
    MEDICATION_REQUESTS = "medicationRequests"
    PROCEDURES = "procedures"
    QUESTIONNAIRE_RESPONSES = "questionnaireResponses"
    ENCOUNTERS = "encounters"


# Value sets whose codes make up each Observation query.
OBSERVATION_VALUE_SETS = {
    DataKey.TEMPERATURE_OBSERVATIONS: "valueset-2.16.840.1.113762.1.4.1045.152",
    DataKey.STARTBACK_OBSERVATIONS: "startback-observations",
}


@cache
def _code_parameter(value_set_name: str) -> str:
    vs = value_set(value_set_name)
    return ",".join(f"{system}|{code}" for system, code in sorted(vs.codes))


def prefetch_template(key: DataKey) -> str:
    """The FHIR query of one data key, with `{{context.patientId}}` left for the client."""
    patient = "{{context.patientId}}"
    if key is DataKey.PATIENT:
        return f"Patient/{patient}"
    if key is DataKey.CONDITIONS:
        return f"Condition?patient={patient}"
    if key in OBSERVATION_VALUE_SETS:
        return f"Observation?patient={patient}&code={_code_parameter(OBSERVATION_VALUE_SETS[key])}"
    if key is DataKey.MEDICATION_REQUESTS:
        # Every status: the corticosteroid and relaxant windows need past and stopped orders.
        return f"MedicationRequest?patient={patient}"
    if key is DataKey.PROCEDURES:
        return f"Procedure?patient={patient}"
    if key is DataKey.QUESTIONNAIRE_RESPONSES:
        # No `questionnaire` filter: one query brings both the STarT Back responses (ours, LOINC's,
        # or known only by their item codes) and the red-flag screens.
        return f"QuestionnaireResponse?patient={patient}"
    if key is DataKey.ENCOUNTERS:
        # For the hospice discharges of the last 12 months (end-of-life check). CDS Hooks 2.0 has
        # no relative dates, so the window is applied when the record is read.
        return f"Encounter?patient={patient}"
    raise ValueError(key)


def render_template(template: str, patient_id: str) -> str:
    return template.replace("{{context.patientId}}", patient_id)


# The resource types each key may hold (anything else in its Bundle is ignored).
RESOURCE_TYPES: dict[DataKey, frozenset[str]] = {
    DataKey.PATIENT: frozenset({"Patient"}),
    DataKey.CONDITIONS: frozenset({"Condition"}),
    DataKey.TEMPERATURE_OBSERVATIONS: frozenset({"Observation"}),
    DataKey.STARTBACK_OBSERVATIONS: frozenset({"Observation"}),
    DataKey.MEDICATION_REQUESTS: frozenset({"MedicationRequest", "Medication"}),
    DataKey.PROCEDURES: frozenset({"Procedure"}),
    DataKey.QUESTIONNAIRE_RESPONSES: frozenset({"QuestionnaireResponse"}),
    DataKey.ENCOUNTERS: frozenset({"Encounter"}),
}

# Keys a call can do without: when one is neither prefetched nor fetchable, the call goes on
# without it (logged as "absent") instead of ending in 412. Encounters only ever silence cards
# (a hospice discharge); a client that prefetches the other keys but not this one, and gives no
# FHIR access, still gets the cards, and the Conditions still find end-of-life care.
OPTIONAL_KEYS: frozenset[DataKey] = frozenset({DataKey.ENCOUNTERS})
