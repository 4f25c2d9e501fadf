"""The base and its sending over time, for the dashboard and the HTML report: contacts per
stage month by month, the flows between stages over a period, the erosion of the base
month by month, and bounce and complaint rates week by week. They read the figures
:mod:`winback.reports.aggregates` keeps at score time (and the outbox), never the
history itself, so each page stays fast on a base of millions.

Definitions:

- a contact's stage on a day is the last one the stage history gave it on or before that
  day; contacts first scored later are not counted yet;
- the erosion at a month's end is the stage changes into ``lost`` or a refused channel
  (``unsubscribed``, ``bounced``, ``complained``) from a stage still in play since the
  start of the 12 months, as a share of the contacts in play at the start; erased
  contacts count in the stage they had. :data:`USUAL_EROSION` a year is the usual pace of
  a marketing base;
- weeks are seven whole days (in the workspace's zone), the last one ending today; a
  week's bounce rate is its hard and soft bounces over the messages sent that week, its
  complaint rate its complaints over the same messages (mailbox providers ask bulk senders
  to stay under 0.3 % of complaints: :data:`COMPLAINT_LIMIT`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from winback.clock import local_date, to_db
from winback.domain import Stage
from winback.scoring.sql_functions import day_date, local_day
from winback.store.schema import (
    delivery_days,
    outbox,
    stage_days,
    stage_flow_days,
    suppressions,
)

COMPLAINT_LIMIT = 0.003
USUAL_EROSION = 0.25
GONE = (Stage.LOST, Stage.UNSUBSCRIBED, Stage.BOUNCED, Stage.COMPLAINED)
IN_PLAY = tuple(stage for stage in Stage if stage not in GONE)


def _month_ends(today: date, months: int) -> list[date]:
    """The ends of the last ``months`` months, then ``today``."""
    return [_month_end(today, back) for back in range(months, 0, -1)] + [today]


def _month_end(today: date, back: int) -> date:
    """The last day of the month ``back`` months before ``today``'s."""
    year, month = today.year, today.month - back + 1
    while month <= 0:
        year, month = year - 1, month + 12
    return date(year, month, 1) - timedelta(days=1)


def _stage_counts(connection: Connection, days: list[date]) -> list[dict[str, int]]:
    """Contacts per stage at the end of each of ``days`` (in order)."""
    counts = [dict.fromkeys((stage.value for stage in Stage), 0) for _ in days]
    for day, stage, change in connection.execute(
        select(stage_days.c.day, stage_days.c.stage, func.sum(stage_days.c.change))
        .where(stage_days.c.day <= days[-1])
        .group_by(stage_days.c.day, stage_days.c.stage)
    ):
        for at, end in enumerate(days):
            if day <= end:
                counts[at][stage] = counts[at].get(stage, 0) + int(change)
    return counts


def stages_over_time(connection: Connection, today: date, months: int = 12) -> dict[str, Any]:
    """Contacts per stage at the end of each of the last ``months`` months and today."""
    days = _month_ends(today, months)
    counts = _stage_counts(connection, days)
    return {
        "days": [day.isoformat() for day in days],
        "stages": {stage.value: [count[stage.value] for count in counts] for stage in Stage},
    }


def stage_flows(connection: Connection, since: date, until: date) -> list[dict[str, Any]]:
    """How many contacts moved from one stage to another between two days."""
    changes = func.sum(stage_flow_days.c.changes)
    rows = connection.execute(
        select(stage_flow_days.c.from_stage, stage_flow_days.c.to_stage, changes)
        .where(stage_flow_days.c.day >= since, stage_flow_days.c.day <= until)
        .group_by(stage_flow_days.c.from_stage, stage_flow_days.c.to_stage)
        .order_by(changes.desc(), stage_flow_days.c.from_stage, stage_flow_days.c.to_stage)
    )
    return [
        {"from": source, "to": target, "contacts": int(count)} for source, target, count in rows
    ]


def erosion(connection: Connection, today: date, months: int = 12) -> dict[str, Any]:
    """The share of the base lost since the start of the last ``months`` months, at each
    month's end and today, beside the usual pace (:data:`USUAL_EROSION` a year)."""
    days = _month_ends(today, months)
    start, ends = days[0], days[1:]
    in_play = sum(_stage_counts(connection, [start])[0][stage.value] for stage in IN_PLAY)
    moved: dict[date, int] = dict(
        connection.execute(
            select(stage_flow_days.c.day, func.sum(stage_flow_days.c.changes))
            .where(
                stage_flow_days.c.day > start,
                stage_flow_days.c.day <= today,
                stage_flow_days.c.from_stage.in_([stage.value for stage in IN_PLAY]),
                stage_flow_days.c.to_stage.in_([stage.value for stage in GONE]),
            )
            .group_by(stage_flow_days.c.day)
        ).all()
    )
    eroded = [sum(int(n) for day, n in moved.items() if day <= end) for end in ends]
    return {
        "since": start.isoformat(),
        "days": [day.isoformat() for day in ends],
        "base": in_play,
        "eroded": eroded,
        "share": [count / in_play if in_play else None for count in eroded],
        "usual": [USUAL_EROSION * (day - start).days / 365 for day in ends],
    }


def deliverability(
    connection: Connection, now: datetime, timezone: str, weeks: int = 12
) -> dict[str, Any]:
    """Sent, bounced and complained per week over the last ``weeks`` weeks, with rates."""
    today = local_date(now, ZoneInfo(timezone))
    start = today - timedelta(days=7 * weeks - 1)
    labels = [start + timedelta(weeks=n) for n in range(weeks)]

    def week(day: date) -> int:
        return (day - start).days // 7

    sent = [0] * weeks
    # Grouped over a subquery, as in aggregates: PostgreSQL and the zone parameter.
    days = (
        select(day_date(local_day(outbox.c.sent_at, timezone)).label("day"))
        .where(
            outbox.c.status == "sent",
            outbox.c.sent_at >= to_db(now) - timedelta(weeks=weeks + 1),
        )
        .subquery()
    )
    for day, count in connection.execute(select(days.c.day, func.count()).group_by(days.c.day)):
        if 0 <= week(day) < weeks:
            sent[week(day)] += count
    bounced = [0] * weeks
    complained = [0] * weeks
    for day, kind, count in connection.execute(
        select(delivery_days.c.day, delivery_days.c.type, func.sum(delivery_days.c.events))
        .where(delivery_days.c.day >= start, delivery_days.c.day <= today)
        .group_by(delivery_days.c.day, delivery_days.c.type)
    ):
        (complained if kind == "complaint" else bounced)[week(day)] += int(count)
    return {
        "weeks": [label.isoformat() for label in labels],
        "sent": sent,
        "bounced": bounced,
        "complained": complained,
        "bounce_rate": [b / s if s else None for b, s in zip(bounced, sent, strict=True)],
        "complaint_rate": [c / s if s else None for c, s in zip(complained, sent, strict=True)],
        "complaint_limit": COMPLAINT_LIMIT,
    }


def suppressions_by_reason(connection: Connection) -> dict[str, int]:
    """The suppression list's size per reason."""
    return {
        reason: int(count)
        for reason, count in connection.execute(
            select(suppressions.c.reason, func.count()).group_by(suppressions.c.reason)
        )
    }
