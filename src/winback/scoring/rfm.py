"""RFM: recency, frequency and monetary scores of the customers, 1 to 5, and the spend
level that the monetary score gives.

Each score is the customer's quintile among the customers of the base: one plus the
number of quintile breakpoints (the 20th, 40th, 60th and 80th percentiles, the value at
rank ceil(p·n), as SQL's ``percentile_disc``) that the customer's value is above. Recency
is measured on the day of the last purchase, frequency on the number of purchases,
monetary on the total spend. Equal values get equal scores, so a base where most
customers bought once gives them all F = 1. A non-customer has no scores.

:func:`quintile_breakpoints`, :func:`quintile_score` and :func:`spend_level` are the rules
on plain values; :func:`breakpoints_of`, :func:`quintile_sql` and :func:`spend_level_sql`
the same rules in SQL for the bulk scoring. A property test checks that both agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, Table, case, func, literal, select

from winback.scoring.sql_functions import local_day

SPEND_LEVELS = ("low", "medium", "high")
_PERCENTILES = (0.2, 0.4, 0.6, 0.8)
_NO_BREAKPOINTS = (0.0, 0.0, 0.0, 0.0)


def quintile_breakpoints(values: Iterable[float]) -> tuple[float, ...] | None:
    """The 20th, 40th, 60th and 80th percentiles (the value at rank ceil(p·n), as SQL's
    ``percentile_disc``) of the customers' values, or None when there are none.

    >>> quintile_breakpoints([1, 1, 1, 2, 5])
    (1, 1, 1, 2)
    """
    ordered = sorted(values)
    if not ordered:
        return None
    n = len(ordered)
    return tuple(ordered[math.ceil(p * n) - 1] for p in _PERCENTILES)


def quintile_score(value: float, breakpoints: Sequence[float]) -> int:
    """1 to 5: one plus the number of breakpoints the value is above."""
    return 1 + sum(1 for point in breakpoints if value > point)


def spend_level(monetary_score: int | None) -> str | None:
    """low (M 1–2), medium (M 3–4) or high (M 5); None for a non-customer."""
    if monetary_score is None:
        return None
    return "low" if monetary_score <= 2 else "medium" if monetary_score <= 4 else "high"


@dataclass(frozen=True)
class Breakpoints:
    """The quintile breakpoints of recency, frequency and monetary value over the
    ``customers`` of the base.

    A full score sets them; incremental runs keep them (they are stored in the run's
    audit record), so a contact whose facts did not change keeps its R, F and M, and one
    whose facts changed is placed against the same breakpoints. ``winback score --full``
    recomputes them over the base of the day."""

    customers: int
    recency: tuple[float, ...]
    frequency: tuple[float, ...]
    monetary: tuple[float, ...]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Breakpoints:
        return cls(
            customers=int(data["customers"]),
            **{name: tuple(data[name]) for name in ("recency", "frequency", "monetary")},
        )


def breakpoints_of(connection: Connection, facts: Table, timezone: str) -> Breakpoints:
    """:func:`quintile_breakpoints` of the customers of a facts table (a row per contact
    with ``purchases``, ``total_spend`` and ``last_purchase_at``), computed in SQL."""
    return breakpoints_from(lambda query: connection.execute(query).all(), facts, timezone)


def breakpoints_from(
    rows: Callable[[Select[Any]], Sequence[Any]], facts: Table, timezone: str
) -> Breakpoints:
    """:func:`breakpoints_of` with the queries run by ``rows`` (a select in, its rows
    out): another engine that holds the facts computes them where they are."""
    f = facts.c
    customers = rows(select(func.count()).select_from(facts).where(f.purchases > 0))[0][0]
    if not customers:
        return Breakpoints(0, _NO_BREAKPOINTS, _NO_BREAKPOINTS, _NO_BREAKPOINTS)
    ranks = [math.ceil(p * customers) for p in _PERCENTILES]
    result = []
    for value in (local_day(f.last_purchase_at, timezone), f.purchases, f.total_spend):
        ranked = (
            select(value.label("value"), func.row_number().over(order_by=value).label("rank"))
            .where(f.purchases > 0)
            .subquery()
        )
        found = dict(rows(select(ranked.c.rank, ranked.c.value).where(ranked.c.rank.in_(ranks))))
        result.append(tuple(float(found[rank]) for rank in ranks))
    return Breakpoints(int(customers), *result)


def quintile_sql(value: ColumnElement[Any], points: Sequence[float]) -> ColumnElement[Any]:
    """SQL for :func:`quintile_score`."""
    score: ColumnElement[Any] = literal(1)
    for point in points:
        score = score + case((value > point, 1), else_=0)
    return score


def spend_level_sql(monetary_score: ColumnElement[Any]) -> ColumnElement[Any]:
    """SQL for :func:`spend_level`."""
    low, medium, high = SPEND_LEVELS
    return case(
        (monetary_score <= 2, low),
        (monetary_score <= 4, medium),
        (monetary_score.is_not(None), high),
    )
