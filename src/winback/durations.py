"""Durations as users write them in winback.toml and journey files: ``30d``, ``2w``,
``12h``, ``90min``, ``45s``, ``3y``. A year is 365 days and a week 7: the thresholds they
feed are counted in whole days, so calendar subtleties would only add surprise."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {
    "s": timedelta(seconds=1),
    "min": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "y": timedelta(days=365),
}
_PATTERN = re.compile(r"^\s*(\d+)\s*(s|min|h|d|w|y)\s*$")


def parse_duration(text: str | int) -> timedelta:
    """Turn ``"30d"`` into ``timedelta(days=30)``. A bare integer is a number of days.

    >>> parse_duration("2w")
    datetime.timedelta(days=14)
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"a duration cannot be negative: {text}")
        return timedelta(days=text)
    match = _PATTERN.match(str(text))
    if not match:
        raise ValueError(
            f"{text!r} is not a duration: write a whole number and a unit, "
            "such as 45s, 90min, 12h, 30d, 2w or 3y"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling of a duration, the inverse of :func:`parse_duration`."""
    seconds = int(value.total_seconds())
    for unit in ("y", "w", "d", "h", "min"):
        size = int(_UNITS[unit].total_seconds())
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
