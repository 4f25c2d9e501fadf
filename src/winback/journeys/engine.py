"""Enrolment and the tick: the journey engine around the pure state machine.

``enrol`` picks a journey's audience at ``now`` and splits off the holdout; ``tick``
advances every enrollment due at ``now``: it reads the reactions to the last step, asks
:func:`winback.journeys.machine.decide` what comes next, and writes the messages to send
into the outbox, all in one transaction, so a tick that dies half-way leaves nothing
half-done and a tick run twice at the same ``now`` does nothing the second time.

Both work in bulk (one query per kind of fact, grouped updates), because a base of a
million dormant contacts is enrolled and started in one go: the tick moves the due
enrollments that share a decision with set-based SQL (:mod:`winback.journeys.bulk`) and
walks in Python only through those that need a look one by one.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache
from itertools import combinations
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    String,
    and_,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.sql import ColumnElement, Subquery

from winback.clock import from_db, to_db
from winback.compliance.audit import audit_row, record, record_selected
from winback.compliance.quiet_hours import next_allowed_moment
from winback.compliance.suppression import (
    can_receive_clause,
    load_suppressions,
    suppress_contacts,
)
from winback.config import Config
from winback.domain import INTERACTIONS, EventType
from winback.journeys.bulk import (
    BULK_PRAGMAS,
    MONTH,
    OUTBOX_COLUMNS,
    PENDING,
    Place,
    advance_groups,
    capped,
    channel_list,
    due_table,
    mark_special,
    preferred_clause,
    reachable_channels,
    stage_due,
)
from winback.journeys.catalog import load_journeys
from winback.journeys.controls import JourneyStateError, held_journeys
from winback.journeys.definition import Journey
from winback.journeys.machine import (
    NO_REACTION,
    Advance,
    Exit,
    Finish,
    Reactions,
    decide,
    next_free_slot,
)
from winback.scoring import is_machine_open
from winback.scoring.segments import load_segment, segment_query
from winback.store.chunks import chunks
from winback.store.engine import bulk_transaction
from winback.store.schema import contact_scores, contacts, enrollments, events, outbox
from winback.workspace import Workspace

# The holdout draw is integer arithmetic modulo this prime, so that SQL computes it in the
# enrolment's INSERT ... SELECT exactly as Python does: every operand stays below 2**31 and
# every product below 2**62, exact in SQLite's and PostgreSQL's 64-bit integers.
_PRIME = 2**31 - 1


@lru_cache(maxsize=64)
def _holdout_keys(journey: str) -> tuple[int, int, int]:
    """Three keys in 1 .. PRIME - 1 drawn from the journey's name: each journey splits
    its audience its own way."""
    digest = hashlib.blake2b(journey.encode(), digest_size=12).digest()
    a, b, c = (int.from_bytes(digest[i : i + 4], "big") % (_PRIME - 1) + 1 for i in (0, 4, 8))
    return a, b, c


def _holdout_draw(contact_id: Any, journey: str, share: float) -> Any:
    """The one holdout rule, written once for both of its spellings: on a Python int it
    computes the answer, on a SQL column it builds the same arithmetic as an expression.

    The hash maps the id through an affine step and a square modulo a prime (keyed by the
    journey), which spreads consecutive ids evenly."""
    a, b, c = _holdout_keys(journey)
    x = (contact_id % _PRIME * a + b) % _PRIME
    return (x * x + c) % _PRIME < int(share * _PRIME)


def in_holdout(contact_id: int, journey: str, share: float) -> bool:
    """Whether a contact falls in a journey's holdout: a hash of the pair, so the same
    contact lands in the same group however often the audience is re-picked (the
    simulator's draw; :func:`holdout_clause` is the enrolment's)."""
    return bool(_holdout_draw(contact_id, journey, share))


def holdout_clause(
    contact_id: ColumnElement[int], journey: str, share: float
) -> ColumnElement[bool]:
    """:func:`in_holdout` as a SQL condition on a contact id column."""
    return _holdout_draw(contact_id, journey, share)


@dataclass
class EnrolResult:
    journey: str
    audience: int = 0
    enrolled: int = 0
    holdout: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A contact the journey may enrol: the channels that can reach them and the facts
    the simulator needs."""

    contact_id: int
    reachable: list[str]
    holdout: bool
    preferred: str | None
    expected_purchases_90d: float | None
    expected_value_12m: float | None


def _audience(
    connection: Connection, config: Config, journey_id: int, journey: Journey, now: datetime
) -> Subquery:
    """The contacts of the journey's stages at this moment, each with ``skip``: why the
    journey must not enrol them (NULL when it may), and one boolean column per channel of
    the journey (``email_ok``, ``sms_ok``) saying whether the contact consented to it.
    Left out without a reason: the erased, those an earlier journey let go, and those
    under the audience's ``min_expected_value`` (or without an expected value)."""
    channels = sorted(journey.channels)
    consent = {channel: can_receive_clause(channel) for channel in channels}
    # Uncorrelated IN (...) rather than EXISTS: the database builds each set once
    # instead of probing the enrollments twice per contact of the audience.
    busy = contacts.c.id.in_(
        select(enrollments.c.contact_id).where(enrollments.c.status == "active")
    )
    # A journey is one campaign: its holdout must stay untouched for the lift.
    before = contacts.c.id.in_(
        select(enrollments.c.contact_id).where(enrollments.c.journey_id == journey_id)
    )
    protected = contact_scores.c.dormant_subscriber == true()
    if config.policy.protect_subscribers:
        protected = or_(protected, contacts.c.subscription_active == true())
    skip = case(
        (busy, "already in a journey"),
        (before, "went through this journey before"),
        (protected, "protected subscriber"),
        (not_(or_(*consent.values())), "no consent"),
        # A pause chosen in the preference centre: not before it ends.
        (contacts.c.paused_until > to_db(now), "paused"),
    )
    query = (
        select(
            contacts.c.id,
            contacts.c.email,
            contacts.c.phone,
            *(condition.label(f"{channel}_ok") for channel, condition in consent.items()),
            skip.label("skip"),
            preferred_clause().label("preferred"),
            contact_scores.c.expected_purchases_90d,
            contact_scores.c.expected_value_12m,
        )
        .join(contact_scores, contact_scores.c.contact_id == contacts.c.id)
        .where(
            contact_scores.c.stage.in_([stage.value for stage in journey.audience.stages]),
            contacts.c.erased_at.is_(None),
            contacts.c.lost_by_journey_at.is_(None),
        )
    )
    if journey.audience.min_expected_value is not None:
        query = query.where(
            contact_scores.c.expected_value_12m >= journey.audience.min_expected_value
        )
    if journey.audience.segment:
        members = segment_query(
            load_segment(connection, journey.audience.segment), now, config.workspace.timezone
        )
        query = query.where(contacts.c.id.in_(members))
    return query.subquery("audience")


def _ranking(journey: Journey, value: Any, contact_id: Any) -> list[Any]:
    """The order in which a journey with a ``limit`` takes its audience: the highest
    expected value first with ``order_by: expected_value`` (no value last), then by id."""
    if journey.audience.order_by == "expected_value":
        return [value.desc().nulls_last(), contact_id]
    return [contact_id]


def _consented(audience: Subquery, channels: list[str]) -> list[Any]:
    return [audience.c[f"{channel}_ok"] for channel in channels]


def _skipped(connection: Connection, audience: Subquery) -> Counter[str]:
    rows = connection.execute(
        select(audience.c.skip, func.count())
        .where(audience.c.skip.is_not(None))
        .group_by(audience.c.skip)
    )
    return Counter(dict(rows.all()))


def _suppressed(
    connection: Connection, workspace: Workspace, audience: Subquery, channels: list[str]
) -> dict[int, list[str]]:
    """The enrollable contacts an address of whom is on the suppression list, with the
    channels left to them. Hashing runs only when the list of those channels has entries."""
    suppressed = load_suppressions(connection, workspace, channels)
    if not suppressed:
        return {}
    left: dict[int, list[str]] = {}
    addresses = {"email": audience.c.email, "sms": audience.c.phone}
    columns = [(addresses[channel], audience.c[f"{channel}_ok"]) for channel in channels]
    rows = connection.execute(
        select(audience.c.id, *(column for pair in columns for column in pair)).where(
            audience.c.skip.is_(None)
        )
    )
    blocks = suppressed.blocks
    # A million rows go through this loop: plain tuples, no per-row dict.
    for contact_id, *values in rows:
        pairs = list(zip(channels, values[::2], values[1::2], strict=True))
        if any(ok and blocks(channel, address) for channel, address, ok in pairs):
            left[contact_id] = [
                channel for channel, address, ok in pairs if ok and not blocks(channel, address)
            ]
    return left


def select_audience(
    connection: Connection,
    workspace: Workspace,
    journey_id: int,
    journey: Journey,
    skipped: Counter[str],
    now: datetime,
) -> Iterator[Candidate]:
    """The contacts :func:`enrol` would enrol at this moment, in id order, with the
    holdout split (for the simulator). ``skipped`` counts those left out, by reason:
    already in an active journey, through this one before, a protected subscriber, no
    consent on any channel of the journey, paused, only suppressed addresses, or past
    the audience's ``limit``."""
    channels = sorted(journey.channels)
    audience = _audience(connection, workspace.config, journey_id, journey, now)
    skipped.update(_skipped(connection, audience))
    left = _suppressed(connection, workspace, audience, channels)
    skipped["suppressed"] += sum(1 for reachable in left.values() if not reachable)
    rows = connection.execute(
        select(audience)
        .where(audience.c.skip.is_(None))
        .order_by(*_ranking(journey, audience.c.expected_value_12m, audience.c.id))
    )
    taken, limit = 0, journey.audience.limit
    for row in rows:
        reachable = left.get(row.id)
        if reachable is None:
            reachable = [channel for channel in channels if row._mapping[f"{channel}_ok"]]
        elif not reachable:
            continue
        if limit is not None and taken >= limit:
            skipped["over the limit"] += 1
            continue
        taken += 1
        yield Candidate(
            contact_id=row.id,
            reachable=reachable,
            holdout=in_holdout(row.id, journey.name, journey.holdout),
            preferred=row.preferred,
            expected_purchases_90d=row.expected_purchases_90d,
            expected_value_12m=row.expected_value_12m,
        )


def _channels_clause(audience: Subquery, channels: list[str]) -> ColumnElement[Any]:
    """The enrollment's ``channels``: the journey's channels the contact consented to,
    as one CASE over every non-empty subset, so the enrolment is one INSERT ... SELECT."""
    oks = _consented(audience, channels)
    whens = []
    for size in range(len(channels), 0, -1):
        for subset in combinations(range(len(channels)), size):
            held = [oks[i] if i in subset else not_(oks[i]) for i in range(len(channels))]
            whens.append((and_(*held), literal([channels[i] for i in subset], JSON)))
    return case(*whens)


def enrol(workspace: Workspace, name: str, now: datetime) -> EnrolResult:
    """Enrol a journey's audience as it is at ``now`` (see :func:`select_audience` for
    who is left out), splitting off the holdout, with an audit record per contact.

    The enrollments, holdout draw included (:func:`holdout_clause`), are written by one
    INSERT ... SELECT and their audit records by another; Python only hashes addresses
    against the suppression list, and only when it has entries for the journey's
    channels."""
    stamp = to_db(now)
    with bulk_transaction(workspace.engine, BULK_PRAGMAS) as connection:
        journey_id, journey = load_journeys(connection, name)[name]
        if journey_id in connection.execute(held_journeys()).scalars().all():
            raise JourneyStateError(
                f"journey {name!r} is paused or stopped: resume it first "
                "(`winback journey resume`), a stopped journey enrols no one"
            )
        channels = sorted(journey.channels)
        audience = _audience(connection, workspace.config, journey_id, journey, now)
        result = EnrolResult(name, skipped=_skipped(connection, audience))
        last_id = connection.execute(select(func.max(enrollments.c.id))).scalar() or 0
        enrollable = (
            select(
                literal(journey_id),
                audience.c.id,
                holdout_clause(audience.c.id, name, journey.holdout),
                literal("active"),
                _channels_clause(audience, channels),
                literal(stamp, DateTime),
                literal(stamp, DateTime),
            )
            # No ORDER BY: the stage index already yields contacts in id order, and a
            # sort of the whole audience costs a second per million.
            .where(audience.c.skip.is_(None))
        )
        connection.execute(
            insert(enrollments).from_select(
                [
                    "journey_id",
                    "contact_id",
                    "holdout",
                    "status",
                    "channels",
                    "enrolled_at",
                    "next_due_at",
                ],
                enrollable,
            )
        )
        new = and_(enrollments.c.id > last_id, enrollments.c.journey_id == journey_id)
        result.skipped["suppressed"] += _drop_suppressed(connection, workspace, journey, new)
        if journey.audience.limit is not None:
            dropped = _over_the_limit(connection, new, journey)
            result.skipped["over the limit"] += len(dropped)
        record_selected(
            connection,
            select(
                enrollments.c.contact_id,
                case((enrollments.c.holdout == true(), "holdout")).label("reason"),
            ).where(new),
            at=now,
            actor=f"journey:{name}",
            action="enrol",
            details={"journey": name},
        )
        enrolled, held = connection.execute(
            select(func.count(), func.count().filter(enrollments.c.holdout == true())).where(new)
        ).one()
    result.enrolled, result.holdout = enrolled, held
    result.skipped = +result.skipped  # only the reasons that left someone out
    result.audience = result.enrolled + sum(result.skipped.values())
    return result


def _drop_suppressed(
    connection: Connection, workspace: Workspace, journey: Journey, new: ColumnElement[bool]
) -> int:
    """Take the channels whose address is on the suppression list off the new
    enrollments, and drop those left with none; returns how many were dropped."""
    suppressed = load_suppressions(connection, workspace, journey.channels)
    if not suppressed:
        return 0
    rows = connection.execute(
        select(
            enrollments.c.id,
            contacts.c.email,
            contacts.c.phone,
            cast(enrollments.c.channels, String),
        )
        .join_from(enrollments, contacts, contacts.c.id == enrollments.c.contact_id)
        .where(new)
    )
    blocks = suppressed.blocks
    # Suppressed addresses: by the channels left (by enrollment id: the primary key,
    # where a list of contact ids would scan the journey).
    by_channels: dict[tuple[str, ...], list[int]] = defaultdict(list)
    # A million rows go through this loop: plain tuples, nothing done twice.
    for enrollment_id, email, phone, consented in rows:
        allowed = channel_list(consented)
        email_blocked = "email" in allowed and blocks("email", email)
        sms_blocked = "sms" in allowed and blocks("sms", phone)
        if email_blocked or sms_blocked:
            left = {"email": email_blocked, "sms": sms_blocked}
            kept = tuple(ch for ch, blocked in left.items() if ch in allowed and not blocked)
            by_channels[kept].append(enrollment_id)
    for kept, ids in by_channels.items():
        for batch in chunks(ids):
            chosen = enrollments.c.id.in_(batch)
            if kept:
                connection.execute(update(enrollments).where(chosen).values(channels=list(kept)))
            else:
                connection.execute(delete(enrollments).where(chosen))
    return len(by_channels.get((), ()))


def _over_the_limit(
    connection: Connection, new: ColumnElement[bool], journey: Journey
) -> list[int]:
    """Drop the new enrollments past the audience's ``limit``, in :func:`_ranking`
    order; the enrollments dropped."""
    ranked = (
        select(enrollments.c.id)
        .outerjoin(contact_scores, contact_scores.c.contact_id == enrollments.c.contact_id)
        .where(new)
        .order_by(*_ranking(journey, contact_scores.c.expected_value_12m, enrollments.c.contact_id))
        .offset(journey.audience.limit)
    )
    dropped = list(connection.execute(ranked).scalars())
    for batch in chunks(dropped):
        connection.execute(delete(enrollments).where(enrollments.c.id.in_(batch)))
    return dropped


@dataclass
class TickResult:
    due: int = 0
    queued: int = 0
    holdout_steps: int = 0
    # Steps the contact cannot receive: nothing sent, their wait runs.
    passed_over: int = 0
    postponed: int = 0
    # Held because the previous step's message has not gone out yet (quiet hours, retry).
    waiting: int = 0
    reactivated: int = 0
    exited: int = 0
    completed: int = 0
    sunset: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def human() -> ColumnElement[bool]:
    """Events that prove a person: no click by a link scanner, no flagged machine open
    (unflagged opens are judged by :func:`winback.scoring.is_machine_open`)."""
    return and_(
        or_(events.c.bot.is_(None), events.c.bot == false()),
        or_(events.c.machine_open.is_(None), events.c.machine_open == false()),
    )


@dataclass
class _Seen:
    opened: bool = False
    clicked: bool = False
    replied: bool = False
    first: dict[str, datetime] = field(default_factory=dict)


def _reactions(connection: Connection, now: datetime, machine_seconds: int) -> dict[int, _Seen]:
    """What each contact of an active enrollment did since enrolment (first time of each
    interaction type) and since the current step went out (opened, clicked, replied)."""
    sent = outbox.alias("sent_message")
    query = (
        select(
            enrollments.c.id,
            events.c.type,
            events.c.occurred_at,
            events.c.machine_open,
            events.c.user_agent,
            enrollments.c.step_sent_at,
            sent.c.sent_at,
        )
        .select_from(enrollments)
        .join(events, events.c.contact_id == enrollments.c.contact_id)
        .outerjoin(sent, sent.c.id == events.c.outbox_id)
        .where(
            enrollments.c.status == "active",
            events.c.occurred_at >= enrollments.c.enrolled_at,
            events.c.occurred_at <= to_db(now),
            events.c.type.in_([kind.value for kind in INTERACTIONS]),
            human(),
        )
    )
    seen: dict[int, _Seen] = defaultdict(_Seen)
    rows = connection.execute(query)
    for enrollment_id, kind, occurred, flagged, agent, step_sent_at, sent_at in rows:
        # Our send time stands for the delivery: the message's own delivery event may
        # not have come back yet.
        if kind == EventType.OPEN and is_machine_open(
            flag=flagged,
            user_agent=agent,
            opened_at=occurred,
            delivered_at=sent_at,
            machine_open_seconds=machine_seconds,
        ):
            continue
        facts = seen[enrollment_id]
        if kind not in facts.first or occurred < facts.first[kind]:
            facts.first[kind] = occurred
        if step_sent_at is not None and occurred >= step_sent_at:
            facts.opened |= kind == EventType.OPEN
            facts.clicked |= kind == EventType.CLICK
            facts.replied |= kind == EventType.REPLY
    return seen


def _exit_event(journey: Journey, facts: _Seen | None) -> str | None:
    if facts is None:
        return None
    hits = [(facts.first[kind], kind) for kind in journey.exit_on if kind in facts.first]
    return min(hits)[1] if hits else None


@lru_cache(maxsize=512)
def _zone(name: str | None, fallback: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or fallback)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(fallback)


def _recent_messages(connection: Connection, now: datetime) -> dict[int, list[datetime]]:
    """For contacts of the due enrollments left to the row path, when their messages of
    the last 30 days went out or are due, later ones included (a message held by the
    quiet hours, a retry): the frequency cap counts them."""
    due_contacts = select(due_table.c.contact_id).where(due_table.c.special == true())
    query = select(outbox.c.contact_id, outbox.c.due_at).where(
        capped(now), outbox.c.contact_id.in_(due_contacts)
    )
    recent: dict[int, list[datetime]] = defaultdict(list)
    for contact_id, due_at in connection.execute(query):
        recent[contact_id].append(due_at)
    return recent


def _free_slot(
    config: Config, row: Any, recent: list[datetime] | None, now: datetime
) -> datetime | None:
    """When the contact may get the next message: None for now, else a later moment (a
    pause chosen in the preference centre, or the frequency cap)."""
    if not recent and row.paused_until is None:
        return None  # the usual case, and the cheap one
    recent = recent or []
    naive_now = to_db(now)
    if row.paused_until is not None and row.paused_until > naive_now:
        return from_db(row.paused_until)
    if row.frequency == "monthly" and recent:
        # One message per 30 days from all journeys, a message still to go included.
        return from_db(max(recent) + MONTH)
    slot = next_free_slot(recent, config.frequency.max_per_week, naive_now)
    return from_db(slot)


def tick(workspace: Workspace, now: datetime) -> TickResult:
    """Advance every enrollment due at ``now`` and exit every one whose contact came back.
    Writes the outbox rows (key ``enrollment:step``), updates the enrollments, suppresses
    at sunset, and leaves an audit record for every exit and suppression."""
    config = workspace.config
    result = TickResult()
    stamp = to_db(now)
    with bulk_transaction(workspace.engine, BULK_PRAGMAS) as connection:
        by_id = {jid: (name, journey) for name, (jid, journey) in load_journeys(connection).items()}
        seen = _reactions(connection, now, config.scoring.machine_open_seconds)
        channels = {ch for _, journey in by_id.values() for ch in journey.channels}
        stage_due(connection, by_id, stamp)
        # Enrolment checked the whole list; since then only newer entries can block.
        first_enrolled = connection.execute(select(func.min(due_table.c.enrolled_at))).scalar()
        suppressed = load_suppressions(
            connection, workspace, channels, since=from_db(first_enrolled) or now
        )
        writer = _TickWriter(connection, workspace, now)

        # Exits on a reaction happen at once, due or not.
        for batch in chunks(sorted(seen)):
            waiting = connection.execute(
                select(enrollments.c.id, enrollments.c.journey_id, enrollments.c.contact_id).where(
                    enrollments.c.id.in_(batch),
                    enrollments.c.status == "active",
                    enrollments.c.next_due_at > stamp,
                )
            )
            for enrollment_id, journey_id, contact_id in waiting:
                name, journey = by_id[journey_id]
                reason = _exit_event(journey, seen[enrollment_id])
                if reason is not None:
                    writer.exit(enrollment_id, contact_id, name, Exit("reactivated", reason))
                    result.reactivated += 1

        mark_special(
            connection,
            reacted=sorted(seen),
            now=now,
            suppressed=suppressed,
        )
        quiet: dict[Place, datetime] = {}

        def due_moments(channel: str, places: list[Place]) -> dict[Place, datetime]:
            """When a message on ``channel`` may go out, per (time zone, country)."""
            if not getattr(config.quiet_hours, channel):
                return {}
            for place in places:
                if place not in quiet:
                    timezone, country = place
                    zone = _zone(timezone, config.workspace.timezone)
                    region = country or config.workspace.default_region
                    quiet[place] = next_allowed_moment(now, zone, region, config.quiet_hours)
            return {place: quiet[place] for place in places}

        recent = _recent_messages(connection, now)  # before the bulk path adds its own
        bulk = advance_groups(connection, by_id, now=now, stamp=stamp, due_moments=due_moments)
        result.queued, result.holdout_steps = bulk.queued, bulk.holdout_steps
        result.passed_over = bulk.passed_over
        result.due = bulk.queued + bulk.holdout_steps + bulk.passed_over

        # The rest, one by one: reactions, pauses, the frequency cap, exits, ends, a
        # message still to go. Their inputs of decide() are those tick_due holds for the
        # bulk path.
        previous = outbox.alias("previous_message")
        due = connection.execute(
            select(
                due_table,
                contacts.c.email,
                contacts.c.phone,
                contacts.c.paused_until,
                contacts.c.frequency,
                contact_scores.c.expected_value_12m,
                previous.c.due_at.label("previous_due_at"),
            )
            .join(contacts, contacts.c.id == due_table.c.contact_id)
            .outerjoin(contact_scores, contact_scores.c.contact_id == due_table.c.contact_id)
            .outerjoin(
                previous,
                and_(
                    previous.c.idempotency_key
                    == cast(due_table.c.id, String) + literal(":") + due_table.c.step_id,
                    previous.c.status.in_(PENDING),
                ),
            )
            .where(due_table.c.special == true())
        )
        decisions: dict[tuple[Any, ...], Any] = {}
        for row in due:
            result.due += 1
            name, journey = by_id[row.journey_id]
            facts = seen.get(row.id)
            reactions = NO_REACTION
            if facts is not None:
                reactions = Reactions(
                    facts.opened, facts.clicked, facts.replied, _exit_event(journey, facts)
                )
            addresses = {"email": row.email, "sms": row.phone}
            reachable = tuple(
                channel
                for channel in reachable_channels(row.channels, row.email_ok, row.sms_ok)
                if not suppressed.blocks(channel, addresses[channel])
            )
            spare = bool(row.spared)
            # decide() is pure and most contacts share its inputs: ask once per kind.
            key = (
                row.journey_id,
                row.step_id,
                row.step_channel,
                reactions,
                reachable,
                row.preferred,
                spare,
            )
            if key not in decisions:
                decisions[key] = decide(
                    journey,
                    row.step_id,
                    reactions,
                    reachable,
                    row.preferred,
                    now,
                    spare,
                    row.step_channel,
                )
            decision = decisions[key]
            if row.previous_due_at is not None and not isinstance(decision, Exit):
                # The last message has not gone out (held by the quiet hours, a retry):
                # its wait, and the reaction it may bring, start when it goes.
                wait = journey.step(row.step_id).wait
                writer.postpone(row.id, max(from_db(row.previous_due_at), now) + wait)
                result.waiting += 1
                continue
            if isinstance(decision, Advance) and journey.is_spare(decision.step_id):
                writer.spare(row, name, journey)
            if isinstance(decision, Exit):
                writer.exit(row.id, row.contact_id, name, decision)
                result.reactivated += decision.status == "reactivated"
                result.exited += decision.status == "exited"
            elif isinstance(decision, Finish):
                status = writer.finish(row, name, journey, decision)
                result.sunset += status == "sunset"
                result.completed += status == "completed"
            elif row.holdout:
                writer.advance(row.id, decision)
                result.holdout_steps += 1
            elif (channel := decision.channel) is None:
                writer.advance(row.id, decision)
                result.passed_over += 1
            else:
                slot = _free_slot(config, row, recent.get(row.contact_id), now)
                if slot is not None:
                    writer.postpone(row.id, slot)
                    result.postponed += 1
                    continue
                place = (row.timezone, row.country)
                due_at = due_moments(channel, [place]).get(place, now)
                writer.advance(row.id, decision)
                writer.queue(row.id, name, decision.step_id, channel, due_at)
                recent[row.contact_id].append(to_db(due_at))
                result.queued += 1
        writer.flush()
        due_table.drop(connection)
    return result


def spared(journey: Journey, value: float | None) -> bool:
    """Whether the journey's sunset spares a contact of this expected value: the
    simulator's test; the tick computes the same in SQL (``tick_due.spared``)."""
    sunset = journey.sunset
    return sunset is not None and value is not None and value > sunset.spare_above_value


class _TickWriter:
    """Collects a tick's writes and applies them grouped: enrollments that move the same
    way in one UPDATE per chunk of ids, the outbox rows of one step and moment in one
    INSERT ... SELECT per chunk, lost contacts and sunset suppressions per chunk, audit
    records in bulk inserts."""

    def __init__(self, connection: Connection, workspace: Workspace, now: datetime) -> None:
        self.connection = connection
        self.workspace = workspace
        self.now = now
        self.stamp = to_db(now)
        self.updates: dict[tuple[tuple[str, Any], ...], list[int]] = defaultdict(list)
        self.advances: dict[Advance, tuple[tuple[str, Any], ...]] = {}
        # (journey, step, channel, due) -> enrollment ids
        self.messages: dict[tuple[str, str, str, datetime], list[int]] = defaultdict(list)
        self.audits: list[dict[str, Any]] = []
        self.cancel: list[int] = []
        self.lost: list[int] = []
        # (journey name, channels) -> contacts to suppress at sunset
        self.sunset: dict[tuple[str, frozenset[str]], list[int]] = defaultdict(list)

    def _audit(
        self, journey: str, enrollment_id: int, contact_id: int, action: str, reason: str
    ) -> None:
        """An audit record of the journey about one of its enrollments."""
        self.audits.append(
            audit_row(
                at=self.now,
                actor=f"journey:{journey}",
                action=action,
                contact_id=contact_id,
                reason=reason,
                details={"journey": journey, "enrollment": enrollment_id},
            )
        )

    def _set(self, enrollment_id: int, **values: Any) -> None:
        self.updates[tuple(sorted(values.items()))].append(enrollment_id)

    def advance(self, enrollment_id: int, decision: Advance) -> None:
        key = self.advances.get(decision)
        if key is None:  # one per decision: many enrollments take the same
            values = {
                "step_id": decision.step_id,
                "step_channel": decision.channel,
                "step_sent_at": self.stamp,
                "next_due_at": to_db(decision.due_at),
            }
            key = self.advances[decision] = tuple(sorted(values.items()))
        self.updates[key].append(enrollment_id)

    def postpone(self, enrollment_id: int, slot: datetime) -> None:
        self._set(enrollment_id, next_due_at=to_db(slot))

    def queue(
        self, enrollment_id: int, journey: str, step_id: str, channel: str, due: datetime
    ) -> None:
        self.messages[(journey, step_id, channel, due)].append(enrollment_id)

    def exit(self, enrollment_id: int, contact_id: int, journey: str, decision: Exit) -> None:
        self._set(
            enrollment_id,
            status=decision.status,
            outcome=decision.reason,
            ended_at=self.stamp,
            next_due_at=None,
        )
        self.cancel.append(enrollment_id)
        action = "reactivated" if decision.status == "reactivated" else "exit"
        self._audit(journey, enrollment_id, contact_id, action, decision.reason)

    def spare(self, row: Any, name: str, journey: Journey) -> None:
        """Record why a contact gets the spare step instead of the end of the journey."""
        assert journey.sunset is not None
        reason = (
            f"expected value {row.expected_value_12m:.2f} above "
            f"{journey.sunset.spare_above_value:g}"
        )
        self._audit(name, row.id, row.contact_id, "spare", reason)

    def finish(self, row: Any, name: str, journey: Journey, decision: Finish) -> str:
        """End a journey whose last wait is over (see :meth:`Finish.status`)."""
        status = decision.status(row.holdout)
        outcome = "holdout" if row.holdout else decision.after
        self._set(row.id, status=status, outcome=outcome, ended_at=self.stamp, next_due_at=None)
        self._audit(name, row.id, row.contact_id, "complete", outcome)
        if row.holdout or decision.after == "nothing":
            return status
        self.lost.append(row.contact_id)
        if decision.after == "sunset":
            self.sunset[(name, journey.channels)].append(row.contact_id)
        return status

    def _outbox_rows(
        self, journey: str, step_id: str, channel: str, due: datetime, batch: Sequence[int]
    ) -> Any:
        """The outbox rows of a chunk of enrollments, keyed ``enrollment:step``."""
        address = contacts.c.email if channel == "email" else contacts.c.phone
        return (
            select(
                cast(enrollments.c.id, String) + literal(f":{step_id}"),
                enrollments.c.id,
                enrollments.c.contact_id,
                literal(journey),
                literal(step_id),
                literal(channel),
                literal("queued"),
                address,
                literal(self.stamp, DateTime),
                literal(to_db(due), DateTime),
            )
            .join_from(enrollments, contacts, contacts.c.id == enrollments.c.contact_id)
            .where(enrollments.c.id.in_(batch))
            .order_by(enrollments.c.id)
        )

    def flush(self) -> None:
        connection = self.connection
        for values, ids in self.updates.items():
            for batch in chunks(ids):
                connection.execute(
                    update(enrollments).where(enrollments.c.id.in_(batch)).values(dict(values))
                )
        for batch in chunks(self.cancel):
            connection.execute(
                update(outbox)
                .where(outbox.c.enrollment_id.in_(batch), outbox.c.status == "queued")
                .values(status="cancelled", error="the contact left the journey")
            )
        for (journey, step_id, channel, due), ids in self.messages.items():
            for batch in chunks(ids):
                connection.execute(
                    insert(outbox).from_select(
                        OUTBOX_COLUMNS, self._outbox_rows(journey, step_id, channel, due, batch)
                    )
                )
        for batch in chunks(self.lost):
            connection.execute(
                update(contacts)
                .where(contacts.c.id.in_(batch))
                .values(lost_by_journey_at=self.stamp)
            )
        for (name, channels), contact_ids in self.sunset.items():
            for channel in sorted(channels):
                suppress_contacts(
                    connection,
                    self.workspace,
                    contact_ids,
                    channel=channel,
                    reason="sunset",
                    now=self.now,
                    actor=f"journey:{name}",
                )
        for audits in chunks(self.audits, 50_000):
            record(connection, audits)
