"""Enrolment: a journey's audience at ``now``, split into the treated and the holdout
group, written in bulk (one INSERT ... SELECT, its audit records by another), because a
base of a million dormant contacts is enrolled in one go. The holdout draw is one rule
for SQL and Python (:func:`_holdout_draw`)."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from itertools import combinations
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    String,
    and_,
    case,
    cast,
    delete,
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

from winback.clock import to_db
from winback.compliance.audit import record_selected
from winback.compliance.suppression import (
    can_receive_clause,
    load_suppressions,
)
from winback.config import Config
from winback.journeys.bulk import (
    BULK_PRAGMAS,
    channel_list,
    preferred_clause,
)
from winback.journeys.catalog import load_journeys
from winback.journeys.controls import JourneyStateError, held_journeys
from winback.journeys.definition import Journey
from winback.scoring.segments import load_segment, segment_query
from winback.store.chunks import chunks
from winback.store.engine import bulk_transaction
from winback.store.schema import contact_scores, contacts, enrollments
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
    clause: ColumnElement[bool] = _holdout_draw(contact_id, journey, share)
    return clause


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


def enrol(workspace: Workspace, name: str, *, now: datetime) -> EnrolResult:
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
            # sort of the whole audience is costly on a large base.
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
