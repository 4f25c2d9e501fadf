"""Time at the edges. Everything that depends on time takes ``now`` as an argument; this
module turns what users type (``--now 2026-03-01``) into that argument, and converts
between aware datetimes in the library and the naive UTC the store keeps."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import overload
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    """The real clock, read only at the edges (CLI, web handlers)."""
    return datetime.now(UTC)


def parse_now(text: str | None, tz: ZoneInfo) -> datetime:
    """``--now`` as typed: a date (midnight in the workspace zone) or an ISO 8601 datetime
    (naive means the workspace zone). ``None`` is the real clock. Returns aware UTC."""
    if text is None:
        return utcnow()
    try:
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), time(0), tz)
        else:
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=tz)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date: write YYYY-MM-DD or an ISO 8601 datetime"
        ) from None
    return parsed.astimezone(UTC)


def to_db(moment: datetime) -> datetime:
    """An aware datetime as the store keeps it: naive UTC."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given where an aware one is needed")
    return moment.astimezone(UTC).replace(tzinfo=None)


@overload
def from_db(moment: datetime) -> datetime: ...
@overload
def from_db(moment: None) -> None: ...
def from_db(moment: datetime | None) -> datetime | None:
    """A stored naive-UTC datetime as an aware one."""
    return None if moment is None else moment.replace(tzinfo=UTC)


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    """The calendar date of ``moment`` in ``tz`` (aware input, or naive UTC from the store)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tz).date()


_MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre"),
}  # fmt: skip


def written_date(day: date, language: str) -> str:
    """A day as a person of ``language`` writes it in a sentence.

    >>> written_date(date(2027, 3, 7), "fr"), written_date(date(2027, 3, 1), "fr")
    ('7 mars 2027', '1er mars 2027')
    >>> written_date(date(2027, 3, 7), "en")
    'March 7, 2027'
    """
    if language == "fr":
        first = "1er" if day.day == 1 else str(day.day)
        return f"{first} {_MONTHS['fr'][day.month - 1]} {day.year}"
    return f"{_MONTHS['en'][day.month - 1]} {day.day}, {day.year}"
