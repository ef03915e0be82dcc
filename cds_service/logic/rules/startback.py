"""STarT Back stratified care: screen each new episode, then match treatment to the risk group.

NICE NG59 1.1.2: "Consider using risk stratification (for example, the STarT Back risk
assessment tool) at first point of contact with a healthcare professional for each new episode
of low back pain with or without sciatica to inform shared decision-making about stratified
management." Keele STarT Back (stratified care): low risk - advice, reassurance and
self-management; medium risk - physiotherapy; high risk - psychologically informed
physiotherapy (combined physical and psychological care).

startback-screening
  When: patient-view or encounter-start, back-pain context, no counting result (below), and a
        new episode: onset within the last 90 days (`startback_new_episode_days`; an onset
        exactly 90 days ago is still "within the last 90 days", 91 is not) or unknown (v2). A
        chronic episode with no result gets no card: silence beats a card on every chart open.
  Then: `info` "Screen with STarT Back", with the questionnaire app and a Task to complete it;
        it names the newest unscorable response in the window (date, missing items), if any.
startback-result
  When: the same hooks and context, and a counting result: dated within the last 180 days
        (`startback_lookback_days`; exactly 180 counts) and not before the episode onset (v2).
        The newest counting result is used, whatever the episode's age.
  Then: `info` with the risk group and its matched care; a total >= 4 without a subscale has no
        risk group, and the card says the psychosocial subscale is needed. Medium and high risk:
        the referral for the matched care (logic/stratified_care.py), for the card to suggest;
        low risk: the patient's self-care plan (v2).
The two never fire together: one rule decides between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from cds_service.logic import startback, stratified_care
from cds_service.logic.chart import Chart
from cds_service.logic.findings import Finding, Indicator, Topic
from cds_service.logic.guidelines import Citation
from cds_service.logic.rules.rule import CHART_HOOKS, Rule
from cds_service.logic.startback import RiskGroup, StartBackResult, UnscorableResponse
from cds_service.logic.stratified_care import Referral as Referral  # carried by the finding


class PreviousWhy(StrEnum):
    """Why the newest earlier result does not count."""

    BEFORE_ONSET = "before-onset"
    TOO_OLD = "too-old"


@dataclass(frozen=True, kw_only=True)
class StartBackScreeningFinding(Finding):
    topic: Topic = Topic.STARTBACK_SCREENING
    indicator: Indicator = Indicator.INFO
    lookback_days: int
    episode_days: int | None
    # The most recent result that does not count, when there is one (shown for context).
    previous: StartBackResult | None = None
    previous_days_ago: int | None = None
    previous_why: PreviousWhy | None = None
    # The newest completed response in the window that could not be scored (v2).
    unscorable: UnscorableResponse | None = None


@dataclass(frozen=True, kw_only=True)
class StartBackResultFinding(Finding):
    topic: Topic = Topic.STARTBACK_RESULT
    indicator: Indicator = Indicator.INFO
    result: StartBackResult
    days_ago: int
    # Medium and high risk: the referral to suggest (v2).
    referral: Referral | None = None

    @property
    def risk(self) -> RiskGroup | None:
        return self.result.risk

    @property
    def self_care_plan(self) -> bool:
        """Low risk: the self-care plan instead of a referral (v2)."""
        return stratified_care.self_care_plan_matches(self.risk)


def is_new_episode(episode_days: int | None, new_episode_days: int) -> bool:
    """RULES.md (v2): onset within the last `new_episode_days` days (inclusive) or unknown; an
    onset dated after today is a new episode too."""
    return episode_days is None or episode_days <= new_episode_days


def evaluate(chart: Chart) -> Sequence[Finding]:
    record = chart.record
    config = chart.config
    lookback = config.startback_lookback_days
    onset = record.episode_onset
    observations, responses = record.observations, record.questionnaire_responses
    current = startback.latest_result(observations, responses, record.today, lookback, onset)
    if current is not None:
        return [
            StartBackResultFinding(
                result=current,
                days_ago=_days_ago(current.on, record.today),
                referral=stratified_care.referral_for(current.risk, record),
            )
        ]
    if not is_new_episode(record.episode_days, config.startback_new_episode_days):
        return []
    previous = next(
        (r for r in startback.all_results(observations, responses) if r.on < record.today),
        None,
    )
    why = None
    if previous is not None:
        too_old = (record.today - previous.on).days > lookback
        why = PreviousWhy.TOO_OLD if too_old else PreviousWhy.BEFORE_ONSET
    return [
        StartBackScreeningFinding(
            lookback_days=lookback,
            episode_days=record.episode_days,
            previous=previous,
            previous_days_ago=(record.today - previous.on).days if previous else None,
            previous_why=why,
            unscorable=startback.latest_unscorable(responses, record.today, lookback, onset),
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
