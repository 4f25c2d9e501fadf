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

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, case, func, or_, select

from winback.clock import to_db
from winback.config import Config
from winback.domain import REFUSALS, ChannelStatus, Stage
from winback.scoring.sql import local_day
from winback.scoring.stages import day_number, from_day_number
from winback.store.schema import contact_scores, contacts, events, stage_history

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


def _share(count: int, total: int) -> float:
    return round(count / total, 4) if total else 0.0


def base_health(connection: Connection, config: Config, now: datetime) -> dict[str, Any]:
    """The whole report as one JSON-ready object with the keys ``stages``, ``channels``,
    ``inactivity_buckets``, ``erosion`` and ``cost`` (plus ``now`` and ``contacts``)."""
    live = contacts.c.erased_at.is_(None)
    total = int(connection.execute(select(func.count()).where(live)).scalar_one())
    return {
        "now": now.isoformat(),
        "contacts": total,
        "stages": _stages(connection, total),
        "channels": _channels(connection, total),
        "inactivity_buckets": _inactivity(connection, config, now),
        "erosion": _erosion(connection, config, now),
        "cost": _cost(connection, config, now),
    }


def _stages(connection: Connection, total: int) -> dict[str, Any]:
    rows: dict[Any, Any] = dict(
        connection.execute(
            select(contact_scores.c.stage, func.count())
            .select_from(
                contact_scores.join(contacts, contacts.c.id == contact_scores.c.contact_id)
            )
            .where(contacts.c.erased_at.is_(None))
            .group_by(contact_scores.c.stage)
        ).all()
    )
    scored = sum(rows.values())
    result: dict[str, Any] = {
        stage.value: {
            "count": int(rows.get(stage.value, 0)),
            "share": _share(rows.get(stage.value, 0), scored),
        }
        for stage in Stage
    }
    result["unscored"] = {"count": total - scored, "share": _share(total - scored, total)}
    return result


def _channels(connection: Connection, total: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for channel in ("email", "sms"):
        column = contacts.c[f"{channel}_status"]
        rows: dict[Any, Any] = dict(
            connection.execute(
                select(column, func.count()).where(contacts.c.erased_at.is_(None)).group_by(column)
            ).all()
        )
        statuses = {
            status.value: {
                "count": int(rows.get(status.value, 0)),
                "share": _share(rows.get(status.value, 0), total),
            }
            for status in ChannelStatus
        }
        result[channel] = {
            "statuses": statuses,
            "reachable": statuses[ChannelStatus.SUBSCRIBED.value]["count"],
        }
    either = or_(
        contacts.c.email_status == ChannelStatus.SUBSCRIBED.value,
        contacts.c.sms_status == ChannelStatus.SUBSCRIBED.value,
    )
    reachable = connection.execute(
        select(func.count()).where(contacts.c.erased_at.is_(None), either)
    ).scalar_one()
    result["reachable_any"] = {"count": int(reachable), "share": _share(int(reachable), total)}
    return result


def _inactivity(connection: Connection, config: Config, now: datetime) -> dict[str, Any]:
    timezone = config.workspace.timezone
    today = day_number(now, ZoneInfo(timezone))
    days = today - local_day(contact_scores.c.last_interaction_at, timezone)
    bucket = case(
        (contact_scores.c.last_interaction_at.is_(None), "never"),
        *((days < end, label) for label, _start, end in INACTIVITY_BUCKETS if end is not None),
        else_=INACTIVITY_BUCKETS[-1][0],
    )
    labelled = (
        select(bucket.label("bucket"))
        .select_from(contact_scores.join(contacts, contacts.c.id == contact_scores.c.contact_id))
        .where(contacts.c.erased_at.is_(None))
        .subquery()
    )
    rows: dict[Any, Any] = dict(
        connection.execute(
            select(labelled.c.bucket, func.count()).group_by(labelled.c.bucket)
        ).all()
    )
    scored = sum(rows.values())
    labels = [label for label, _, _ in INACTIVITY_BUCKETS] + ["never"]
    return {
        label: {"count": int(rows.get(label, 0)), "share": _share(rows.get(label, 0), scored)}
        for label in labels
    }


def _erosion(connection: Connection, config: Config, now: datetime) -> dict[str, Any]:
    tz = ZoneInfo(config.workspace.timezone)
    start = now - timedelta(days=365)
    start_day = from_day_number(day_number(start, tz))
    in_base = contacts.c.created_at < to_db(start)
    base = int(connection.execute(select(func.count()).where(in_base)).scalar_one())
    lost = (
        select(stage_history.c.contact_id)
        .where(stage_history.c.to_stage == Stage.LOST.value, stage_history.c.changed_on > start_day)
        .distinct()
    )
    refused = sorted(REFUSALS)
    known = [contacts.c.email_status != "none", contacts.c.sms_status != "none"]
    all_refused = and_(
        or_(*known),
        or_(~known[0], contacts.c.email_status.in_(refused)),
        or_(~known[1], contacts.c.sms_status.in_(refused)),
    )
    refused_lately = or_(
        contacts.c.email_status_at >= to_db(start), contacts.c.sms_status_at >= to_db(start)
    )
    unreachable = or_(
        and_(all_refused, refused_lately, contacts.c.erased_at.is_(None)),
        contacts.c.erased_at >= to_db(start),
    )
    became_lost = int(
        connection.execute(
            select(func.count()).where(in_base, contacts.c.id.in_(lost))
        ).scalar_one()
    )
    became_unreachable = int(
        connection.execute(select(func.count()).where(in_base, unreachable)).scalar_one()
    )
    eroded = int(
        connection.execute(
            select(func.count()).where(in_base, or_(contacts.c.id.in_(lost), unreachable))
        ).scalar_one()
    )
    return {
        "since": start.isoformat(),
        "base_12_months_ago": base,
        "became_lost": became_lost,
        "became_unreachable": became_unreachable,
        "eroded": eroded,
        "rate": _share(eroded, base),
    }


def _cost(connection: Connection, config: Config, now: datetime) -> dict[str, Any]:
    since = now - timedelta(days=COST_PERIOD_DAYS)
    prices = {"email": config.cost.email, "sms": config.cost.sms}
    rows = connection.execute(
        select(contact_scores.c.stage, events.c.channel, func.count())
        .select_from(
            events.join(contact_scores, contact_scores.c.contact_id == events.c.contact_id)
        )
        .where(
            events.c.type == "sent",
            events.c.occurred_at >= to_db(since),
            events.c.occurred_at < to_db(now),
            events.c.channel.in_(list(prices)),
            contact_scores.c.stage.in_([Stage.DORMANT.value, Stage.LOST.value]),
        )
        .group_by(contact_scores.c.stage, events.c.channel)
    ).all()
    result: dict[str, Any] = {"currency": config.cost.currency, "period_days": COST_PERIOD_DAYS}
    total = 0.0
    for stage in (Stage.DORMANT.value, Stage.LOST.value):
        sent = {f"{channel}_sent": 0 for channel in prices}
        cost = 0.0
        for row_stage, channel, count in rows:
            if row_stage == stage:
                sent[f"{channel}_sent"] = int(count)
                cost += int(count) * prices[channel]
        result[stage] = {**sent, "cost": round(cost, 2)}
        total += cost
    result["total"] = round(total, 2)
    return result
