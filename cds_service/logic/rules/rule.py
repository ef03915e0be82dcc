"""The Rule: the one record of a clinical rule."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cds_service.logic.chart import Chart
from cds_service.logic.findings import Finding, Topic
from cds_service.logic.guidelines import Citation

PATIENT_VIEW = "patient-view"
ENCOUNTER_START = "encounter-start"
ORDER_SELECT = "order-select"
ORDER_SIGN = "order-sign"
CHART_HOOKS = frozenset({PATIENT_VIEW, ENCOUNTER_START})
ORDER_HOOKS = frozenset({ORDER_SELECT, ORDER_SIGN})


@dataclass(frozen=True)
class Rule:
    """A rule: its id, the hooks it runs on, the card topics it can give with what each card
    cites, and the function that reads the chart and returns its findings."""

    id: str
    hooks: frozenset[str]
    topics: Mapping[Topic, Citation]
    evaluate: Callable[[Chart], Sequence[Finding]]
