"""Keele STarT Back Screening Tool: scoring, and the results a patient record holds.

Scoring (Keele scoring guide; LOINC 91352-5 term description; clinical-codes.md §7):
- Items 1-8: Agree = 1, Disagree = 0 (the interview variant: Yes = 1, No = 0). Item 9
  (bothersomeness): Very much or Extremely = 1; Not at all, Slightly or Moderately = 0.
- Total = items 1-9 (0-9, LOINC 91351-7); psychosocial subscale = items 5-9 (0-5, 91350-9).
- Risk (91352-5): high if the subscale is >= 4; else low if the total is <= 3; else medium.
  The cut-offs belong to the validated instrument (Keele asks that it is not modified), so they
  are constants here, not settings.

A result is an Observation (91352-5 risk, 91351-7 total, 91350-9 subscale, alone or as
components of one panel Observation) or a completed / amended QuestionnaireResponse that this
module scores itself. Codes are read from the `startback-*` value sets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from functools import cache

from cds_service.logic.dates import counts_in_episode, parse_fhir_date, parse_fhir_instant
from cds_service.logic.fhir import (
    CodeableConcept,
    Coding,
    Observation,
    QuestionnaireAnswer,
    QuestionnaireResponse,
    QuestionnaireResponseItem,
)
from cds_service.logic.terminology import value_set

# The service's own Questionnaire: its canonical URL is CDS_PUBLIC_BASE_URL + this path (the app
# serves it there), and a QuestionnaireResponse naming it is a STarT Back response.
QUESTIONNAIRE_CANONICAL_PATH = "/fhir/Questionnaire/startback"

PANEL_VS = "startback-panel"
ITEMS_VS = "startback-items"
PSYCHOSOCIAL_ITEMS_VS = "startback-psychosocial-items"
TOTAL_VS = "startback-total-score"
SUBSCALE_VS = "startback-psychosocial-subscore"
RISK_VS = "startback-risk-level"
RISK_ANSWERS_VS = "startback-risk-answers"
ITEM_ANSWERS_VS = "startback-item-answers"

ITEM_COUNT = 9
TOTAL_MAX = 9
SUBSCALE_MAX = 5
HIGH_RISK_SUBSCALE_MIN = 4
LOW_RISK_TOTAL_MAX = 3

# Answer words and their item scores (Keele scoring guide). Items 1-8 and item 9 use
# different words, so one table serves all items.
_ANSWER_SCORES = {
    "agree": 1,
    "yes": 1,
    "disagree": 0,
    "no": 0,
    "very much": 1,
    "extremely": 1,
    "not at all": 0,
    "slightly": 0,
    "moderately": 0,
}

# An Observation in error or cancelled is not a result; any other status is.
EXCLUDED_OBSERVATION_STATUSES = frozenset({"entered-in-error", "cancelled"})

_LOINC_CODE = re.compile(r"\d{1,7}-\d")


class RiskGroup(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


def risk_group(total: int | None, subscale: int | None) -> RiskGroup | None:
    """The risk group of the scores; None when they cannot decide it (total >= 4, no subscale)."""
    if subscale is not None and subscale >= HIGH_RISK_SUBSCALE_MIN:
        return RiskGroup.HIGH
    if total is None:
        return None
    if total <= LOW_RISK_TOTAL_MAX:
        return RiskGroup.LOW
    if subscale is None:
        return None
    return RiskGroup.MEDIUM


@dataclass(frozen=True)
class Score:
    """A complete set of item scores, summed."""

    total: int
    subscale: int

    @property
    def risk(self) -> RiskGroup:
        group = risk_group(self.total, self.subscale)
        assert group is not None  # both scores are known
        return group


def score_items(item_scores: Mapping[str, int]) -> Score:
    """Total and subscale from the 0/1 score of every item, keyed by item LOINC code.

    Raises ValueError unless all nine items have a score of 0 or 1.
    """
    items = value_set(ITEMS_VS)
    psychosocial = value_set(PSYCHOSOCIAL_ITEMS_VS)
    codes = {code for _, code in items.codes}
    if set(item_scores) != codes:
        missing = sorted(codes - set(item_scores))
        extra = sorted(set(item_scores) - codes)
        raise ValueError(f"STarT Back needs all 9 items (missing {missing}, unknown {extra})")
    if any(s not in (0, 1) for s in item_scores.values()):
        raise ValueError("STarT Back item scores are 0 or 1")
    psych_codes = {code for _, code in psychosocial.codes}
    return Score(
        total=sum(item_scores.values()),
        subscale=sum(s for code, s in item_scores.items() if code in psych_codes),
    )


def _answer_word(text: str) -> str:
    return " ".join(text.strip().lower().replace("-", " ").replace("_", " ").split())


def answer_score(answer: QuestionnaireAnswer) -> int | None:
    """The 0/1 score of one answer, or None when it is not a STarT Back answer."""
    if answer.valueCoding is not None:
        return _coding_score(answer.valueCoding)
    if answer.valueBoolean is not None:
        return 1 if answer.valueBoolean else 0
    if answer.valueInteger is not None:
        return answer.valueInteger if answer.valueInteger in (0, 1) else None
    if answer.valueString is not None:
        return _ANSWER_SCORES.get(_answer_word(answer.valueString))
    return None


def _coding_score(coding: Coding) -> int | None:
    """By answer code (its display in the answers value set), else by display or code text."""
    answers = value_set(ITEM_ANSWERS_VS)
    words = [answers.display_of(coding) if answers.contains(coding) else None]
    words.extend((coding.display, coding.code))
    for word in words:
        score = _ANSWER_SCORES.get(_answer_word(word)) if word else None
        if score is not None:
            return score
    return None


def _item_code(item: QuestionnaireResponseItem, item_codes: frozenset[str]) -> str | None:
    """The item LOINC code named by linkId ("91340-0", "/91340-0") or definition."""
    for text in (item.linkId, item.definition):
        for match in _LOINC_CODE.finditer(text or ""):
            if match.group(0) in item_codes:
                return match.group(0)
    return None


def _is_startback_canonical(questionnaire: str | None) -> bool:
    """This service's Questionnaire, or one whose last path segment is the panel code."""
    if not questionnaire:
        return False
    url = questionnaire.split("|", 1)[0].rstrip("/")
    if url.endswith(QUESTIONNAIRE_CANONICAL_PATH):
        return True
    last = url.rsplit("/", 1)[-1]
    return value_set(PANEL_VS).contains(Coding(system="http://loinc.org", code=last))


def is_startback_response(response: QuestionnaireResponse) -> bool:
    """RULES.md: the questionnaire canonical is ours or LOINC's, or the items are the item codes."""
    if _is_startback_canonical(response.questionnaire):
        return True
    item_codes = _item_codes()
    return any(_item_code(i, item_codes) for i in response.all_items())


def _item_codes() -> frozenset[str]:
    return frozenset(code for _, code in value_set(ITEMS_VS).codes)


@cache
def item_numbers() -> dict[str, int]:
    """Item LOINC code -> item number 1-9 (the value set displays read "Item N: ...")."""
    vs = value_set(ITEMS_VS)
    out = {}
    for (_, code), display in vs.displays.items():
        match = re.match(r"Item (\d)\b", display)
        if match:
            out[code] = int(match.group(1))
    return out


@dataclass(frozen=True)
class ItemScores:
    """What a response's items give: the 0/1 score of each readable item, and the item numbers
    that are absent (no item or no answer) or unreadable (an answer that is not a STarT Back
    answer)."""

    scores: Mapping[str, int]
    missing: tuple[int, ...]
    unreadable: tuple[int, ...]


def read_items(response: QuestionnaireResponse) -> ItemScores:
    item_codes = _item_codes()
    scores: dict[str, int] = {}
    unreadable: set[str] = set()
    answered: set[str] = set()
    for item in response.all_items():
        code = _item_code(item, item_codes)
        if code is None or code in scores or not item.answer:
            continue
        answered.add(code)
        score = answer_score(item.answer[0])
        if score is not None:
            scores[code] = score
            unreadable.discard(code)
        else:
            unreadable.add(code)
    numbers = item_numbers()
    return ItemScores(
        scores=scores,
        missing=tuple(sorted(numbers[c] for c in item_codes - answered)),
        unreadable=tuple(sorted(numbers[c] for c in unreadable)),
    )


def score_response(response: QuestionnaireResponse) -> Score | None:
    """The score of a STarT Back QuestionnaireResponse; None unless all 9 items are answered.

    RULES.md (v2): a response with a missing or unreadable item is not a result (the tool is
    validated only as a whole); `unscorable_responses` names the items.
    """
    scores = read_items(response).scores
    if len(scores) != ITEM_COUNT:
        return None
    return score_items(scores)


# ---- results in the record --------------------------------------------------------------


class ResultSource(StrEnum):
    OBSERVATION = "Observation"
    QUESTIONNAIRE_RESPONSE = "QuestionnaireResponse"


@dataclass(frozen=True)
class StartBackResult:
    """One screening: its date and whichever of total, subscale and risk group it gives."""

    on: date
    total: int | None
    subscale: int | None
    risk: RiskGroup | None
    source: ResultSource
    # Sort key within a day (UTC); midnight when only a date is known.
    at: datetime


def _number(
    quantity_value: float | None, integer: int | None, text: str | None, maximum: int
) -> int | None:
    value: float | None = integer if integer is not None else quantity_value
    if value is None and text is not None:
        try:
            value = float(text.strip())
        except ValueError:
            return None
    if value is None or not math.isfinite(value) or not 0 <= value <= maximum:
        return None
    return int(value) if value == int(value) else None


_RISK_WORDS = {
    "low": RiskGroup.LOW,
    "medium": RiskGroup.MEDIUM,
    "moderate": RiskGroup.MEDIUM,
    "high": RiskGroup.HIGH,
}
_RISK_WORD = re.compile(r"\b(low|medium|moderate|high)\b", re.IGNORECASE)


def _risk_from_text(text: str | None) -> RiskGroup | None:
    found = {_RISK_WORDS[m.group(1).lower()] for m in _RISK_WORD.finditer(text or "")}
    return found.pop() if len(found) == 1 else None


def risk_from_concept(concept: CodeableConcept | None, text: str | None = None) -> RiskGroup | None:
    """A risk group from an LL3578-3 answer code, else from the display / text words."""
    if concept is not None:
        answers = value_set(RISK_ANSWERS_VS)
        coding = answers.matching_coding(concept)
        if coding is not None:
            display = answers.display_of(coding)
            if display:
                return _risk_from_text(display)
        for label in concept.texts():
            group = _risk_from_text(label)
            if group is not None:
                return group
    return _risk_from_text(text)


@dataclass
class _Values:
    total: int | None = None
    subscale: int | None = None
    risk: RiskGroup | None = None


def _read_observation(obs: Observation) -> _Values:
    """The STarT Back values an Observation carries, in itself or in its components."""
    total_vs, subscale_vs, risk_vs = value_set(TOTAL_VS), value_set(SUBSCALE_VS), value_set(RISK_VS)
    out = _Values()
    parts = [
        (obs.code, obs.valueQuantity, obs.valueInteger, obs.valueCodeableConcept, obs.valueString)
    ]
    parts.extend(
        (c.code, c.valueQuantity, c.valueInteger, c.valueCodeableConcept, None)
        for c in obs.component
    )
    for code, quantity, integer, concept, string in parts:
        value = quantity.value if quantity else None
        if total_vs.matching_coding(code) is not None:
            out.total = _number(value, integer, string, TOTAL_MAX)
        elif subscale_vs.matching_coding(code) is not None:
            out.subscale = _number(value, integer, string, SUBSCALE_MAX)
        elif risk_vs.matching_coding(code) is not None:
            out.risk = risk_from_concept(concept, string)
    return out


def _observation_results(observations: Iterable[Observation]) -> list[StartBackResult]:
    """Observations of one calendar day make one result (the app writes total, subscale and risk
    as three Observations); within a day the latest value of each kind counts."""
    by_day: dict[date, list[tuple[datetime, _Values]]] = {}
    for obs in observations:
        if (obs.status or "").strip().lower() in EXCLUDED_OBSERVATION_STATUSES:
            continue
        when = obs.when
        day, at = parse_fhir_date(when), parse_fhir_instant(when)
        if day is None or at is None:
            continue
        values = _read_observation(obs)
        if values.total is None and values.subscale is None and values.risk is None:
            continue
        by_day.setdefault(day, []).append((at, values))
    results = []
    for day, entries in by_day.items():
        entries.sort(key=lambda e: e[0])
        merged = _Values()
        for _, values in entries:
            merged.total = values.total if values.total is not None else merged.total
            merged.subscale = values.subscale if values.subscale is not None else merged.subscale
            merged.risk = values.risk if values.risk is not None else merged.risk
        # RULES.md: a result is a risk (91352-5) or total (91351-7) Observation.
        if merged.risk is None and merged.total is None:
            continue
        results.append(
            StartBackResult(
                on=day,
                total=merged.total,
                subscale=merged.subscale,
                risk=merged.risk or risk_group(merged.total, merged.subscale),
                source=ResultSource.OBSERVATION,
                at=entries[-1][0],
            )
        )
    return results


def _response_results(responses: Iterable[QuestionnaireResponse]) -> list[StartBackResult]:
    results = []
    for response in responses:
        if not response.finished:
            continue
        day, at = parse_fhir_date(response.authored), parse_fhir_instant(response.authored)
        if day is None or at is None or not is_startback_response(response):
            continue
        score = score_response(response)
        if score is None:
            continue
        results.append(
            StartBackResult(
                on=day,
                total=score.total,
                subscale=score.subscale,
                risk=score.risk,
                source=ResultSource.QUESTIONNAIRE_RESPONSE,
                at=at,
            )
        )
    return results


def all_results(
    observations: Iterable[Observation], responses: Iterable[QuestionnaireResponse]
) -> list[StartBackResult]:
    """Every STarT Back result, most recent first (on the same day, one with a risk group first)."""
    results = _observation_results(observations) + _response_results(responses)
    return sorted(results, key=lambda r: (r.on, r.risk is not None, r.at), reverse=True)


def counts(on: date, today: date, lookback_days: int, onset: date | None = None) -> bool:
    """RULES.md (v2): a result counts when dated within the last `lookback_days` days (a result
    exactly 180 days old included) and not before the episode onset (dates.counts_in_episode)."""
    return counts_in_episode(on, today, lookback_days, onset)


def latest_result(
    observations: Iterable[Observation],
    responses: Iterable[QuestionnaireResponse],
    today: date,
    lookback_days: int,
    onset: date | None = None,
) -> StartBackResult | None:
    """The newest counting result (see `counts`)."""
    for result in all_results(observations, responses):
        if counts(result.on, today, lookback_days, onset):
            return result
    return None


@dataclass(frozen=True)
class UnscorableResponse:
    """A completed (or amended) STarT Back response with an item missing or unreadable: not a
    result (RULES.md v2), but the screening card names it."""

    on: date
    missing: tuple[int, ...]
    unreadable: tuple[int, ...]


def latest_unscorable(
    responses: Iterable[QuestionnaireResponse],
    today: date,
    lookback_days: int,
    onset: date | None = None,
) -> UnscorableResponse | None:
    """The newest unscorable STarT Back response in the same window as a counting result."""
    found: list[tuple[datetime, UnscorableResponse]] = []
    for response in responses:
        if not response.finished:
            continue
        day, at = parse_fhir_date(response.authored), parse_fhir_instant(response.authored)
        if day is None or at is None or not counts(day, today, lookback_days, onset):
            continue
        if not is_startback_response(response):
            continue
        items = read_items(response)
        if len(items.scores) == ITEM_COUNT:
            continue
        found.append((at, UnscorableResponse(day, items.missing, items.unreadable)))
    return max(found, key=lambda f: f[0])[1] if found else None


# The care each risk group is matched to (Keele stratified care; RULES.md startback-result):
# what the result card and the app show.
MATCHED_CARE_SHORT = {
    RiskGroup.LOW: "advice and self-management",
    RiskGroup.MEDIUM: "physiotherapy",
    RiskGroup.HIGH: "psychologically informed physiotherapy",
}
MATCHED_CARE = {
    RiskGroup.LOW: (
        "advice, reassurance and support to self-manage (stay active, written information) in "
        "primary care; a physiotherapy referral is usually not needed."
    ),
    RiskGroup.MEDIUM: "physiotherapy (exercise and manual therapy) with self-management advice.",
    RiskGroup.HIGH: (
        "psychologically informed physiotherapy: combined physical and psychological care that "
        "addresses fear of movement, worry and low mood alongside exercise."
    ),
}
