"""Quiet hours: commercial messages (SMS by default) go out Monday to Saturday between
``start_hour`` and ``end_hour`` in the contact's own zone, never on a public holiday of
the contact's country (French rules for commercial SMS, used as the default everywhere).

The tick gives each outbox row a ``due_at``; this rule moves it to the next allowed moment.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from winback.config import QuietHoursSection


@lru_cache(maxsize=64)
def _holidays(country: str | None) -> holidays.HolidayBase | None:
    if not country:
        return None
    try:
        return holidays.country_holidays(country.upper())
    except NotImplementedError:
        return None


def _open_day(day: date, country: str | None) -> bool:
    calendar = _holidays(country)
    return day.weekday() < 6 and not (calendar is not None and day in calendar)


def next_allowed_moment(
    due: datetime, tz: ZoneInfo, country: str | None, config: QuietHoursSection
) -> datetime:
    """The first moment at or after ``due`` (aware) when a message may go out to someone
    living in ``tz`` and ``country``; returned in the zone of ``due``.

    >>> from winback.config import QuietHoursSection
    >>> paris = ZoneInfo("Europe/Paris")
    >>> saturday_night = datetime(2025, 3, 8, 21, 30, tzinfo=paris)
    >>> next_allowed_moment(saturday_night, paris, "FR", QuietHoursSection())
    datetime.datetime(2025, 3, 10, 8, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris'))
    """
    local = due.astimezone(tz)
    start, end = time(config.start_hour), config.end_hour
    day = local.date()
    if _open_day(day, country) and start <= local.time() and local.hour < end:
        return due
    if not (_open_day(day, country) and local.time() < start):
        day += timedelta(days=1)
        # Public holidays and Sundays never run for more than a few days in a row.
        while not _open_day(day, country):
            day += timedelta(days=1)
    return datetime.combine(day, start, tz).astimezone(due.tzinfo)
