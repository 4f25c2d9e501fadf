"""The tick's bulk path: due enrollments that move the same way, moved by set-based SQL.

A tick that starts a journey for a million contacts asks :func:`decide` the same question
a million times: same journey, same step, no reaction, same channels. So the due
enrollments are first copied into a temporary table (``tick_due``) with the inputs of
:func:`decide` that SQL can compute (consent per channel, the channel last used, whether
the sunset spares the contact); the rows that need a look one by one are flagged
``special``: those with a reaction, a pause, a message in the last 30 days (the frequency
cap) or an address suppressed since enrolment. The others are grouped, ``decide`` runs
once per group, and each group that simply moves on to a step is written by one UPDATE
of the enrollments and one INSERT ... SELECT into the outbox. Every other group (exits,
ends of journey, the spare step: they leave audit records per contact) goes to the row
path with the special rows.

Enrolment keeps one active enrollment per contact, so two rows of one group never count
against the same contact's frequency cap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.sql import ColumnElement

from winback.clock import to_db
from winback.compliance.suppression import SuppressionList, can_receive_clause
from winback.journeys.controls import held_journeys
from winback.journeys.definition import Journey
from winback.journeys.machine import NO_REACTION, Advance, decide
from winback.store.chunks import chunks
from winback.store.engine import BULK_CACHE_SIZE
from winback.store.schema import Id, contact_scores, contacts, enrollments, outbox

# The inputs of decide() that SQL computes, per due enrollment; dropped after the tick.
due_table = Table(
    "tick_due",
    MetaData(),
    Column("id", Id, primary_key=True),
    Column("journey_id", Id, nullable=False),
    Column("contact_id", Id, nullable=False),
    Column("holdout", Boolean, nullable=False),
    Column("step_id", String(100)),
    Column("step_channel", String(8)),
    Column("channels", Text),
    Column("email_ok", Boolean),
    Column("sms_ok", Boolean),
    Column("preferred", String(8)),
    Column("spared", Boolean),
    Column("timezone", String(64)),
    Column("country", String(2)),
    Column("special", Boolean, nullable=False),
    Column("enrolled_at", DateTime, nullable=False),
    prefixes=["TEMPORARY"],
)
# Outbox rows that count against the frequency cap: everything that went or may go out.
COUNTED = ("queued", "sending", "sent", "unknown")
# Outbox rows whose fate is not known yet: the enrollment waits for them to go.
PENDING = ("queued", "sending")
MONTH = timedelta(days=30)
# (channel, [(time zone, country)]) -> when a message may go out per place.
Place = tuple[str | None, str | None]
DueMoments = Callable[[str, list[Place]], dict[Place, datetime]]
_GROUP = (
    "journey_id",
    "step_id",
    "step_channel",
    "holdout",
    "channels",
    "email_ok",
    "sms_ok",
    "preferred",
)


@lru_cache(maxsize=64)
def channel_list(text: str | None) -> frozenset[str]:
    """An enrollment's channels, stored as a JSON list."""
    return frozenset(json.loads(text)) if text else frozenset()


def reachable_channels(
    channels: str | None, email_ok: bool | None, sms_ok: bool | None
) -> tuple[str, ...]:
    """The channels of an enrollment (``channels``, its JSON list) that the contact can
    still receive on, in the order :func:`decide` prefers them."""
    allowed = channel_list(channels)
    return tuple(
        channel
        for channel, ok in (("email", email_ok), ("sms", sms_ok))
        if ok and channel in allowed
    )


def preferred_clause() -> ColumnElement[str | None]:
    """The channel the contact last used, for ``best`` steps: ``email``, ``sms`` or NULL
    (email on a tie)."""
    last_email, last_sms = contact_scores.c.last_email_at, contact_scores.c.last_sms_at
    return case(
        (and_(last_email.is_(None), last_sms.is_(None)), null()),
        (or_(last_sms.is_(None), last_email >= last_sms), literal("email")),
        else_=literal("sms"),
    )


def _spared_clause(journeys: Mapping[int, tuple[str, Journey]]) -> ColumnElement[bool]:
    """Whether the sunset of the enrollment's journey spares the contact (see
    :func:`winback.journeys.engine.spared`)."""
    value = contact_scores.c.expected_value_12m
    spare = [
        and_(enrollments.c.journey_id == journey_id, value > journey.sunset.spare_above_value)
        for journey_id, (_, journey) in journeys.items()
        if journey.sunset is not None
    ]
    return func.coalesce(or_(*spare), false()) if spare else false()


# SQLite pragmas of enrolment and the tick (see winback.store.engine.bulk_transaction):
# the 1 GB page cache saves CPU for enrol + tick on a large base (see bench/RESULTS.md),
# and their scratch tables stay in memory.
BULK_PRAGMAS = {"cache_size": BULK_CACHE_SIZE, "temp_store": 2}


def stage_due(
    connection: Connection, journeys: Mapping[int, tuple[str, Journey]], stamp: datetime
) -> None:
    """Create ``tick_due`` and fill it with the enrollments due at ``stamp`` (naive UTC)."""
    due_table.drop(connection, checkfirst=True)
    due_table.create(connection)
    live = contacts.c.erased_at.is_(None)
    rows = (
        select(
            enrollments.c.id,
            enrollments.c.journey_id,
            enrollments.c.contact_id,
            enrollments.c.holdout,
            enrollments.c.step_id,
            enrollments.c.step_channel,
            cast(enrollments.c.channels, String),
            and_(live, can_receive_clause("email")),
            and_(live, can_receive_clause("sms")),
            preferred_clause(),
            _spared_clause(journeys),
            contacts.c.timezone,
            contacts.c.country,
            contacts.c.paused_until.is_not(None),
            enrollments.c.enrolled_at,
        )
        .join(contacts, contacts.c.id == enrollments.c.contact_id)
        .outerjoin(contact_scores, contact_scores.c.contact_id == enrollments.c.contact_id)
        .where(
            enrollments.c.status == "active",
            enrollments.c.next_due_at <= stamp,
            enrollments.c.journey_id.not_in(held_journeys()),
        )
    )
    connection.execute(insert(due_table).from_select([c.name for c in due_table.c], rows))


def capped(now: datetime) -> ColumnElement[bool]:
    """The outbox rows the frequency cap counts at ``now``: the last 30 days' messages
    that went or may go out, later ones included (held by the quiet hours, a retry)."""
    return and_(outbox.c.status.in_(COUNTED), outbox.c.due_at > to_db(now - MONTH))


def mark_special(
    connection: Connection,
    *,
    reacted: list[int],
    now: datetime,
    suppressed: SuppressionList,
) -> None:
    """Flag the rows that need a look one by one: a reaction (``reacted`` enrollment
    ids), a message the frequency cap counts at ``now``, a message still to go, an
    address on the (recent) suppression list. A pause was flagged by :func:`stage_due`."""
    due = due_table
    for batch in chunks(reacted):
        connection.execute(update(due).where(due.c.id.in_(batch)).values(special=True))
    messaged = select(outbox.c.contact_id).where(capped(now))
    connection.execute(update(due).where(due.c.contact_id.in_(messaged)).values(special=True))
    # A message still to go, however old: the enrollment must wait for it.
    waiting = select(outbox.c.enrollment_id).where(outbox.c.status.in_(PENDING))
    connection.execute(update(due).where(due.c.id.in_(waiting)).values(special=True))
    if not suppressed:
        return
    rows = connection.execute(
        select(due.c.id, contacts.c.email, contacts.c.phone).join(
            contacts, contacts.c.id == due.c.contact_id
        )
    )
    blocked = [
        row_id
        for row_id, email, phone in rows
        if suppressed.blocks("email", email) or suppressed.blocks("sms", phone)
    ]
    for batch in chunks(blocked):
        connection.execute(update(due).where(due.c.id.in_(batch)).values(special=True))


def _group(values: Mapping[str, Any]) -> ColumnElement[bool]:
    due = due_table
    return and_(
        due.c.special == false(),
        *(
            due.c[key].is_(None) if value is None else due.c[key] == value
            for key, value in values.items()
        ),
    )


@dataclass
class BulkResult:
    queued: int = 0
    holdout_steps: int = 0
    passed_over: int = 0


def advance_groups(
    connection: Connection,
    journeys: Mapping[int, tuple[str, Journey]],
    *,
    now: datetime,
    stamp: datetime,
    due_moments: DueMoments,
) -> BulkResult:
    """Move every group of plain rows whose decision is to send the next step, and
    flag the other groups special for the row path. ``due_moments(channel, places)``
    gives, per (time zone, country), when a message may go out (the quiet hours)."""
    due = due_table
    result = BulkResult()
    # DISTINCT, not GROUP BY: its temporary B-tree keeps one entry per group where a
    # GROUP BY sorts every row, which is far slower on a large tick (see
    # bench/RESULTS.md); each group's UPDATE counts its members.
    groups = connection.execute(
        select(*(due.c[key] for key in _GROUP), due.c.spared)
        .where(due.c.special == false())
        .distinct()
    ).all()
    with _due_index_set_aside(connection):
        for *key, spared in groups:
            values = dict(zip(_GROUP, key, strict=True))
            values["spared"] = spared
            name, journey = journeys[values["journey_id"]]
            decision = decide(
                journey,
                values["step_id"],
                NO_REACTION,
                reachable_channels(values["channels"], values["email_ok"], values["sms_ok"]),
                values["preferred"],
                now,
                bool(spared),
                values["step_channel"],
            )
            if not isinstance(decision, Advance) or journey.is_spare(decision.step_id):
                connection.execute(update(due).where(_group(values)).values(special=True))
                continue
            members = select(due.c.id).where(_group(values))
            count = connection.execute(
                update(enrollments)
                .where(enrollments.c.id.in_(members))
                .values(
                    step_id=decision.step_id,
                    step_channel=decision.channel,
                    step_sent_at=stamp,
                    next_due_at=to_db(decision.due_at),
                )
            ).rowcount
            if values["holdout"]:
                result.holdout_steps += count
                continue
            channel = decision.channel
            if channel is None:  # passed over: nothing to send, the wait runs
                result.passed_over += count
                continue
            result.queued += count
            _queue(connection, name, decision.step_id, channel, values, now, stamp, due_moments)
    return result


_DUE_INDEX = next(index for index in enrollments.indexes if index.name == "ix_enrollments_due")


@contextmanager
def _due_index_set_aside(connection: Connection) -> Iterator[None]:
    """On SQLite, when the tick moves at least half of the enrollments, drop the index of
    due enrollments for the bulk UPDATEs and build it again after: each moved row would
    take its old entry out of the index and put a new one in, which costs more than one
    sort of the table (see bench/RESULTS.md). PostgreSQL keeps its index: a
    DROP INDEX would hold the enrollments against every reader until the commit."""
    if connection.dialect.name != "sqlite":
        yield
        return
    moving = connection.execute(
        select(func.count()).select_from(due_table).where(due_table.c.special == false())
    ).scalar_one()
    table = connection.execute(select(func.max(enrollments.c.id))).scalar() or 0
    if moving * 2 < table:
        yield
        return
    _DUE_INDEX.drop(connection)
    yield  # an error rolls the DROP back with the rest of the tick
    _DUE_INDEX.create(connection)


def _queue(
    connection: Connection,
    journey: str,
    step_id: str,
    channel: str,
    values: Mapping[str, Any],
    now: datetime,
    stamp: datetime,
    due_moments: DueMoments,
) -> None:
    """The outbox rows of one group, keyed ``enrollment:step``, one INSERT ... SELECT per
    moment the quiet hours give (one when they do not apply)."""
    due = due_table
    places = [
        (timezone, country)
        for timezone, country in connection.execute(
            select(due.c.timezone, due.c.country).where(_group(values)).distinct()
        )
    ]
    moments = due_moments(channel, places)
    by_moment: dict[datetime, list[Place]] = {}
    for place in places:
        by_moment.setdefault(moments.get(place, now), []).append(place)
    address = contacts.c.email if channel == "email" else contacts.c.phone
    for moment, where in by_moment.items():
        chosen = [_group(values)]
        if len(by_moment) > 1:
            chosen.append(or_(*(_place(timezone, country) for timezone, country in where)))
        rows = (
            select(
                cast(due.c.id, String) + literal(f":{step_id}"),
                due.c.id,
                due.c.contact_id,
                literal(journey),
                literal(step_id),
                literal(channel),
                literal("queued"),
                address,
                literal(stamp, DateTime),
                literal(to_db(moment), DateTime),
            )
            .join_from(due, contacts, contacts.c.id == due.c.contact_id)
            .where(*chosen)
            .order_by(due.c.id)
        )
        connection.execute(insert(outbox).from_select(OUTBOX_COLUMNS, rows))


def _place(timezone: str | None, country: str | None) -> ColumnElement[bool]:
    due = due_table
    return and_(
        due.c.timezone.is_(None) if timezone is None else due.c.timezone == timezone,
        due.c.country.is_(None) if country is None else due.c.country == country,
    )


OUTBOX_COLUMNS = [
    "idempotency_key",
    "enrollment_id",
    "contact_id",
    "journey",
    "step_id",
    "channel",
    "status",
    "to_address",
    "created_at",
    "due_at",
]
