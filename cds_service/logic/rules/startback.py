"""STarT Back stratified care: screen each new episode, then match treatment to the risk group.

NICE NG59 1.1.2: "Consider using risk stratification (for example, the STarT Back risk
assessment tool) at first point of contact with a healthcare professional for each new episode
of low back pain with or without sciatica to inform shared decision-making about stratified
management." Keele STarT Back (stratified care): low risk - advice, reassurance and
self-management; medium risk - physiotherapy; high risk - psychologically informed
physiotherapy (combined physical and psychological care).

startback-screening
  When: patient-view or encounter-start, back-pain context, and no STarT Back result (Observation
        91352-5 / 91351-7, or a completed QuestionnaireResponse) in the last 180 days
        (`startback_lookback_days`; a result exactly 180 days old still counts).
  Then: `info` "Screen with STarT Back", with the questionnaire app and a Task to complete it.
startback-result
  When: the same hooks and context, and a result in that window (the most recent one).
  Then: `info` with the risk group and its matched care; a total >= 4 without a subscale has no
        risk group, and the card says the psychosocial subscale is needed.
The two never fire together: one rule decides between them.

Assumption: 180 days stands for "each new episode" - the record rarely says when an episode ends,
and a screen older than six months no longer describes the current one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from cds_service.logic import startback
from cds_service.logic.chart import Chart
from cds_service.logic.findings import Finding, Indicator, Topic
from cds_service.logic.guidelines import Citation
from cds_service.logic.rules.rule import CHART_HOOKS, Rule
from cds_service.logic.startback import RiskGroup, StartBackResult


@dataclass(frozen=True, kw_only=True)
class StartBackScreeningFinding(Finding):
    topic: Topic = Topic.STARTBACK_SCREENING
    indicator: Indicator = Indicator.INFO
    lookback_days: int
    episode_days: int | None
    # The most recent result outside the window, when there is one (shown for context).
    previous: StartBackResult | None = None
    previous_days_ago: int | None = None


@dataclass(frozen=True, kw_only=True)
class StartBackResultFinding(Finding):
    topic: Topic = Topic.STARTBACK_RESULT
    indicator: Indicator = Indicator.INFO
    result: StartBackResult
    days_ago: int

    @property
    def risk(self) -> RiskGroup | None:
        return self.result.risk


def evaluate(chart: Chart) -> Sequence[Finding]:
    record = chart.record
    lookback = chart.config.startback_lookback_days
    current = startback.latest_result(
        record.observations, record.questionnaire_responses, record.today, lookback
    )
    if current is not None:
        return [
            StartBackResultFinding(result=current, days_ago=_days_ago(current.on, record.today))
        ]
    previous = next(
        (
            r
            for r in startback.all_results(record.observations, record.questionnaire_responses)
            if r.on < record.today
        ),
        None,
    )
    return [
        StartBackScreeningFinding(
            lookback_days=lookback,
            episode_days=record.episode_days,
            previous=previous,
            previous_days_ago=(record.today - previous.on).days if previous else None,
        )
    ]


def _days_ago(on: date, today: date) -> int:
    return max(0, (today - on).days)


RULE = Rule(
    id="startback",
    hooks=CHART_HOOKS,
    topics={
        Topic.STARTBACK_SCREENING: Citation("nice-ng59", ("nice-ng59",)),
        Topic.STARTBACK_RESULT: Citation("keele-startback", ("keele-startback", "nice-ng59")),
    },
    evaluate=evaluate,
)
