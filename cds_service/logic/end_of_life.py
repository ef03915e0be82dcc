"""End-of-life care: no card at all (RULES.md v2 "Whose data, and which patients").

After the CDC 2022 opioid CDS "End of Life Assessment" (cdc-opioid-exclusions.md): a patient in
end-of-life care is not the population any of these guidelines address, and a prompt to screen,
shorten a course or avoid imaging is noise at the end of life. Two ways in:

- an active (active / recurrence / relapse) Condition in the CDC terminal-conditions or
  limited-life-expectancy value set (Z51.5 palliative care is in the former), not refuted or
  entered in error. Unlike the CDC's CQL, any category counts: many feeds leave category out;
- an Encounter that started (else ended) within the window and whose discharge disposition is
  hospice (the CDC set, or FHIR `hosp`). An Encounter entered in error or cancelled never took
  place, so it does not count (RULES.md is silent; the CDC counts only encounters that happened
  or are planned).
"""

from __future__ import annotations

from cds_service.logic.back_pain import is_clinically_active, is_excluded_verification
from cds_service.logic.config import RuleConfig
from cds_service.logic.dates import parse_fhir_date, within_days
from cds_service.logic.fhir import Condition, Encounter
from cds_service.logic.record import PatientRecord
from cds_service.logic.terminology import value_set

END_OF_LIFE_CONDITIONS = "end-of-life-conditions"
HOSPICE_DISPOSITIONS = "end-of-life-discharge-disposition"
_IGNORED_ENCOUNTER_STATUSES = frozenset({"entered-in-error", "cancelled"})


def is_end_of_life_condition(condition: Condition) -> bool:
    """An active terminal or limited-life-expectancy Condition (by code, not display text)."""
    if is_excluded_verification(condition) or not is_clinically_active(condition):
        return False
    return value_set(END_OF_LIFE_CONDITIONS).matching_coding(condition.code) is not None


def is_recent_hospice_discharge(encounter: Encounter, record: PatientRecord, days: int) -> bool:
    """An Encounter within the last `days` days (period.start, else period.end) whose
    discharge disposition is hospice."""
    if (encounter.status or "").strip().lower() in _IGNORED_ENCOUNTER_STATUSES:
        return False
    hospitalization = encounter.hospitalization
    disposition = hospitalization.dischargeDisposition if hospitalization else None
    if value_set(HOSPICE_DISPOSITIONS).matching_coding(disposition) is None:
        return False
    period = encounter.period
    when = parse_fhir_date((period.start or period.end) if period else None)
    return within_days(when, record.today, days)


def in_end_of_life_care(record: PatientRecord, config: RuleConfig) -> bool:
    """True when the record shows end-of-life care: then the service gives no card at all."""
    if any(is_end_of_life_condition(c) for c in record.conditions):
        return True
    days = config.end_of_life_encounter_window_days
    return any(is_recent_hospice_discharge(e, record, days) for e in record.encounters)
