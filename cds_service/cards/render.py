"""Findings -> Cards, through one renderer per card topic."""

from __future__ import annotations

from collections.abc import Callable

from cds_service.cards import red_flag_note
from cds_service.cards.base import RenderContext
from cds_service.logic.findings import Finding, Topic
from cds_service.models import Card

Renderer = Callable[[Finding, RenderContext], Card]


def _catalogue() -> dict[Topic, Renderer]:
    # Renderers register here as their rules land (issues 3, 4 and 5).
    from cds_service.cards import imaging, muscle_relaxants, opioids, startback

    return {
        Topic.IMAGING_WITHOUT_RED_FLAGS: imaging.render,
        Topic.STARTBACK_SCREENING: startback.render_screening,
        Topic.STARTBACK_RESULT: startback.render_result,
        Topic.OPIOID_ORDER: opioids.render,
        Topic.MUSCLE_RELAXANT_DURATION: muscle_relaxants.render_duration,
        Topic.MUSCLE_RELAXANT_OLDER_ADULT: muscle_relaxants.render_older_adult,
    }


RENDERERS: dict[Topic, Renderer] = _catalogue()


def render_cards(findings: list[Finding], ctx: RenderContext) -> list[Card]:
    """One card per finding, in the findings' order (already most urgent first); every card but
    the imaging one names the red flags in the record (red_flag_note)."""
    cards = [RENDERERS[f.topic](f, ctx) for f in findings]
    if not any(f.topic is not Topic.IMAGING_WITHOUT_RED_FLAGS for f in findings):
        return cards
    base = red_flag_note.record_report(ctx)
    return [
        card.model_copy(update={"detail": red_flag_note.add_red_flags(card.detail, f, ctx, base)})
        for card, f in zip(cards, findings, strict=True)
    ]
