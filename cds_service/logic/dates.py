"""FHIR date and dateTime values reduced to calendar dates.

Clinical windows in RULES.md count days, so a dateTime's local calendar date is what counts;
partial dates ("2020", "2020-09") take their first day, which is the earliest the event can be.
"""

from __future__ import annotations

from datetime import date


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
