"""The base and its sending over time, for the dashboard and the HTML report: contacts per
stage month by month (from the stage history), the flows between stages over a period,
and bounce and complaint rates week by week. Read-only aggregate queries.

Definitions:

- a contact's stage on a day is the last one the stage history gave it on or before that
  day; contacts first scored later are not counted yet;
- a week's bounce rate is its hard and soft bounces over the messages sent that week, its
  complaint rate its complaints over the same messages (mailbox providers ask bulk senders
  to stay under 0.3 % of complaints: :data:`COMPLAINT_LIMIT`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, DateTime, Integer, cast, func, literal, select

from winback.clock import to_db
from winback.domain import Stage
from winback.scoring.sql_functions import seconds_between
from winback.store.schema import events, outbox, stage_history, suppressions

COMPLAINT_LIMIT = 0.003


def stages_over_time(connection: Connection, today: date, months: int = 12) -> dict[str, Any]:
    """Contacts per stage at the end of each of the last ``months`` months and today."""
    days = [_month_end(today, back) for back in range(months, 0, -1)] + [today]
    latest = select(
        stage_history.c.contact_id,
        stage_history.c.to_stage,
        func.row_number()
        .over(
            partition_by=stage_history.c.contact_id,
            order_by=(stage_history.c.changed_on.desc(), stage_history.c.id.desc()),
        )
        .label("rank"),
    )
    series: dict[str, list[int]] = {stage.value: [] for stage in Stage}
    for day in days:
        ranked = latest.where(stage_history.c.changed_on <= day).subquery()
        counts: dict[str, int] = dict(
            connection.execute(
                select(ranked.c.to_stage, func.count())
                .where(ranked.c.rank == 1)
                .group_by(ranked.c.to_stage)
            ).all()
        )
        for stage, values in series.items():
            values.append(int(counts.get(stage, 0)))
    return {"days": [day.isoformat() for day in days], "stages": series}


def _month_end(today: date, back: int) -> date:
    """The last day of the month ``back`` months before ``today``'s."""
    year, month = today.year, today.month - back + 1
    while month <= 0:
        year, month = year - 1, month + 12
    return date(year, month, 1) - timedelta(days=1)


def stage_flows(connection: Connection, since: date, until: date) -> list[dict[str, Any]]:
    """How many contacts moved from one stage to another between two days."""
    rows = connection.execute(
        select(stage_history.c.from_stage, stage_history.c.to_stage, func.count())
        .where(
            stage_history.c.changed_on >= since,
            stage_history.c.changed_on <= until,
            stage_history.c.from_stage.is_not(None),
        )
        .group_by(stage_history.c.from_stage, stage_history.c.to_stage)
        .order_by(func.count().desc())
    )
    return [{"from": source, "to": target, "contacts": count} for source, target, count in rows]


def deliverability(connection: Connection, now: datetime, weeks: int = 12) -> dict[str, Any]:
    """Sent, bounced and complained per week over the last ``weeks`` weeks, with rates."""
    start = now - timedelta(weeks=weeks)
    labels = [(start + timedelta(weeks=n)).date() for n in range(weeks)]

    since = literal(to_db(start), DateTime())

    def week(column: Any) -> Any:
        return cast(seconds_between(since, column) / (7 * 86400), Integer)

    sent = [0] * weeks
    sent_week = week(outbox.c.sent_at)
    for number, count in connection.execute(
        select(sent_week, func.count())
        .where(outbox.c.status == "sent", outbox.c.sent_at >= to_db(start))
        .group_by(sent_week)
    ):
        sent[min(weeks - 1, int(number))] += count
    bounced = [0] * weeks
    complained = [0] * weeks
    event_week = week(events.c.occurred_at)
    for kind, number, count in connection.execute(
        select(events.c.type, event_week, func.count())
        .where(
            events.c.type.in_(["bounce_hard", "bounce_soft", "complaint"]),
            events.c.occurred_at >= to_db(start),
            events.c.occurred_at <= to_db(now),
        )
        .group_by(events.c.type, event_week)
    ):
        (complained if kind == "complaint" else bounced)[min(weeks - 1, int(number))] += count
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
