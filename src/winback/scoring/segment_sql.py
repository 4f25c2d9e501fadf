"""A segment expression (:mod:`winback.scoring.segment_conditions`) compiled to a
SQLAlchemy condition over ``contacts`` joined to ``contact_scores``, at a moment.

Values are always bound parameters; the field names come from the fixed catalogue, never
from the text. Every condition is two-valued (an empty value gives false, not NULL), so
``not`` is the complement.

Calendar-day conditions on a timestamp (``last_purchase_at < 180 days ago``,
``days_inactive > 365``) become a comparison of the stored naive-UTC timestamp with the
UTC instant where the bounding day starts in the workspace's zone: the same answer as
taking each row's local day, without computing it row by row.
"""

from __future__ import annotations

import calendar
import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    not_,
    or_,
    select,
    true,
)

from winback.scoring.segment_conditions import (
    ATTRIBUTE_PREFIX,
    All,
    Any_,
    Condition,
    DaysAgo,
    Expression,
    Journey,
    Not,
    Value,
    field_spec,
)
from winback.scoring.sql_functions import json_has_any, local_day
from winback.scoring.stages import AGE_BANDS, day_number
from winback.store.schema import contact_scores, contacts, enrollments, journeys, survey_answers

_CONTACT_COLUMNS = frozenset(contacts.c.keys())


class SegmentCompiler:
    """Compiles expressions and field values at ``now`` in the workspace's ``timezone``."""

    def __init__(self, now: datetime, timezone: str) -> None:
        self.now = now
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)
        self.today = now.astimezone(self.zone).date()

    # -- values ----------------------------------------------------------------------

    def column(self, name: str) -> ColumnElement[Any]:
        """The value of field ``name`` for each contact, as a SQL expression."""
        if name.startswith(ATTRIBUTE_PREFIX):
            key = name[len(ATTRIBUTE_PREFIX) :]
            return cast(contacts.c.attributes[key].as_string(), String)
        if name == "days_inactive":
            today = day_number(self.today, self.zone)
            return today - local_day(contact_scores.c.last_interaction_at, self.timezone)
        if name == "age_band":
            year = self.today.year
            return case(
                *(
                    (contacts.c.birth_year.between(year - high, year - low), label)
                    for label, low, high in AGE_BANDS
                ),
                else_=None,
            )
        if name == "survey_reason":
            return (
                select(survey_answers.c.reason)
                .where(
                    survey_answers.c.contact_id == contacts.c.id,
                    survey_answers.c.answered_at <= self.now.astimezone(UTC).replace(tzinfo=None),
                )
                .order_by(survey_answers.c.answered_at.desc(), survey_answers.c.id.desc())
                .limit(1)
                .scalar_subquery()
            )
        if name in _CONTACT_COLUMNS:
            return contacts.c[name]
        return contact_scores.c[name]

    def date_of(self, value: Value) -> date:
        """A date value, relative ones resolved against today."""
        if isinstance(value, DaysAgo):
            return (
                months_before(self.today, value)
                if value.unit in ("months", "years")
                else (
                    self.today - timedelta(days=value.count * (7 if value.unit == "weeks" else 1))
                )
            )
        assert isinstance(value, date)
        return value

    # -- conditions ------------------------------------------------------------------

    def condition(self, expression: Expression) -> ColumnElement[bool]:
        if isinstance(expression, All):
            return and_(true(), *(self.condition(p) for p in expression.parts))
        if isinstance(expression, Any_):
            return or_(false(), *(self.condition(p) for p in expression.parts))
        if isinstance(expression, Not):
            return not_(self.condition(expression.part))
        if isinstance(expression, Journey):
            return self._journey(expression)
        return self._condition(expression)

    def _journey(self, expression: Journey) -> ColumnElement[bool]:
        query = (
            select(enrollments.c.id)
            .join(journeys, journeys.c.id == enrollments.c.journey_id)
            .where(enrollments.c.contact_id == contacts.c.id, journeys.c.name == expression.name)
        )
        if not expression.finished:
            return exists(query.where(enrollments.c.status == "active"))
        query = query.where(enrollments.c.status != "active")
        if expression.outcome is not None:
            query = query.where(
                or_(
                    enrollments.c.status == expression.outcome,
                    enrollments.c.outcome == expression.outcome,
                )
            )
        return exists(query)

    def _condition(self, condition: Condition) -> ColumnElement[bool]:
        name, operator, values = condition.field, condition.operator, condition.values
        kind = field_spec(name).kind
        if kind == "list":
            if operator == "empty":
                return not_(json_has_any(contacts.c[name], None))
            return json_has_any(contacts.c[name], [str(v) for v in values])
        column = self.column(name)
        if operator == "empty":
            return column.is_(None) if kind != "text" else or_(column.is_(None), column == "")
        if name == "days_inactive":
            return self._days_inactive(operator, [float(v) for v in values])  # type: ignore[arg-type]
        if kind == "date":
            low, high = _day_bounds(operator, [self.date_of(v) for v in values])
            return self._local_days(column, low, high)
        if kind == "day":
            values = tuple(self.date_of(v) for v in values)
        if operator == "in":
            return and_(column.is_not(None), column.in_(values))
        if operator == "between":
            return and_(column.is_not(None), column.between(values[0], values[1]))
        compare = {
            "=": column.__eq__,
            "<": column.__lt__,
            "<=": column.__le__,
            ">": column.__gt__,
            ">=": column.__ge__,
        }[operator]
        return and_(column.is_not(None), compare(values[0]))

    def _days_inactive(self, operator: str, values: list[float]) -> ColumnElement[bool]:
        """``days_inactive`` (today minus the local day of the last interaction) as a
        range on ``last_interaction_at``."""
        column = contact_scores.c.last_interaction_at
        if operator == "in":
            return or_(false(), *(self._days_inactive("=", [v]) for v in values))
        low, high = _whole_bounds(operator, values)
        if low is not None and high is not None and low > high:
            return false()
        oldest = self.today - timedelta(days=high) if high is not None else None
        newest = self.today - timedelta(days=low) if low is not None else None
        return self._local_days(column, oldest, newest)

    def _local_days(
        self, column: ColumnElement[Any], low: date | None, high: date | None
    ) -> ColumnElement[bool]:
        """The local day of the timestamp ``column`` is within [low, high]."""
        bounds: list[ColumnElement[bool]] = [column.is_not(None)]
        if low is not None:
            bounds.append(column >= self._day_start(low))
        if high is not None:
            bounds.append(column < self._day_start(high + timedelta(days=1)))
        return and_(*bounds)

    def _day_start(self, day: date) -> datetime:
        """The naive-UTC instant where ``day`` starts in the workspace's zone."""
        return datetime.combine(day, time(), self.zone).astimezone(UTC).replace(tzinfo=None)


def _day_bounds(operator: str, days: list[date]) -> tuple[date | None, date | None]:
    """The calendar days a comparison with ``days`` keeps, as an interval."""
    one = timedelta(days=1)
    first = days[0]
    return {
        "=": (first, first),
        "<": (None, first - one),
        "<=": (None, first),
        ">": (first + one, None),
        ">=": (first, None),
        "between": (first, days[-1]),
    }[operator]


def _whole_bounds(operator: str, values: list[float]) -> tuple[int | None, int | None]:
    """The whole numbers a comparison with ``values`` keeps, as an interval (empty when
    low > high)."""
    first = values[0]
    if operator == "=":
        return (int(first), int(first)) if first.is_integer() else (1, 0)
    return {
        "<": (None, math.ceil(first) - 1),
        "<=": (None, math.floor(first)),
        ">": (math.floor(first) + 1, None),
        ">=": (math.ceil(first), None),
        "between": (math.ceil(first), math.floor(values[-1])),
    }[operator]


def months_before(today: date, value: DaysAgo) -> date:
    """``today`` minus ``value.count`` months (or years), on the last day of a shorter
    month: 31 March minus one month is 28 or 29 February."""
    months = value.count * (12 if value.unit == "years" else 1)
    index = today.year * 12 + today.month - 1 - months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(today.day, last))


__all__ = ["SegmentCompiler", "months_before"]
