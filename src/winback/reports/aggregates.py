"""The figures of the dashboard and of the report, kept at score time so that a page
reads a few hundred rows instead of the history of a million contacts.

:func:`refresh_figures` runs at the end of ``winback score``, in its transaction, and
brings up to date:

- ``stage_days``: per day and stage, the net change of the contacts in that stage at the
  end of the day (a contact's stage on a day is the last one the stage history gave it
  on or before that day), so the contacts per stage on any day are a running sum;
- ``stage_flow_days``: per day, the stage changes from one stage to another (first
  scores, which come from no stage, left out);
- ``delivery_days``: per day (in the workspace's zone), channel and kind, the bounces
  and complaints;
- ``figure_snapshots``: the base's health (:func:`winback.reports.health.health_figures`)
  as of a full score or the first score of the day, which the base page and the report
  show; and each journey's results
  (:func:`winback.reports.results.journey_results`), which the journeys page and the
  report's journey section show "as of" their time.

:func:`refresh_journeys` keeps the journeys' results alone: ``winback run``, ``tick`` and
``dispatch`` call it at their end, since they change the outbox and the enrollments. The
results are computed whole, as ``winback journey show`` does live: their attribution
window and their treated/holdout groups move with the clock, which no counter kept row by
row could follow. A journey's status is read live by the pages, so that its controls show
at once.

Incrementally: the stage figures add what the stage history rows added since the last
refresh change (the moves they are, and for the contacts they touch, their part of each
day's change now less their part at the last refresh: a score run's cost follows the
contacts it moved, not the day's other changes), the delivery figures add the events
stored since (``figure_marks`` keeps the highest id of each table read). Stage history
and events are only ever added to, never changed, which is what makes this exact: a
test holds the kept figures to the direct computation over the history.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)

from winback.clock import local_date, to_db
from winback.config import Config
from winback.reports.health import health_figures
from winback.reports.results import results_on
from winback.scoring.sql_functions import day_date, local_day
from winback.store.history import events_slice, high_water
from winback.store.schema import (
    delivery_days,
    figure_marks,
    figure_snapshots,
    journeys,
    stage_days,
    stage_flow_days,
    stage_history,
)

#: The event kinds the deliverability page counts per day.
DELIVERY_KINDS = ("bounce_hard", "bounce_soft", "complaint")
HEALTH = "base_health"
#: A journey's kept results: this prefix and the journey's id.
JOURNEY = "journey:"


def refresh_figures(
    connection: Connection,
    config: Config,
    now: datetime,
    *,
    full: bool = True,
    health: dict[str, Any] | None = None,
    health_later: bool = False,
) -> None:
    """Bring the kept figures up to date with the stage history and the events, and keep
    the base's health as of ``now`` (aware). Call it inside the score's transaction.

    The health reads every score row and the messages of the cost period (seconds on a
    large base), so an incremental score (``full`` false) takes it again only on a new
    day of the workspace's zone (:func:`health_due`): the page shows the day it was
    taken. ``health``: the figures another engine computed
    (:func:`~winback.reports.health.scored_figures`); ``health_later``: another engine
    takes it after the commit (an incremental score), so not here."""
    _refresh_stages(connection)
    _refresh_deliveries(connection, config.workspace.timezone)
    refresh_journeys(connection, config, now)
    if health_later or (not full and not health_due(connection, config, now)):
        return
    keep_health(connection, now, health_figures(connection, config, now, scored=health))


def health_due(connection: Connection, config: Config, now: datetime) -> bool:
    """Whether the kept health is of another day than ``now``'s (or there is none)."""
    zone = ZoneInfo(config.workspace.timezone)
    return _health_taken_on(connection, config) != local_date(now, zone)


def keep_health(connection: Connection, now: datetime, figures: dict[str, Any]) -> None:
    """Keep ``figures`` (:func:`~winback.reports.health.health_figures`) as the base's
    health as of ``now``."""
    connection.execute(delete(figure_snapshots).where(figure_snapshots.c.name == HEALTH))
    connection.execute(
        insert(figure_snapshots), {"name": HEALTH, "computed_at": to_db(now), "data": figures}
    )


def refresh_journeys(connection: Connection, config: Config, now: datetime) -> None:
    """Keep every journey's results as of ``now`` (aware), in the workspace's language.
    Call it inside the transaction that changed them."""
    connection.execute(delete(figure_snapshots).where(figure_snapshots.c.name.startswith(JOURNEY)))
    found = connection.execute(select(journeys.c.id, journeys.c.name)).all()
    language = config.workspace.language
    rows = [
        {
            "name": f"{JOURNEY}{journey_id}",
            "computed_at": to_db(now),
            "data": results_on(connection, config, name, now, language),
        }
        for journey_id, name in found
    ]
    if rows:
        connection.execute(insert(figure_snapshots), rows)


def journey_snapshot(
    connection: Connection, journey_id: int
) -> tuple[datetime, dict[str, Any]] | None:
    """A journey's results as last kept and when (naive UTC, as stored), or None when
    none was kept since the journey was added."""
    found = connection.execute(
        select(figure_snapshots.c.computed_at, figure_snapshots.c.data).where(
            figure_snapshots.c.name == f"{JOURNEY}{journey_id}"
        )
    ).first()
    return None if found is None else (found[0], dict(found[1]))


def _health_taken_on(connection: Connection, config: Config) -> date | None:
    """The local day the kept health was taken, or None when there is none."""
    taken = connection.execute(
        select(figure_snapshots.c.computed_at).where(figure_snapshots.c.name == HEALTH)
    ).scalar_one_or_none()
    return None if taken is None else local_date(taken, ZoneInfo(config.workspace.timezone))


def _mark(connection: Connection, name: str) -> int:
    found = connection.execute(
        select(figure_marks.c.mark).where(figure_marks.c.name == name)
    ).scalar()
    return int(found or 0)


def _set_mark(connection: Connection, name: str, mark: int) -> None:
    updated = connection.execute(
        update(figure_marks).where(figure_marks.c.name == name).values(mark=mark)
    )
    if not updated.rowcount:
        connection.execute(insert(figure_marks), {"name": name, "mark": mark})


def _refresh_stages(connection: Connection) -> None:
    mark = _mark(connection, "stage_history")
    h = stage_history.c
    added = h.id > mark
    first_day, high = connection.execute(
        select(func.min(h.changed_on), func.max(h.id)).where(added)
    ).one()
    if first_day is None:
        return
    flows = connection.execute(
        select(h.changed_on, h.from_stage, h.to_stage, func.count())
        .where(added, h.from_stage.is_not(None))
        .group_by(h.changed_on, h.from_stage, h.to_stage)
    )
    _add_counts(connection, stage_flow_days, {(*key,): count for *key, count in flows})
    # Only the contacts with added rows move: their part of each day's change as the
    # history stood at the last refresh is taken back and their part now added.
    touched = select(h.contact_id).where(added).distinct()
    before = _day_changes(connection, touched, first_day, h.id <= mark)
    after = _day_changes(connection, touched, first_day, h.id <= high)
    _add_counts(
        connection,
        stage_days,
        {key: after.get(key, 0) - before.get(key, 0) for key in after.keys() | before.keys()},
    )
    _set_mark(connection, "stage_history", int(high))


def _day_changes(
    connection: Connection, touched: Select[Any], first_day: date, rows: ColumnElement[bool]
) -> dict[tuple[Any, ...], int]:
    """The net change per (day, stage) from ``first_day`` on that the ``touched``
    contacts make, reading the stage history's ``rows``: each contact's stage at the
    end of each day it changed, against the one at the end of its day of change before."""
    h = stage_history.c
    last_of_day = (
        select(
            h.contact_id,
            h.changed_on,
            h.to_stage,
            func.row_number()
            .over(partition_by=(h.contact_id, h.changed_on), order_by=h.id.desc())
            .label("rank"),
        )
        .where(h.contact_id.in_(touched), rows)
        .subquery()
    )
    daily = (
        select(
            last_of_day.c.changed_on,
            last_of_day.c.to_stage,
            func.lag(last_of_day.c.to_stage)
            .over(partition_by=last_of_day.c.contact_id, order_by=last_of_day.c.changed_on)
            .label("before"),
        )
        .where(last_of_day.c.rank == 1)
        .subquery()
    )
    change: dict[tuple[Any, ...], int] = defaultdict(int)
    for day, stage, before, count in connection.execute(
        select(daily.c.changed_on, daily.c.to_stage, daily.c.before, func.count())
        .where(daily.c.changed_on >= first_day)
        .group_by(daily.c.changed_on, daily.c.to_stage, daily.c.before)
    ):
        if stage != before:
            change[day, stage] += count
            if before is not None:
                change[day, before] -= count
    return change


def _add_counts(connection: Connection, table: Table, counts: dict[tuple[Any, ...], int]) -> None:
    """Add ``counts`` (keyed by the values of ``table``'s key, day first) to the counts
    ``table`` keeps, whose last column is the count: the days touched are written again
    whole, without the keys whose count comes to zero."""
    days = {key[0] for key, count in counts.items() if count}
    if not days:
        return
    *keys, counted = table.columns
    kept: dict[tuple[Any, ...], int] = defaultdict(int)
    for row in connection.execute(select(table).where(keys[0].in_(days))):
        kept[tuple(row[:-1])] += row[-1]
    for key, count in counts.items():
        kept[key] += count
    connection.execute(delete(table).where(keys[0].in_(days)))
    rows = [
        {**{column.name: value for column, value in zip(keys, key, strict=True)}, counted.name: n}
        for key, n in kept.items()
        if n
    ]
    if rows:
        connection.execute(insert(table), rows)


def _refresh_deliveries(connection: Connection, timezone: str) -> None:
    mark = _mark(connection, "events")
    high = high_water(connection)
    if high <= mark:
        return
    events = events_slice(connection, types=DELIVERY_KINDS, after_id=mark, up_to_id=high)
    # Grouped over a subquery: PostgreSQL would not match the zone parameter of a GROUP BY
    # expression to the select's.
    new = select(
        day_date(local_day(events.c.occurred_at, timezone)).label("day"),
        events.c.type,
        events.c.channel,
    ).subquery()
    added = connection.execute(
        select(new.c.day, new.c.type, new.c.channel, func.count()).group_by(
            new.c.day, new.c.type, new.c.channel
        )
    ).all()
    for on, kind, channel, count in added:
        key = and_(
            delivery_days.c.day == on,
            delivery_days.c.type == kind,
            delivery_days.c.channel == channel,
        )
        updated = connection.execute(
            update(delivery_days).where(key).values(events=delivery_days.c.events + count)
        )
        if not updated.rowcount:
            connection.execute(
                insert(delivery_days),
                {"day": on, "type": kind, "channel": channel, "events": count},
            )
    _set_mark(connection, "events", high)


def health_snapshot(connection: Connection) -> dict[str, Any] | None:
    """The base's health as of the last score, or None on a base never scored."""
    found = connection.execute(
        select(figure_snapshots.c.data).where(figure_snapshots.c.name == HEALTH)
    ).scalar()
    return dict(found) if found is not None else None
