"""Base health (``winback status``): how the base is spread over stages and channel
statuses, how long it has been silent, how fast it erodes, and what sending to its
dormant and lost part costs. Read-only aggregate queries over the scored base.

Definitions:

- shares are over the contacts not erased (stages: over the scored ones);
- inactivity buckets count whole months of 30.4 days since the last interaction
  (``0-3`` is under 91 days); contacts that never interacted are in ``never``;
- erosion over the last 12 months: the contacts that became ``lost`` (stage history) or
  unreachable (every address now refused, the refusal dated within the window, or
  erased within the window), among those already in the base 12 months ago, as a share
  of that base;
- cost: the messages sent over the last 30 days to contacts now ``dormant`` or ``lost``,
  priced with ``[cost]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, Select, and_, case, func, or_, select

from winback.clock import to_db
from winback.config import Config
from winback.domain import SENDING_CHANNELS, Channel, ChannelStatus, EventType, Stage
from winback.scoring.consent import every_address_refused
from winback.scoring.sql_functions import local_day
from winback.scoring.stages import day_number, from_day_number
from winback.store.history import events_slice
from winback.store.schema import contact_scores, contacts, stage_history
from winback.workspace import Workspace

# (label, lowest day, first day of the next bucket) — months of 30.4 days.
INACTIVITY_BUCKETS = (
    ("0-3", 0, 91),
    ("3-6", 91, 182),
    ("6-9", 182, 273),
    ("9-12", 273, 365),
    ("12-24", 365, 730),
    ("24-36", 730, 1095),
    ("36+", 1095, None),
)
COST_PERIOD_DAYS = 30
#: The columns of ``contacts`` the figures read.
CONTACT_COLUMNS = (
    "id",
    "created_at",
    "email_status",
    "email_status_at",
    "sms_status",
    "sms_status_at",
    "erased_at",
)
#: The columns of ``contact_scores`` the figures read.
SCORE_COLUMNS = ("contact_id", "stage", "last_interaction_at")
#: Runs a select where the tables are, and gives its rows.
Rows = Callable[[Select[Any]], Sequence[Any]]
# The contacts the report is about (not erased), and those of them that are scored.
LIVE = contacts.c.erased_at.is_(None)
SCORED = contact_scores.join(contacts, contacts.c.id == contact_scores.c.contact_id)


def _share(count: int, total: int) -> float:
    return round(count / total, 4) if total else 0.0


def _spread(counts: dict[Any, Any], labels: Iterable[str], total: int) -> dict[str, Any]:
    """The count of each label (0 when absent) and its share of ``total``."""
    return {
        label: {"count": int(counts.get(label, 0)), "share": _share(counts.get(label, 0), total)}
        for label in labels
    }


def base_health(workspace: Workspace, *, now: datetime) -> dict[str, Any]:
    """``winback status``: the base's health at ``now`` (aware), as
    :func:`health_figures` gives it."""
    with workspace.engine.connect() as connection:
        return health_figures(connection, workspace.config, now)


def health_figures(
    connection: Connection,
    config: Config,
    now: datetime,
    *,
    scored: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole report as one JSON-ready object with the keys ``stages``, ``channels``,
    ``inactivity_buckets``, ``erosion`` and ``cost`` (plus ``now`` and ``contacts``), read
    through ``connection``: the score keeps it inside its own transaction. ``scored``:
    :func:`scored_figures`, when another engine computed them."""
    if scored is None:
        scored = scored_figures(lambda query: connection.execute(query).all(), config, now)
    return {"now": now.isoformat(), **scored}


def scored_figures(rows: Rows, config: Config, now: datetime) -> dict[str, Any]:
    """Every figure of the health, with the queries run by ``rows`` (a select in, its
    rows out): an engine that holds the tables they read (``contacts``' columns
    :data:`CONTACT_COLUMNS`, ``contact_scores``' :data:`SCORE_COLUMNS`, the
    ``stage_history`` rows of
    :func:`erosion_changes`, ``events``) computes them there."""
    total = int(rows(select(func.count()).where(LIVE))[0][0])
    return {
        "contacts": total,
        "stages": _stages(rows, total),
        "channels": _channels(rows, total),
        "inactivity_buckets": _inactivity(rows, config, now),
        "erosion": _erosion(rows, config, now),
        "cost": _cost(rows, config, now),
    }


def _stages(rows: Rows, total: int) -> dict[str, Any]:
    found: dict[Any, Any] = dict(
        rows(
            select(contact_scores.c.stage, func.count())
            .select_from(SCORED)
            .where(LIVE)
            .group_by(contact_scores.c.stage)
        )
    )
    scored = sum(found.values())
    result = _spread(found, (stage.value for stage in Stage), scored)
    result["unscored"] = {"count": total - scored, "share": _share(total - scored, total)}
    return result


def _channels(rows: Rows, total: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for channel in SENDING_CHANNELS:
        column = contacts.c[f"{channel.value}_status"]
        found: dict[Any, Any] = dict(
            rows(select(column, func.count()).where(LIVE).group_by(column))
        )
        statuses = _spread(found, (status.value for status in ChannelStatus), total)
        result[channel.value] = {
            "statuses": statuses,
            "reachable": statuses[ChannelStatus.SUBSCRIBED.value]["count"],
        }
    either = or_(
        contacts.c.email_status == ChannelStatus.SUBSCRIBED.value,
        contacts.c.sms_status == ChannelStatus.SUBSCRIBED.value,
    )
    reachable = int(rows(select(func.count()).where(LIVE, either))[0][0])
    result["reachable_any"] = {"count": reachable, "share": _share(reachable, total)}
    return result


def _inactivity(rows: Rows, config: Config, now: datetime) -> dict[str, Any]:
    timezone = config.workspace.timezone
    today = day_number(now, ZoneInfo(timezone))
    days = today - local_day(contact_scores.c.last_interaction_at, timezone)
    bucket = case(
        (contact_scores.c.last_interaction_at.is_(None), "never"),
        *((days < end, label) for label, _start, end in INACTIVITY_BUCKETS if end is not None),
        else_=INACTIVITY_BUCKETS[-1][0],
    )
    labelled = select(bucket.label("bucket")).select_from(SCORED).where(LIVE).subquery()
    found: dict[Any, Any] = dict(
        rows(select(labelled.c.bucket, func.count()).group_by(labelled.c.bucket))
    )
    scored = sum(found.values())
    return _spread(found, [label for label, _, _ in INACTIVITY_BUCKETS] + ["never"], scored)


def erosion_start(timezone: str, now: datetime) -> tuple[datetime, date]:
    """The start of the erosion's window: its instant, and the local day the stage
    changes counted are after."""
    start = now - timedelta(days=365)
    return start, from_day_number(day_number(start, ZoneInfo(timezone)))


def erosion_changes(timezone: str, now: datetime) -> ColumnElement[bool]:
    """The stage changes the erosion counts: to ``lost``, within its window."""
    _, start_day = erosion_start(timezone, now)
    h = stage_history.c
    return and_(h.to_stage == Stage.LOST.value, h.changed_on > start_day)


def _erosion(rows: Rows, config: Config, now: datetime) -> dict[str, Any]:
    start, _ = erosion_start(config.workspace.timezone, now)
    in_base = contacts.c.created_at < to_db(start)
    lost = (
        select(stage_history.c.contact_id)
        .where(erosion_changes(config.workspace.timezone, now))
        .distinct()
    )
    all_refused = every_address_refused(contacts.c.email_status, contacts.c.sms_status)
    refused_lately = or_(
        contacts.c.email_status_at >= to_db(start), contacts.c.sms_status_at >= to_db(start)
    )
    unreachable = or_(
        and_(all_refused, refused_lately, LIVE),
        contacts.c.erased_at >= to_db(start),
    )
    became_lost = contacts.c.id.in_(lost)
    counts = rows(
        select(
            func.count(),
            *(
                func.coalesce(func.sum(case((condition, 1), else_=0)), 0)
                for condition in (became_lost, unreachable, or_(became_lost, unreachable))
            ),
        ).where(in_base)
    )[0]
    base, lost_count, unreachable_count, eroded = (int(n) for n in counts)
    return {
        "since": start.isoformat(),
        "base_12_months_ago": base,
        "became_lost": lost_count,
        "became_unreachable": unreachable_count,
        "eroded": eroded,
        "rate": _share(eroded, base),
    }


def _cost(rows: Rows, config: Config, now: datetime) -> dict[str, Any]:
    since = now - timedelta(days=COST_PERIOD_DAYS)
    prices = {Channel.EMAIL.value: config.cost.email, Channel.SMS.value: config.cost.sms}
    events = events_slice(None, types=[EventType.SENT], since=since, until=now)
    found = rows(
        select(contact_scores.c.stage, events.c.channel, func.count())
        .select_from(
            events.join(contact_scores, contact_scores.c.contact_id == events.c.contact_id)
        )
        .where(
            events.c.occurred_at < to_db(now),
            events.c.channel.in_(list(prices)),
            contact_scores.c.stage.in_([Stage.DORMANT.value, Stage.LOST.value]),
        )
        .group_by(contact_scores.c.stage, events.c.channel)
    )
    sent = {(stage, channel): int(count) for stage, channel, count in found}
    result: dict[str, Any] = {"currency": config.cost.currency, "period_days": COST_PERIOD_DAYS}
    total = 0.0
    for stage in (Stage.DORMANT.value, Stage.LOST.value):
        counts = {channel: sent.get((stage, channel), 0) for channel in prices}
        cost = sum((count * prices[channel] for channel, count in counts.items()), 0.0)
        result[stage] = {
            **{f"{channel}_sent": count for channel, count in counts.items()},
            "cost": round(cost, 2),
        }
        total += cost
    result["total"] = round(total, 2)
    return result
