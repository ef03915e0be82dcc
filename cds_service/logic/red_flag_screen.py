"""The red-flag screen (RULES.md v2 "Red-flag screen and stratified care"): what a completed
QuestionnaireResponse to the service's Questionnaire `lbp-red-flag-screen` says.

The red flags that decide imaging (saddle numbness, new bladder or bowel trouble, night pain) are
the ones records rarely code; the clinician records them on this screen (apps/red_flags.py), and
the rules read it back here.

Which responses are screens: `questionnaire` ends in `Questionnaire/lbp-red-flag-screen`, with or
without `|version`, whatever precedes it. The canonical is CDS_PUBLIC_BASE_URL + that path, and a
screen recorded before the service moved (another host, http to https, a proxy path), or an EHR
that wrote a relative reference, must still count; the id is this service's own, so no other
questionnaire takes it. Any version is read: items are found by linkId, and an unknown linkId is
ignored.

Which screen counts: status `completed` or `amended` (in-progress, stopped and entered-in-error
are not finished answers); `authored` within `red_flag_screen_days` (14: a screen 14 days old
counts, 15 does not) and not before the episode onset (dates.counts_in_episode). The newest
counting screen is used, so a newer all-"no" screen replaces an older "yes".

Answers: valueBoolean; valueCoding LOINC LA33-6 Yes / LA32-8 No (value set
red-flag-screen-answers), else a display or code reading yes / no (any case); valueString yes / no.
No answer, or any other answer, leaves the item unanswered, which is never a "yes". A screen with
no readable answer at all says nothing (it is neither positive nor negative) and never counts: an
older counting screen is used instead, or the imaging card asks for one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from cds_service.logic.dates import counts_in_episode, parse_fhir_date, parse_fhir_instant
from cds_service.logic.fhir import (
    Coding,
    QuestionnaireAnswer,
    QuestionnaireResponse,
)
from cds_service.logic.red_flags import RedFlag, RedFlagHit
from cds_service.logic.terminology import value_set

# The Questionnaire's id: its canonical is CDS_PUBLIC_BASE_URL/fhir/Questionnaire/<this>.
QUESTIONNAIRE_ID = "lbp-red-flag-screen"
ANSWERS_VS = "red-flag-screen-answers"
_WORDS = {"yes": True, "y": True, "true": True, "no": False, "n": False, "false": False}


@dataclass(frozen=True)
class ScreenItem:
    """One item of the screen: its linkId in the Questionnaire, the red-flag group a "yes"
    evidences (named as the cards already name it), and how a card names the item."""

    link_id: str
    flag: RedFlag
    name: str


# The 12 items of RULES.md v2, in the Questionnaire's order (apps/questionnaire-red-flags.json
# holds their text and SNOMED CT codes; a test keeps the two in step).
ITEMS: tuple[ScreenItem, ...] = (
    ScreenItem("saddle-anaesthesia", RedFlag.CAUDA_EQUINA, "saddle anaesthesia"),
    ScreenItem("bladder-bowel", RedFlag.CAUDA_EQUINA, "new bladder or bowel dysfunction"),
    ScreenItem("leg-weakness", RedFlag.NEURO_DEFICIT, "progressive or severe leg weakness"),
    ScreenItem("fever-unwell", RedFlag.FEVER, "fever or feeling systemically unwell"),
    ScreenItem("weight-loss", RedFlag.WEIGHT_LOSS, "unexplained weight loss"),
    ScreenItem("cancer-history", RedFlag.CANCER, "history of cancer"),
    ScreenItem("iv-drug-use", RedFlag.IV_DRUG_USE, "intravenous drug use"),
    ScreenItem(
        "immunosuppression",
        RedFlag.IMMUNOSUPPRESSION,
        "immunosuppression or long-term oral steroids",
    ),
    ScreenItem("trauma", RedFlag.TRAUMA, "significant trauma"),
    ScreenItem("night-pain", RedFlag.NIGHT_PAIN, "night pain or constant non-mechanical pain"),
    ScreenItem("abdominal-mass", RedFlag.ABDOMINAL_MASS, "pulsating abdominal mass"),
    ScreenItem("bony-tenderness", RedFlag.BONY_TENDERNESS, "severe bony tenderness"),
)
_BY_LINK_ID = {item.link_id: item for item in ITEMS}


@dataclass(frozen=True)
class RedFlagScreen:
    """One screen: when, which response, and its items by answer."""

    on: date
    # Orders screens written on the same day.
    at: datetime
    source: str
    yes: tuple[ScreenItem, ...]
    no: tuple[ScreenItem, ...]
    unanswered: tuple[ScreenItem, ...]

    @property
    def negative(self) -> bool:
        return not self.yes

    def hits(self) -> tuple[RedFlagHit, ...]:
        """A red flag present for each "yes", named by its item."""
        return tuple(
            RedFlagHit(
                flag=item.flag,
                evidence=f"{item.name} (red-flag screen {self.on.isoformat()})",
                source=self.source,
                on=self.on,
            )
            for item in self.yes
        )


def is_screen_response(response: QuestionnaireResponse) -> bool:
    """Its `questionnaire` names this service's red-flag screen (see the module docstring)."""
    url = (response.questionnaire or "").split("|", 1)[0].strip().rstrip("/")
    return url.split("/")[-2:] == ["Questionnaire", QUESTIONNAIRE_ID]


def _word(text: str | None) -> bool | None:
    return _WORDS.get((text or "").strip().lower())


def _coding_answer(coding: Coding) -> bool | None:
    answers = value_set(ANSWERS_VS)
    if answers.contains(coding):
        display = answers.display_of(coding)
        if display is not None:
            return _word(display)
    for text in (coding.display, coding.code):
        value = _word(text)
        if value is not None:
            return value
    return None


def answer_value(answer: QuestionnaireAnswer) -> bool | None:
    """True for a "yes", False for a "no", None for anything else."""
    if answer.valueBoolean is not None:
        return answer.valueBoolean
    if answer.valueCoding is not None:
        return _coding_answer(answer.valueCoding)
    return _word(answer.valueString)


def read_screen(response: QuestionnaireResponse) -> RedFlagScreen | None:
    """The screen a finished response records; None when it is not a finished red-flag screen,
    has no readable date, or answers no item at all."""
    if not is_screen_response(response):
        return None
    if not response.finished:
        return None
    on, at = parse_fhir_date(response.authored), parse_fhir_instant(response.authored)
    if on is None or at is None:
        return None
    values: dict[str, bool] = {}
    for item in response.all_items():
        if item.linkId not in _BY_LINK_ID:
            continue
        for answer in item.answer:
            value = answer_value(answer)
            if value is not None:
                # A "yes" anywhere for an item stands: it is the clinician's finding.
                values[item.linkId] = values.get(item.linkId, False) or value
    if not values:
        return None
    return RedFlagScreen(
        on=on,
        at=at,
        source=f"QuestionnaireResponse/{response.id}" if response.id else "QuestionnaireResponse",
        yes=tuple(i for i in ITEMS if values.get(i.link_id) is True),
        no=tuple(i for i in ITEMS if values.get(i.link_id) is False),
        unanswered=tuple(i for i in ITEMS if i.link_id not in values),
    )


def latest_screen(
    responses: Iterable[QuestionnaireResponse],
    today: date,
    window_days: int,
    onset: date | None = None,
) -> RedFlagScreen | None:
    """The newest counting screen (see the module docstring); on a tie, the one with a "yes"."""
    counting = [
        screen
        for screen in (read_screen(r) for r in responses)
        if screen is not None and counts_in_episode(screen.on, today, window_days, onset)
    ]
    return max(counting, key=lambda s: (s.at, len(s.yes)), default=None)
