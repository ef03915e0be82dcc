"""FHIR date and dateTime values reduced to calendar dates.

Clinical windows in RULES.md count days, so a dateTime's local calendar date is what counts;
partial dates ("2020", "2020-09") take their first day, which is the earliest the event can be.
"""

from __future__ import annotations

from datetime import UTC, date, datetime


def parse_fhir_date(value: str | None) -> date | None:
    """The calendar date of a FHIR date/dateTime/instant string, or None when unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        if len(text) >= 10:
            return date.fromisoformat(text[:10])
        if len(text) == 7:
            return date(int(text[:4]), int(text[5:7]), 1)
        if len(text) == 4:
            return date(int(text), 1, 1)
    except ValueError:
        return None
    return None


def age_in_years(birth: date, on: date) -> int:
    """Completed years of age on a date."""
    years = on.year - birth.year
    if (on.month, on.day) < (birth.month, birth.day):
        years -= 1
    return years


def within_days(when: date | None, today: date, window_days: int) -> bool:
    """True when `when` lies in the last `window_days` days up to and including today."""
    if when is None:
        return False
    return 0 <= (today - when).days <= window_days


def parse_fhir_instant(value: str | None) -> datetime | None:
    """A FHIR dateTime as an aware datetime, to order records written on the same day (a value
    without a zone is read as UTC; a date alone is its midnight UTC); None when unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        day = parse_fhir_date(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# Records dated up to this many days after "today" still count: an app in a timezone ahead of
# the service's writes tomorrow's date for something done today.
FUTURE_TOLERANCE_DAYS = 1


def counts_in_episode(on: date, today: date, lookback_days: int, onset: date | None) -> bool:
    """RULES.md (v2): a screening counts when dated within the last `lookback_days` days (one
    exactly `lookback_days` old included) and not before the episode onset (one from before the
    onset belongs to an earlier episode). An onset dated after today is read as today."""
    age = (today - on).days
    if not -FUTURE_TOLERANCE_DAYS <= age <= lookback_days:
        return False
    return onset is None or on >= min(onset, today)
