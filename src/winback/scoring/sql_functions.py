"""The few SQL functions the scoring queries need that SQLite and PostgreSQL spell
differently, as SQLAlchemy constructs compiled per dialect.

- :func:`local_day`: the calendar day (days since 1970-01-01) of a stored naive-UTC
  timestamp in the workspace zone. PostgreSQL converts with ``AT TIME ZONE``; SQLite has
  no zones, so the zone's UTC offsets are written into the query as a balanced ``CASE``
  over its transitions (a handful of comparisons per row, no table lookup).
- :func:`day_date`: the date of a day number (the inverse of :func:`local_day`).
- :func:`seconds_between`: seconds from one timestamp to another.
- :func:`shifted`: a timestamp some seconds away, as a bound for an index range.
- :func:`ci_like`: a case-insensitive ``LIKE`` (SQLite's ``LIKE`` already is).
- :func:`json_has_any`: a JSON array column holds at least one of some strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, bindparam, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import Boolean, Date, DateTime, Float

_EPOCH_JULIAN = 2440587.5  # julianday('1970-01-01 00:00:00')
_FIRST_YEAR, _LAST_YEAR = 1970, 2100


class local_day(FunctionElement[int]):
    """``local_day(column, "Europe/Paris")``: the day number of a timestamp in a zone."""

    type = Integer()
    inherit_cache = False

    def __init__(self, column: Any, timezone: str) -> None:
        self.timezone = timezone
        super().__init__(column)


@compiles(local_day)
def _local_day_default(element: local_day, compiler: Any, **kw: Any) -> str:
    column = compiler.process(next(iter(element.clauses)), **kw)
    zone = compiler.process(literal(element.timezone), **kw)
    return f"(CAST(timezone({zone}, timezone('UTC', {column})) AS DATE) - DATE '1970-01-01')"


@compiles(local_day, "sqlite")
def _local_day_sqlite(element: local_day, compiler: Any, **kw: Any) -> str:
    column = compiler.process(next(iter(element.clauses)), **kw)
    offset = _offset_case(column, utc_offsets(element.timezone))
    shifted = f"julianday({column})" if offset == "0" else f"(julianday({column}) + {offset})"
    return f"CAST({shifted} - {_EPOCH_JULIAN} AS INTEGER)"


class day_date(FunctionElement[date]):
    """``day_date(number)``: the date of a day number (days since 1970-01-01)."""

    type = Date()
    inherit_cache = True


@compiles(day_date)
def _day_date_default(element: day_date, compiler: Any, **kw: Any) -> str:
    return f"(DATE '1970-01-01' + CAST({compiler.process(element.clauses, **kw)} AS INTEGER))"


@compiles(day_date, "sqlite")
def _day_date_sqlite(element: day_date, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)} + {_EPOCH_JULIAN})"


def _offset_case(column: str, offsets: Sequence[tuple[str, float]]) -> str:
    """A balanced CASE giving the offset (in days) in force at ``column``. ``offsets`` is
    a list of (UTC start, offset) sorted by start, the first start being ''."""
    if len(offsets) == 1:
        return repr(offsets[0][1]) if offsets[0][1] else "0"
    middle = len(offsets) // 2
    start = offsets[middle][0]
    before = _offset_case(column, offsets[:middle])
    after = _offset_case(column, offsets[middle:])
    return f"(CASE WHEN {column} < '{start}' THEN {before} ELSE {after} END)"


@lru_cache(maxsize=16)
def utc_offsets(timezone: str) -> tuple[tuple[str, float], ...]:
    """The UTC offsets of a zone (as fractions of a day) with the naive-UTC instant
    each starts, from 1970 to 2100; the first entry starts at ''."""
    zone = ZoneInfo(timezone)

    def offset(moment: datetime) -> timedelta:
        return moment.astimezone(zone).utcoffset() or timedelta(0)

    moment = datetime(_FIRST_YEAR, 1, 1, tzinfo=UTC)
    current = offset(moment)
    result: list[tuple[str, float]] = [("", current.total_seconds() / 86400)]
    end = datetime(_LAST_YEAR, 1, 1, tzinfo=UTC)
    # A day apart: no zone changes its offset twice within a day, and the probes of 130
    # years, paid by every ``winback score`` process, are a quarter of 6-hour steps'.
    step = timedelta(days=1)
    while moment < end:
        following = moment + step
        if offset(following) != current:
            low, high = moment, following
            while high - low > timedelta(seconds=1):
                probe = low + (high - low) / 2
                if offset(probe) == current:
                    low = probe
                else:
                    high = probe
            current = offset(high)
            start = high.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S")
            result.append((start, current.total_seconds() / 86400))
        moment = following
    return tuple(result)


def _compile_binary(function: type[FunctionElement[Any]], default: str, sqlite: str) -> None:
    """Compile ``function(a, b)`` from SQL templates over ``{a}`` and ``{b}``: one for
    SQLite, one for the other dialects (PostgreSQL)."""

    def compile_with(template: str) -> Any:
        def render(element: FunctionElement[Any], compiler: Any, **kw: Any) -> str:
            a, b = (compiler.process(clause, **kw) for clause in element.clauses)
            return template.format(a=a, b=b)

        return render

    compiles(function)(compile_with(default))
    compiles(function, "sqlite")(compile_with(sqlite))


class seconds_between(FunctionElement[float]):
    """``seconds_between(earlier, later)``: seconds from ``earlier`` to ``later``."""

    type = Float()
    inherit_cache = True


@compiles(seconds_between)
def _seconds_between(element: seconds_between, compiler: Any, **kw: Any) -> str:
    a, b = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"EXTRACT(EPOCH FROM ({b} - {a}))"


@compiles(seconds_between, "sqlite")
def _seconds_between_sqlite(element: seconds_between, compiler: Any, **kw: Any) -> str:
    """Whole seconds (``strftime('%s')``) plus the difference of the microseconds the
    stored text carries: exact, where a difference of ``julianday`` values is off by tens
    of microseconds (two seconds came out as 2.00003, past a limit of 2)."""
    a, b = element.clauses

    def whole(clause: Any) -> str:
        return f"CAST(strftime('%s', {compiler.process(clause, **kw)}) AS INTEGER)"

    def micros(clause: Any) -> str:
        return f"CAST(substr({compiler.process(clause, **kw)}, 21, 6) AS INTEGER)"

    return f"(({whole(b)} - {whole(a)}) + ({micros(b)} - {micros(a)}) / 1000000.0)"


class shifted(FunctionElement[datetime]):
    """``shifted(column, seconds)``: a bound for an index range on a time column, at
    least ``seconds`` away from ``column`` (earlier when negative). SQLite's
    ``datetime()`` drops the fraction of a second, so there the bound can be up to one
    second further out: pair it with an exact test (:func:`seconds_between`)."""

    type = DateTime()
    inherit_cache = False

    def __init__(self, column: Any, seconds: int) -> None:
        self.seconds = seconds
        super().__init__(column)


@compiles(shifted)
def _shifted_default(element: shifted, compiler: Any, **kw: Any) -> str:
    column = compiler.process(next(iter(element.clauses)), **kw)
    return f"({column} + INTERVAL '{int(element.seconds)} seconds')"


@compiles(shifted, "sqlite")
def _shifted_sqlite(element: shifted, compiler: Any, **kw: Any) -> str:
    column: str = compiler.process(next(iter(element.clauses)), **kw)
    seconds = int(element.seconds)
    if seconds == 0:
        # No way outwards to round to: the column itself is the exact bound.
        return column
    # Rounded outwards: the bound must not cut off a row the exact test would keep.
    outwards = seconds - 1 if seconds < 0 else seconds + 1
    return f"datetime({column}, '{outwards:+d} seconds')"


class ci_like(FunctionElement[bool]):
    """``ci_like(column, pattern)``: LIKE without regard to (ASCII) case."""

    type = Boolean()
    inherit_cache = True


_compile_binary(ci_like, default="({a} ILIKE {b})", sqlite="({a} LIKE {b})")


class json_has_any(FunctionElement[bool]):
    """``json_has_any(column, ["vip", "wine"])``: the JSON array in ``column`` holds at
    least one of the strings; ``json_has_any(column, None)``: it holds anything at all.
    A NULL, a JSON ``null`` or a value that is not an array holds nothing."""

    type = Boolean()
    inherit_cache = False

    def __init__(self, column: Any, values: Sequence[str] | None) -> None:
        self.values = None if values is None else list(values)
        super().__init__(column)


def _value_test(element: json_has_any, compiler: Any, **kw: Any) -> str:
    if element.values is None:
        return ""
    binds = ", ".join(
        compiler.process(bindparam(None, value, unique=True), **kw) for value in element.values
    )
    return f" WHERE j.value IN ({binds})"


@compiles(json_has_any)
def _json_has_any_default(element: json_has_any, compiler: Any, **kw: Any) -> str:
    column = compiler.process(next(iter(element.clauses)), **kw)
    # json_array_elements_text raises on a scalar or an object: only arrays are opened.
    array = (
        f"CASE WHEN json_typeof(CAST({column} AS JSON)) = 'array' "
        f"THEN CAST({column} AS JSON) ELSE CAST('[]' AS JSON) END"
    )
    return (
        f"EXISTS (SELECT 1 FROM json_array_elements_text({array}) AS j(value)"
        f"{_value_test(element, compiler, **kw)})"
    )


@compiles(json_has_any, "sqlite")
def _json_has_any_sqlite(element: json_has_any, compiler: Any, **kw: Any) -> str:
    column = compiler.process(next(iter(element.clauses)), **kw)
    # json_each of a scalar yields the scalar itself: only arrays are opened.
    return (
        f"EXISTS (SELECT 1 FROM json_each(CASE WHEN json_type({column}) = 'array' "
        f"THEN {column} END) AS j{_value_test(element, compiler, **kw)})"
    )
