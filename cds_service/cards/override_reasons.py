"""The service's own override reasons: one registry that the cards offer and /analytics reads.

Cards offer these codes (system `urn:lbp-cds:override-reason`) as `overrideReasons`; an EHR sends
the chosen one back in feedback, sometimes without its display (the CDS Hooks sandbox does), so
the analytics take the display from here. Plain data only: importing this module pulls in no card
rendering.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

OVERRIDE_REASON_SYSTEM = "urn:lbp-cds:override-reason"


class OverrideReason(NamedTuple):
    """A code and its display; unpacks as `override_reason(*REASON)` in the cards."""

    code: str
    display: str


# imaging-without-red-flags
RED_FLAG_NOT_CODED = OverrideReason("red-flag-not-coded", "Red flag present but not coded")
FAILED_CONSERVATIVE_CARE = OverrideReason(
    "failed-conservative-care", "Failed 6 weeks of conservative care"
)
SURGERY_CANDIDATE = OverrideReason("surgery-candidate", "Surgery or intervention candidate")

# opioid orders
NONOPIOID_INSUFFICIENT = OverrideReason(
    "nonopioid-insufficient", "Nonopioid therapy tried and insufficient"
)
NONOPIOID_CONTRAINDICATED = OverrideReason(
    "nonopioid-contraindicated", "Nonopioid therapy contraindicated"
)
ESTABLISHED_OPIOID_THERAPY = OverrideReason(
    "established-opioid-therapy", "Continuing established long-term opioid therapy"
)
PALLIATIVE_CARE = OverrideReason("palliative-care", "Cancer, palliative or end-of-life care")
BENZODIAZEPINE_REVIEWED = OverrideReason(
    "benzodiazepine-reviewed", "Benzodiazepine co-prescribing reviewed"
)

# muscle relaxants (duration, older adults)
SPASTICITY = OverrideReason("spasticity", "Used for spasticity, not low back pain")
BENEFIT_DOCUMENTED = OverrideReason(
    "benefit-documented", "Benefit documented; reassessment planned"
)
SPECIALIST_ADVICE = OverrideReason("specialist-advice", "Continued on specialist advice")
BENEFIT_OUTWEIGHS_RISK = OverrideReason(
    "benefit-outweighs-risk", "Benefit outweighs risk, discussed with patient"
)
ALTERNATIVES_FAILED = OverrideReason(
    "alternatives-failed", "Safer alternatives tried or contraindicated"
)

# STarT Back screening
SCREENED_ELSEWHERE = OverrideReason(
    "screened-elsewhere", "Already screened; result recorded elsewhere"
)
NOT_NEW_EPISODE = OverrideReason("not-new-episode", "Not a new episode of low back pain")
PATIENT_DECLINED = OverrideReason("patient-declined", "Patient declined the questionnaire")

# STarT Back result: the suggested referral (v2)
ALREADY_REFERRED = OverrideReason("already-referred", "Already referred or in treatment")
REFERRAL_DECLINED = OverrideReason("referral-declined", "Patient declined the referral")


def _registry(*reasons: OverrideReason) -> Mapping[str, OverrideReason]:
    by_code: dict[str, OverrideReason] = {}
    for reason in reasons:
        if reason.code in by_code:
            raise ValueError(f"override reason {reason.code!r} is listed twice")
        by_code[reason.code] = reason
    return MappingProxyType(by_code)


OVERRIDE_REASONS: Mapping[str, OverrideReason] = _registry(
    RED_FLAG_NOT_CODED,
    FAILED_CONSERVATIVE_CARE,
    SURGERY_CANDIDATE,
    NONOPIOID_INSUFFICIENT,
    NONOPIOID_CONTRAINDICATED,
    ESTABLISHED_OPIOID_THERAPY,
    PALLIATIVE_CARE,
    BENZODIAZEPINE_REVIEWED,
    SPASTICITY,
    BENEFIT_DOCUMENTED,
    SPECIALIST_ADVICE,
    BENEFIT_OUTWEIGHS_RISK,
    ALTERNATIVES_FAILED,
    SCREENED_ELSEWHERE,
    NOT_NEW_EPISODE,
    PATIENT_DECLINED,
    ALREADY_REFERRED,
    REFERRAL_DECLINED,
)


def own_display(system: str | None, code: str | None) -> str | None:
    """The service's display for one of its own override-reason codes, else None."""
    if system != OVERRIDE_REASON_SYSTEM or code is None:
        return None
    reason = OVERRIDE_REASONS.get(code)
    return reason.display if reason else None
