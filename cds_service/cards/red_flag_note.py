"""Red flags in the detail of every card but the imaging one (RULES.md: red flags "suppress the
imaging warning; shown in the card detail of other cards").

An opioid, a muscle relaxant or STarT Back stratification all assume non-specific low back pain;
a red flag in the record means serious pathology has to be considered first, so the card says
which flags it found and on what evidence.
"""

from __future__ import annotations

from cds_service.cards.base import RenderContext
from cds_service.logic.fhir import DraftOrder
from cds_service.logic.findings import Finding, Topic
from cds_service.logic.red_flags import RedFlagReport, record_red_flags, with_order_reason

# Where the paragraph goes: before the advice, else before the citations, else at the end.
_ANCHORS = ("\n\n**Instead", "\n\n**What to do", "\n\n**Guidelines", "\n\n**Guideline")
MAX_LISTED = 6


def _order(ctx: RenderContext, reference: str | None) -> DraftOrder | None:
    if not reference:
        return None
    for order in ctx.record.draft_orders:
        if f"{order.resourceType}/{order.id}" == reference:
            return order
    return None


def paragraph(report: RedFlagReport) -> str | None:
    if not report.present:
        return None
    labels = {check.flag: check.label for check in report.checked}
    items = [f"{labels[hit.flag]}: {hit.evidence}" for hit in report.found[:MAX_LISTED]]
    more = len(report.found) - MAX_LISTED
    listed = "; ".join(items) + (f"; and {more} more" if more > 0 else "")
    return (
        f"**Red flags in the record:** {listed}. Consider serious pathology (cancer, infection, "
        "fracture, cauda equina) before treating this as non-specific low back pain."
    )


def add_red_flags(
    detail: str | None, finding: Finding, ctx: RenderContext, base: RedFlagReport
) -> str | None:
    """`detail` with the red-flag paragraph inserted, for every topic but imaging."""
    if finding.topic is Topic.IMAGING_WITHOUT_RED_FLAGS:
        return detail
    order = _order(ctx, finding.order_reference)
    report = with_order_reason(base, order, ctx.record) if order is not None else base
    text = paragraph(report)
    if text is None:
        return detail
    if not detail:
        return text
    for anchor in _ANCHORS:
        at = detail.find(anchor)
        if at >= 0:
            return f"{detail[:at]}\n\n{text}{detail[at:]}"
    return f"{detail}\n\n{text}"


def record_report(ctx: RenderContext) -> RedFlagReport:
    return record_red_flags(ctx.record, ctx.config)
