"""The link to the patient's self-care plan page, shared by the cards that offer it."""

from __future__ import annotations

from cds_service.cards.base import RenderContext
from cds_service.models import Link
from cds_service.routes import SELF_CARE_PATH

SELF_CARE_LABEL = "Self-care plan for the patient"


def self_care_link(ctx: RenderContext) -> Link:
    """RULES.md v2: an `absolute` link (a plain page, no SMART launch: it shows no patient data)."""
    return Link(
        label=SELF_CARE_LABEL, url=f"{ctx.public_base_url}{SELF_CARE_PATH}", type="absolute"
    )
