"""imaging-without-red-flags: no lumbar imaging in the first 6 weeks of back pain without red flags.

Recommendation: "Don't recommend advanced imaging (e.g. MRI) of the spine within the first six
weeks in patients with non-specific acute low back pain in the absence of red flags" (Choosing
Wisely, NASS). ACR Appropriateness Criteria LBP 2021 (variants 1-2): imaging is usually not
appropriate for acute or subacute LBP without red flags and no prior management. ACP 2011: do not
image nonspecific LBP routinely; age > 50 is a weaker risk factor, defer imaging. ACP 2017 and
NICE NG59: first-line care is advice, staying active and self-management.

When (order-select: the selected orders; order-sign: every draft order):
  - a draft ServiceRequest for lumbar spine imaging (value set lumbar-spine-imaging: CPT 72020-72220
    lumbar family, LOINC lumbar XR/CT/MR, or a text naming lumbar / lumbosacral spine with
    X-ray, radiograph, CT or MRI),
  - back-pain context (rules.evaluate() gates every rule on it),
  - no red flag in the record, on the counting red-flag screen or in this order's reason
    (red_flags.py, red_flag_screen.py),
  - an episode younger than imaging_window_days (42: day 41 fires, day 42 does not, as "shorter
    than 6 weeks"). Unknown onset counts as a new episode, and the card says so.
Then: a `warning` per imaging order, suggesting to delete the draft. Age >= 50 is named in the
card as a weaker risk factor and never changes the indicator (ACP 2011). The card says when the
counting red-flag screen was negative, or, without one, links to the screen app (RULES.md v2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cds_service.logic.chart import Chart
from cds_service.logic.fhir import CodeableConcept, ServiceRequest
from cds_service.logic.findings import Finding, Indicator, Topic
from cds_service.logic.guidelines import Citation
from cds_service.logic.red_flag_screen import RedFlagScreen
from cds_service.logic.rules.rule import ORDER_HOOKS, Rule
from cds_service.logic.terminology import CPT, normalise_code, normalise_system, value_set

LUMBAR_IMAGING_VALUE_SET = "lumbar-spine-imaging"

# Orders that are no longer requests (withdrawn or recorded in error) are not checked.
_INACTIVE_ORDER_STATUSES = frozenset({"entered-in-error", "revoked", "completed"})


@dataclass(frozen=True, kw_only=True)
class ImagingFinding(Finding):
    """A lumbar imaging order drafted early in an episode, with no red flag found."""

    order_id: str | None
    order_name: str
    # What the order images, for the summary: "X-ray", "CT", "MRI", or "imaging" when the order
    # does not say (RULES.md v2 "Summaries").
    modality: str
    # Days since back-pain onset ("day N of back pain"); None: onset unknown (a new episode).
    episode_days: int | None
    window_days: int
    age_years: int | None
    # Age at or above imaging_weaker_risk_age_years: named in the card, not a red flag.
    age_is_weaker_risk_factor: bool
    weaker_risk_age_years: int
    # The episode's counting red-flag screen, negative (a "yes" is a red flag, and then there is
    # no finding); None: no screen counts, and the card asks for one (RULES.md v2).
    red_flag_screen: RedFlagScreen | None
    red_flag_screen_days: int


def is_lumbar_imaging(order: ServiceRequest) -> bool:
    return value_set(LUMBAR_IMAGING_VALUE_SET).matches(order.code)


# Modality from the order's code: CPT ranges first (a code may come without a display), then the
# words of its texts and of the value set's display for its coding. MRI before CT before X-ray.
_CPT_MODALITY = (
    (72131, 72133, "CT"),
    (72141, 72158, "MRI"),
    (72020, 72120, "X-ray"),
    (72200, 72220, "X-ray"),
)
_TEXT_MODALITY = (
    (re.compile(r"\b(?:mri|mr|magnetic resonance)\b", re.IGNORECASE), "MRI"),
    (re.compile(r"\b(?:ct|cat scan|computed tomography)\b", re.IGNORECASE), "CT"),
    (
        re.compile(r"\b(?:x-?[- ]?rays?|xr|radiograph\w*|radiologic)\b", re.IGNORECASE),
        "X-ray",
    ),
)


def imaging_modality(code: CodeableConcept | None) -> str:
    """ "X-ray", "CT", "MRI", or "imaging" when the order does not say which."""
    if code is None:
        return "imaging"
    imaging = value_set(LUMBAR_IMAGING_VALUE_SET)
    texts = code.texts()
    for coding in code.coding:
        system, raw = normalise_system(coding.system), (coding.code or "").strip()
        if system == CPT and raw.isdigit():
            for low, high, modality in _CPT_MODALITY:
                if low <= int(raw) <= high:
                    return modality
        display = imaging.displays.get((system, normalise_code(system, raw)))
        if display:
            texts.append(display)
    for pattern, modality in _TEXT_MODALITY:
        if any(pattern.search(text) for text in texts):
            return modality
    return "imaging"


def evaluate(chart: Chart) -> list[ImagingFinding]:
    record, config = chart.record, chart.config
    episode_days = record.episode_days
    # Unknown onset (None) is a new episode; a future onset (data error) is day 0 at most.
    if episode_days is not None and episode_days >= config.imaging_window_days:
        return []
    orders = [
        order
        for order in record.service_orders_to_check
        if (order.status or "").lower() not in _INACTIVE_ORDER_STATUSES and is_lumbar_imaging(order)
    ]
    if not orders:
        return []
    age = record.age_years
    imaging = value_set(LUMBAR_IMAGING_VALUE_SET)
    findings: list[ImagingFinding] = []
    for order in orders:
        if chart.red_flags_of(order).present:
            continue
        findings.append(
            ImagingFinding(
                topic=Topic.IMAGING_WITHOUT_RED_FLAGS,
                indicator=Indicator.WARNING,
                order_reference=f"ServiceRequest/{order.id}" if order.id else None,
                order_id=order.id,
                order_name=imaging.describe(order.code),
                modality=imaging_modality(order.code),
                episode_days=max(episode_days, 0) if episode_days is not None else None,
                window_days=config.imaging_window_days,
                age_years=age,
                age_is_weaker_risk_factor=age is not None
                and age >= config.imaging_weaker_risk_age_years,
                weaker_risk_age_years=config.imaging_weaker_risk_age_years,
                red_flag_screen=chart.red_flag_screen,
                red_flag_screen_days=config.red_flag_screen_days,
            )
        )
    return findings


RULE = Rule(
    id="imaging-without-red-flags",
    hooks=ORDER_HOOKS,
    topics={
        # The card cites ACR AC 2021: it covers every modality (X-ray, CT, MRI) and the 6-week mark.
        Topic.IMAGING_WITHOUT_RED_FLAGS: Citation(
            "acr-ac-lbp-2021",
            (
                "acp-2017",
                "acp-2011-imaging",
                "acr-ac-lbp-2021",
                "choosing-wisely-nass",
                "nice-ng59",
            ),
        )
    },
    evaluate=evaluate,
)
