"""Placeholder tokens in fixture files, replaced when the data is seeded or fired.

Seeded scenarios must stay clinically "recent" (a back-pain episode of 10 days, a STarT Back
result of last week), so their dates are written relative to the day they are loaded:

- `@today` -> today's date (`2026-11-22`);
- `@today-10d`, `@today+3d`, `@today-2w`, `@today-6m`, `@today-70y` -> that many days, weeks,
  calendar months or calendar years before (-) or after (+) today (a month or year step that lands
  on a day the month lacks, such as 29 February, takes the month's last day);
- anything after the token is kept, so `@today-10dT09:30:00Z` becomes a dateTime;
- `@patient` -> the patient id given to `cds-service fire` (order files only), wherever it occurs
  in a string, e.g. `"Patient/@patient"`.

Only strings are rewritten; keys, numbers and other text are left alone.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta
from typing import Any

_DATE_TOKEN = re.compile(r"^@today(?:([+-])(\d{1,5})([dwmy]))?")
_TIME = re.compile(r"^T\d")
PATIENT_TOKEN = "@patient"


class TokenError(ValueError):
    """A string that starts like a date token but cannot be read as one."""


def shift(today: date, sign: str, amount: int, unit: str) -> date:
    """`today` moved by `amount` days / weeks / months / years in the direction of `sign`."""
    step = amount if sign == "+" else -amount
    if unit == "d":
        return today + timedelta(days=step)
    if unit == "w":
        return today + timedelta(weeks=step)
    months = step if unit == "m" else step * 12
    index = today.year * 12 + (today.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    if not 1 <= year <= 9999:
        raise TokenError(f"date token lands outside the calendar: {sign}{amount}{unit}")
    day = min(today.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def resolve_string(text: str, today: date, patient_id: str | None = None) -> str:
    """One string with its tokens replaced."""
    if text.startswith("@today"):
        match = _DATE_TOKEN.match(text)
        assert match is not None  # the pattern matches every string that starts with "@today"
        sign, amount, unit = match.groups()
        rest = text[match.end() :]
        if rest and not _TIME.match(rest):
            raise TokenError(
                f"unreadable date token {text!r}: use @today, @today-10d, @today+2w, "
                "@today-6m or @today-70y, optionally followed by a time (T09:30:00Z)"
            )
        when = today if sign is None else shift(today, sign, int(amount), unit)
        text = when.isoformat() + rest
    if patient_id is not None and PATIENT_TOKEN in text:
        text = text.replace(PATIENT_TOKEN, patient_id)
    return text


def resolve_tokens(value: Any, today: date, patient_id: str | None = None) -> Any:
    """A copy of a JSON value with every token in its strings replaced."""
    if isinstance(value, str):
        return resolve_string(value, today, patient_id)
    if isinstance(value, dict):
        return {k: resolve_tokens(v, today, patient_id) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_tokens(v, today, patient_id) for v in value]
    return value
