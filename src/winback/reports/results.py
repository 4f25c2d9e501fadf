"""A journey's results: did it work, and does it pay? (``winback journey show``).

Definitions, per step and for the whole journey:

- ``enrolled``: every contact enrolled, the holdout group included; ``holdout``: those
  drawn into the holdout, who receive nothing;
- ``sent``: messages the channel accepted; ``delivered``, ``bounced`` (hard or soft),
  ``unsubscribed`` and ``complained``: events tied to a message of the step;
  ``opened`` and ``clicked``: contacts who opened (machine opens excluded) or clicked
  (bot clicks excluded) a message of the step;
- ``conversions`` and ``revenue``: purchases within ``results.attribution_days`` after a
  message of the journey, each credited to the latest such message (last touch), so a
  purchase is counted once;
- ``redeemed``: the step's coupon codes used (``offers.redeemed_at``);
- ``reactivated``: contacts whose stage went back to ``active`` after their enrolment
  (stage history, so treated and holdout are measured alike);
- ``cost``: the messages sent, priced with ``[cost]``; ``discounts``: what redeemed
  codes took off (a fixed amount, or a percentage of the attributed purchases);
- ``lift``: the reactivation rate, treated against holdout; ``revenue_lift``: revenue per
  enrolled contact since enrolment, treated against holdout (see
  :mod:`winback.reports.stats`); ``incremental_revenue`` is the revenue lift times the
  treated contacts, and ``roi`` = (incremental revenue − cost − discounts) / cost.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, distinct, func, select

from winback.config import Config
from winback.domain import EventType
from winback.journeys.catalog import load_journeys
from winback.reports.stats import (
    amount_sentence,
    mean_lift,
    proportion_lift,
    rate_sentence,
)
from winback.scoring.interaction import human_interaction_sql
from winback.scoring.sql_functions import day_date, local_day, seconds_between, shifted
from winback.store.history import events_slice
from winback.store.schema import enrollments, journeys, offers, outbox, stage_history
from winback.workspace import Workspace

#: Event types tied to a message and counted per step: JSON key → event types.
_MESSAGE_EVENTS = {
    "delivered": ("delivered",),
    "bounced": ("bounce_hard", "bounce_soft"),
    "unsubscribed": ("unsubscribe",),
    "complained": ("complaint",),
}


def _step_counts(connection: Connection, name: str) -> dict[str, dict[str, int]]:
    """Per step: messages by status (and ``sent:CHANNEL``), events tied to them, human
    opens and clicks, redeemed codes."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for step_id, status, channel, count in connection.execute(
        select(outbox.c.step_id, outbox.c.status, outbox.c.channel, func.count())
        .where(outbox.c.journey == name)
        .group_by(outbox.c.step_id, outbox.c.status, outbox.c.channel)
    ):
        counts[step_id][status] += count
        if status == "sent":
            counts[step_id][f"sent:{channel}"] += count
    kinds = {kind: key for key, types in _MESSAGE_EVENTS.items() for kind in types}
    # Bounded by type only: a bound by the journey's messages (or, below, its contacts)
    # would repeat the caller's join, which both SQLite and PostgreSQL then run twice.
    tied = events_slice(connection, types=kinds)
    for step_id, kind, count in connection.execute(
        select(outbox.c.step_id, tied.c.type, func.count(distinct(tied.c.outbox_id)))
        .join(tied, tied.c.outbox_id == outbox.c.id)
        .where(outbox.c.journey == name)
        .group_by(outbox.c.step_id, tied.c.type)
    ):
        counts[step_id][kinds[kind]] += count
    seen = events_slice(connection, types=[EventType.OPEN, EventType.CLICK])
    for step_id, kind, count in connection.execute(
        select(outbox.c.step_id, seen.c.type, func.count(distinct(seen.c.contact_id)))
        .join(seen, seen.c.outbox_id == outbox.c.id)
        .where(
            outbox.c.journey == name,
            human_interaction_sql(
                seen.c.type, machine_open=seen.c.machine_open.is_(True), bot=seen.c.bot
            )
            == 1,
        )
        .group_by(outbox.c.step_id, seen.c.type)
    ):
        counts[step_id]["opened" if kind == "open" else "clicked"] += count
    for step_id, count in connection.execute(
        select(offers.c.step_id, func.count())
        .where(offers.c.journey == name, offers.c.redeemed_at.is_not(None))
        .group_by(offers.c.step_id)
    ):
        counts[step_id]["redeemed"] += count
    return counts


def _attributed(
    connection: Connection, name: str, journey_id: int, window: timedelta
) -> list[tuple[int, str, float]]:
    """(contact, step, amount) of each purchase credited to the journey, last touch."""
    sent = outbox.alias("sent")
    events = events_slice(connection, types=[EventType.PURCHASE])
    rows = connection.execute(
        select(events.c.id, events.c.contact_id, events.c.amount, sent.c.step_id, sent.c.sent_at)
        .join(sent, sent.c.contact_id == events.c.contact_id)
        .join(
            enrollments,
            and_(
                enrollments.c.id == sent.c.enrollment_id,
                enrollments.c.journey_id == journey_id,
            ),
        )
        .where(
            sent.c.journey == name,
            sent.c.status == "sent",
            events.c.occurred_at >= sent.c.sent_at,
            events.c.occurred_at <= shifted(sent.c.sent_at, int(window.total_seconds())),
            seconds_between(sent.c.sent_at, events.c.occurred_at) <= window.total_seconds(),
        )
    ).all()
    latest: dict[int, tuple[datetime, int, str, float]] = {}
    for event_id, contact_id, amount, step_id, sent_at in rows:
        if event_id not in latest or sent_at > latest[event_id][0]:
            latest[event_id] = (sent_at, contact_id, step_id, float(amount or 0))
    return [(contact, step, amount) for _, contact, step, amount in latest.values()]


def _groups(
    connection: Connection, journey_id: int, now: datetime, timezone: str
) -> tuple[dict[bool, list[float]], dict[bool, int]]:
    """Per group (holdout or not): each enrolled contact's revenue since enrolment, and
    how many went back to ``active`` after it."""
    enrolled = select(
        enrollments.c.contact_id, enrollments.c.holdout, enrollments.c.enrolled_at
    ).where(enrollments.c.journey_id == journey_id)
    revenue: dict[int, float] = defaultdict(float)
    events = events_slice(connection, types=[EventType.PURCHASE], until=now)
    for contact_id, amount in connection.execute(
        select(events.c.contact_id, func.sum(events.c.amount))
        .join(
            enrollments,
            and_(
                enrollments.c.contact_id == events.c.contact_id,
                enrollments.c.journey_id == journey_id,
            ),
        )
        .where(events.c.occurred_at >= enrollments.c.enrolled_at)
        .group_by(events.c.contact_id)
    ):
        revenue[contact_id] = float(amount or 0)
    back = set(
        connection.execute(
            select(stage_history.c.contact_id)
            .distinct()
            .join(
                enrollments,
                and_(
                    enrollments.c.contact_id == stage_history.c.contact_id,
                    enrollments.c.journey_id == journey_id,
                ),
            )
            .where(
                stage_history.c.to_stage == "active",
                stage_history.c.changed_on
                >= day_date(local_day(enrollments.c.enrolled_at, timezone)),
            )
        ).scalars()
    )
    amounts: dict[bool, list[float]] = {True: [], False: []}
    reactivated = {True: 0, False: 0}
    for contact_id, holdout, _ in connection.execute(enrolled):
        group = bool(holdout)
        amounts[group].append(revenue.get(contact_id, 0.0))
        reactivated[group] += contact_id in back
    return amounts, reactivated


def journey_results(
    workspace: Workspace, name: str, now: datetime, language: str = "en"
) -> dict[str, Any]:
    """Everything ``winback journey show`` reports about one journey (see the module's
    docstring for each key); the verdict sentences in ``language`` (``en`` or ``fr``)."""
    with workspace.engine.connect() as connection:
        return results_on(connection, workspace.config, name, now, language)


def results_on(
    connection: Connection, config: Config, name: str, now: datetime, language: str = "en"
) -> dict[str, Any]:
    """:func:`journey_results` over the caller's connection, e.g. inside a transaction
    that keeps them (:func:`winback.reports.aggregates.refresh_journeys`)."""
    window = timedelta(days=config.results.attribution_days)
    journey_id, journey = load_journeys(connection, name)[name]
    status = connection.execute(
        select(journeys.c.status).where(journeys.c.id == journey_id)
    ).scalar_one()
    counts = _step_counts(connection, name)
    credited = _attributed(connection, name, journey_id, window)
    amounts, reactivated = _groups(connection, journey_id, now, config.workspace.timezone)
    waiting: dict[str | None, int] = dict(
        connection.execute(
            select(enrollments.c.step_id, func.count())
            .where(enrollments.c.journey_id == journey_id, enrollments.c.status == "active")
            .group_by(enrollments.c.step_id)
        ).all()
    )
    percents = dict(
        connection.execute(
            select(offers.c.step_id, func.max(offers.c.percent))
            .where(offers.c.journey == name)
            .group_by(offers.c.step_id)
        ).all()
    )
    fixed = connection.execute(
        select(func.coalesce(func.sum(offers.c.amount), 0)).where(
            offers.c.journey == name,
            offers.c.redeemed_at.is_not(None),
            offers.c.percent.is_(None),
        )
    ).scalar_one()
    conversions: dict[str, int] = defaultdict(int)
    revenue: dict[str, float] = defaultdict(float)
    for _, step_id, amount in credited:
        conversions[step_id] += 1
        revenue[step_id] += amount
    prices = {"email": config.cost.email, "sms": config.cost.sms}
    steps = []
    cost = 0.0
    discounts = float(fixed or 0)
    for step in journey.all_steps:
        step_counts = counts.get(step.id, {})
        sent = step_counts.get("sent", 0)
        step_cost = sum(
            price * step_counts.get(f"sent:{channel}", 0) for channel, price in prices.items()
        )
        cost += step_cost
        percent = percents.get(step.id)
        if percent and step_counts.get("redeemed"):
            discounts += revenue[step.id] * percent / (100 - percent) if percent < 100 else 0.0
        steps.append(
            {
                "id": step.id,
                "channel": step.channel,
                "template": step.template,
                "waiting": waiting.get(step.id, 0),
                "sent": sent,
                "queued": step_counts.get("queued", 0) + step_counts.get("sending", 0),
                "failed": step_counts.get("failed", 0),
                "unknown": step_counts.get("unknown", 0),
                **{key: step_counts.get(key, 0) for key in _MESSAGE_EVENTS},
                "opened": step_counts.get("opened", 0),
                "clicked": step_counts.get("clicked", 0),
                "conversions": conversions[step.id],
                "revenue": round(revenue[step.id], 2),
                "redeemed": step_counts.get("redeemed", 0),
                "cost": round(step_cost, 4),
            }
        )
    treated, holdout = amounts[False], amounts[True]
    lift = proportion_lift(reactivated[False], len(treated), reactivated[True], len(holdout))
    revenue_lift = mean_lift(treated, holdout)
    incremental = (
        revenue_lift.difference * len(treated) if revenue_lift.difference is not None else None
    )
    roi = None
    if incremental is not None and cost > 0:
        roi = (incremental - cost - discounts) / cost
    currency = config.cost.currency
    return {
        "name": name,
        "status": status,
        "enrolled": len(treated) + len(holdout),
        "holdout": len(holdout),
        "waiting_to_start": waiting.get(None, 0),
        "reactivated": {"treated": reactivated[False], "holdout": reactivated[True]},
        "steps": steps,
        "conversions": sum(conversions.values()),
        "revenue": round(sum(revenue.values()), 2),
        "redeemed": sum(step["redeemed"] for step in steps),
        "cost": round(cost, 2),
        "discounts": round(discounts, 2),
        "incremental_revenue": None if incremental is None else round(incremental, 2),
        "roi": roi,
        "currency": currency,
        "attribution_days": config.results.attribution_days,
        "lift": lift.as_dict(),
        "revenue_lift": revenue_lift.as_dict(),
        "verdict": {
            "lift": rate_sentence(lift, language),
            "revenue_lift": amount_sentence(revenue_lift, currency, language),
        },
    }
