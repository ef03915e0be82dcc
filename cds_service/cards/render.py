"""Findings -> Cards, through one renderer per card topic."""

from __future__ import annotations

from collections.abc import Callable

from cds_service.cards import imaging, muscle_relaxants, opioids, startback
from cds_service.cards.base import RenderContext
from cds_service.logic.findings import Finding, Topic
from cds_service.models import Card

Renderer = Callable[[Finding, RenderContext], Card]

RENDERERS: dict[Topic, Renderer] = {
    Topic.IMAGING_WITHOUT_RED_FLAGS: imaging.render,
    Topic.STARTBACK_SCREENING: startback.render_screening,
    Topic.STARTBACK_RESULT: startback.render_result,
    Topic.OPIOID_ORDER: opioids.render,
    Topic.MUSCLE_RELAXANT_DURATION: muscle_relaxants.render_duration,
    Topic.MUSCLE_RELAXANT_OLDER_ADULT: muscle_relaxants.render_older_adult,
}


def render_cards(findings: list[Finding], ctx: RenderContext) -> list[Card]:
    """One card per finding, in the findings' order (already most urgent first)."""
    return [RENDERERS[f.topic](f, ctx) for f in findings]
