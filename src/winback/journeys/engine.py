"""Enrolment and the tick: the journey engine around the pure state machine.

``enrol`` picks a journey's audience at ``now`` and splits off the holdout; ``tick``
advances every enrollment due at ``now``: it reads the reactions to the last step, asks
:func:`winback.journeys.machine.decide` what comes next, and writes the messages to send
into the outbox, all in one transaction, so a tick that dies half-way leaves nothing
half-done and a tick run twice at the same ``now`` does nothing the second time.

Both work in bulk (one query per kind of fact, grouped updates), because a base of a
million dormant contacts is enrolled and started in one go.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, and_, false, func, insert, or_, select, update
from sqlalchemy.sql import ColumnElement

from winback.clock import from_db, to_db
from winback.compliance.audit import audit_row, record
from winback.compliance.quiet_hours import next_allowed_moment
from winback.compliance.suppression import can_receive, load_suppressions, suppress
from winback.config import Config
from winback.domain import INTERACTIONS, EventType
from winback.journeys.catalog import load_journeys, segment_filter
from winback.journeys.definition import Journey
from winback.journeys.machine import Advance, Exit, Finish, Reactions, decide, next_free_slot
from winback.store.schema import contact_scores, contacts, enrollments, events, outbox
from winback.workspace import Workspace

CHUNK = 5000  # ids per IN (...) list: far under SQLite's and PostgreSQL's limits
# Outbox rows that count against the frequency cap: everything that went or may go out.
COUNTED = ("queued", "sending", "sent", "unknown")
MONTH = timedelta(days=30)
WEEK = timedelta(days=7)


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def in_holdout(contact_id: int, journey: str, share: float) -> bool:
    """Whether a contact falls in a journey's holdout: a hash of the pair, so the same
    contact lands in the same group however often the audience is re-picked."""
    digest = hashlib.blake2b(f"{journey}\0{contact_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


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


def select_audience(
    connection: Connection,
    workspace: Workspace,
    journey_id: int,
    journey: Journey,
    skipped: Counter[str],
) -> Iterator[Candidate]:
    """The journey's audience at this moment, minus the contacts it must not enrol: already
    in an active journey, or through this one before (a journey is one campaign: its
    holdout must stay untouched for the lift), protected as a dormant subscriber, erased
    or let go by an earlier journey, or with no channel of the journey that may reach them
    (no address, no consent, a suppressed address). ``skipped`` counts the reasons."""
    config = workspace.config
    channels = sorted(journey.channels)
    suppressed = load_suppressions(connection, workspace, channels)
    busy = (
        select(enrollments.c.id)
        .where(enrollments.c.contact_id == contacts.c.id, enrollments.c.status == "active")
        .exists()
    )
    before = (
        select(enrollments.c.id)
        .where(enrollments.c.contact_id == contacts.c.id, enrollments.c.journey_id == journey_id)
        .exists()
    )
    query = (
        select(
            contacts.c.id,
            contacts.c.email,
            contacts.c.phone,
            contacts.c.email_status,
            contacts.c.sms_status,
            contacts.c.subscription_active,
            contact_scores.c.dormant_subscriber,
            contact_scores.c.last_email_at,
            contact_scores.c.last_sms_at,
            contact_scores.c.expected_purchases_90d,
            busy.label("busy"),
            before.label("before"),
        )
        .join(contact_scores, contact_scores.c.contact_id == contacts.c.id)
        .where(
            contact_scores.c.stage.in_([stage.value for stage in journey.audience.stages]),
            contacts.c.erased_at.is_(None),
            contacts.c.lost_by_journey_at.is_(None),
        )
        .order_by(contacts.c.id)
    )
    if journey.audience.segment:
        query = query.where(segment_filter(connection, journey.audience.segment))
    for row in connection.execute(query):
        if row.busy:
            skipped["already in a journey"] += 1
            continue
        if row.before:
            skipped["went through this journey before"] += 1
            continue
        if row.dormant_subscriber or (
            config.policy.protect_subscribers and row.subscription_active
        ):
            skipped["protected subscriber"] += 1
            continue
        addresses = {"email": row.email, "sms": row.phone}
        statuses = {"email": row.email_status, "sms": row.sms_status}
        consented = [ch for ch in channels if can_receive(statuses[ch], addresses[ch])]
        reachable = [ch for ch in consented if not suppressed.blocks(ch, addresses[ch])]
        if not reachable:
            skipped["suppressed" if consented else "no consent"] += 1
            continue
        yield Candidate(
            contact_id=row.id,
            reachable=reachable,
            holdout=in_holdout(row.id, journey.name, journey.holdout),
            preferred=_preferred(row.last_email_at, row.last_sms_at),
            expected_purchases_90d=row.expected_purchases_90d,
        )


def enrol(workspace: Workspace, name: str, now: datetime) -> EnrolResult:
    """Enrol a journey's audience as it is at ``now`` (see :func:`select_audience` for
    who is left out), splitting off the holdout, with an audit record per contact."""
    result = EnrolResult(name)
    stamp = to_db(now)
    actor = f"journey:{name}"
    with workspace.engine.begin() as connection:
        journey_id, journey = load_journeys(connection, name)[name]
        rows: list[dict[str, Any]] = []
        audits: list[dict[str, Any]] = []
        for candidate in select_audience(
            connection, workspace, journey_id, journey, result.skipped
        ):
            result.enrolled += 1
            result.holdout += candidate.holdout
            rows.append(
                {
                    "journey_id": journey_id,
                    "contact_id": candidate.contact_id,
                    "holdout": candidate.holdout,
                    "status": "active",
                    "channels": candidate.reachable,
                    "enrolled_at": stamp,
                    "next_due_at": stamp,
                }
            )
            audits.append(
                audit_row(
                    at=now,
                    actor=actor,
                    action="enrol",
                    contact_id=candidate.contact_id,
                    reason="holdout" if candidate.holdout else None,
                    details={"journey": name, "channels": candidate.reachable},
                )
            )
        result.audience = result.enrolled + sum(result.skipped.values())
        for batch in chunks(rows, 50_000):
            connection.execute(insert(enrollments), list(batch))
        for batch in chunks(audits, 50_000):
            record(connection, batch)
    return result


@dataclass
class TickResult:
    due: int = 0
    queued: int = 0
    holdout_steps: int = 0
    postponed: int = 0
    reactivated: int = 0
    exited: int = 0
    completed: int = 0
    sunset: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def human() -> ColumnElement[bool]:
    """Events that prove a person: no click by a link scanner, no flagged machine open
    (unflagged opens are judged against the send time in :func:`_is_machine_open`)."""
    return and_(
        or_(events.c.bot.is_(None), events.c.bot == false()),
        or_(events.c.machine_open.is_(None), events.c.machine_open == false()),
    )


def _is_machine_open(
    occurred: datetime, flagged: bool | None, sent_at: datetime | None, seconds: int
) -> bool:
    """An unflagged open this soon after our message went out is a proxy prefetch."""
    if flagged is not None:
        return flagged
    return sent_at is not None and occurred - sent_at < timedelta(seconds=seconds)


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
    for enrollment_id, kind, occurred, flagged, step_sent_at, sent_at in connection.execute(query):
        if kind == EventType.OPEN and _is_machine_open(occurred, flagged, sent_at, machine_seconds):
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
    """For contacts of due enrollments, when their messages of the last 30 days went out
    (or are due): the frequency cap counts them."""
    due_contacts = select(enrollments.c.contact_id).where(
        enrollments.c.status == "active", enrollments.c.next_due_at <= to_db(now)
    )
    query = select(outbox.c.contact_id, outbox.c.due_at).where(
        outbox.c.status.in_(COUNTED),
        outbox.c.due_at > to_db(now - MONTH),
        outbox.c.due_at <= to_db(now),
        outbox.c.contact_id.in_(due_contacts),
    )
    recent: dict[int, list[datetime]] = defaultdict(list)
    for contact_id, due_at in connection.execute(query):
        recent[contact_id].append(due_at)
    return recent


def _free_slot(config: Config, row: Any, recent: list[datetime], now: datetime) -> datetime | None:
    """When the contact may get the next message: None for now, else a later moment (a
    pause chosen in the preference centre, or the frequency cap)."""
    naive_now = to_db(now)
    if row.paused_until is not None and row.paused_until > naive_now:
        return from_db(row.paused_until)
    if row.frequency == "monthly":
        month = [moment for moment in recent if moment > naive_now - MONTH]
        if month:
            return from_db(max(month) + MONTH)
    slot = next_free_slot(recent, config.frequency.max_per_week, naive_now)
    return from_db(slot)


def tick(workspace: Workspace, now: datetime) -> TickResult:
    """Advance every enrollment due at ``now`` and exit every one whose contact came back.
    Writes the outbox rows (key ``enrollment:step``), updates the enrollments, suppresses
    at sunset, and leaves an audit record for every exit and suppression."""
    config = workspace.config
    result = TickResult()
    stamp = to_db(now)
    with workspace.engine.begin() as connection:
        by_id = {jid: (name, journey) for name, (jid, journey) in load_journeys(connection).items()}
        seen = _reactions(connection, now, config.scoring.machine_open_seconds)
        channels = {ch for _, journey in by_id.values() for ch in journey.channels}
        # Enrolment checked the whole list; since then only newer entries can block.
        first_enrolled = connection.execute(
            select(func.min(enrollments.c.enrolled_at)).where(
                enrollments.c.status == "active", enrollments.c.next_due_at <= stamp
            )
        ).scalar()
        suppressed = load_suppressions(
            connection, workspace, channels, since=from_db(first_enrolled) or now
        )
        recent = _recent_messages(connection, now)
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

        due = connection.execute(
            select(
                enrollments.c.id,
                enrollments.c.journey_id,
                enrollments.c.contact_id,
                enrollments.c.holdout,
                enrollments.c.step_id,
                enrollments.c.channels,
                contacts.c.email,
                contacts.c.phone,
                contacts.c.email_status,
                contacts.c.sms_status,
                contacts.c.timezone,
                contacts.c.country,
                contacts.c.paused_until,
                contacts.c.frequency,
                contacts.c.erased_at,
                contact_scores.c.last_email_at,
                contact_scores.c.last_sms_at,
            )
            .join(contacts, contacts.c.id == enrollments.c.contact_id)
            .outerjoin(contact_scores, contact_scores.c.contact_id == enrollments.c.contact_id)
            .where(enrollments.c.status == "active", enrollments.c.next_due_at <= stamp)
        )
        tz_name = config.workspace.timezone
        region = config.workspace.default_region
        for row in due:
            result.due += 1
            name, journey = by_id[row.journey_id]
            facts = seen.get(row.id)
            reactions = Reactions(
                opened=bool(facts and facts.opened),
                clicked=bool(facts and facts.clicked),
                replied=bool(facts and facts.replied),
                exit_event=_exit_event(journey, facts),
            )
            addresses = {"email": row.email, "sms": row.phone}
            statuses = {"email": row.email_status, "sms": row.sms_status}
            reachable = [
                ch
                for ch in ("email", "sms")
                if ch in (row.channels or ())
                and row.erased_at is None
                and can_receive(statuses[ch], addresses[ch])
                and not suppressed.blocks(ch, addresses[ch])
            ]
            preferred = _preferred(row.last_email_at, row.last_sms_at)
            decision = decide(journey, row.step_id, reactions, reachable, preferred, now)
            if isinstance(decision, Exit):
                writer.exit(row.id, row.contact_id, name, decision)
                result.reactivated += decision.status == "reactivated"
                result.exited += decision.status == "exited"
            elif isinstance(decision, Finish):
                status = writer.finish(row, name, journey, decision, reachable)
                result.sunset += status == "sunset"
                result.completed += status == "completed"
            elif row.holdout:
                writer.advance(row.id, decision)
                result.holdout_steps += 1
            else:
                slot = _free_slot(config, row, recent.get(row.contact_id, []), now)
                if slot is not None:
                    writer.postpone(row.id, slot)
                    result.postponed += 1
                    continue
                due_at = now
                if getattr(config.quiet_hours, decision.channel):
                    zone = _zone(row.timezone, tz_name)
                    due_at = next_allowed_moment(
                        now, zone, row.country or region, config.quiet_hours
                    )
                writer.advance(row.id, decision)
                writer.queue(row, name, decision, addresses[decision.channel], due_at)
                recent[row.contact_id].append(stamp)
                result.queued += 1
        writer.flush()
    return result


def _preferred(last_email: datetime | None, last_sms: datetime | None) -> str | None:
    """The channel the contact last used, for ``best`` steps."""
    if last_email is None and last_sms is None:
        return None
    if last_sms is None or (last_email is not None and last_email >= last_sms):
        return "email"
    return "sms"


class _TickWriter:
    """Collects a tick's writes and applies them grouped: enrollments that move the same
    way in one UPDATE per chunk of ids, outbox rows and audit records in bulk inserts."""

    def __init__(self, connection: Connection, workspace: Workspace, now: datetime) -> None:
        self.connection = connection
        self.workspace = workspace
        self.now = now
        self.stamp = to_db(now)
        self.updates: dict[tuple[tuple[str, Any], ...], list[int]] = defaultdict(list)
        self.messages: list[dict[str, Any]] = []
        self.audits: list[dict[str, Any]] = []
        self.cancel: list[int] = []

    def _set(self, enrollment_id: int, **values: Any) -> None:
        self.updates[tuple(sorted(values.items()))].append(enrollment_id)

    def advance(self, enrollment_id: int, decision: Advance) -> None:
        self._set(
            enrollment_id,
            step_id=decision.step_id,
            step_sent_at=self.stamp,
            next_due_at=to_db(decision.due_at),
        )

    def postpone(self, enrollment_id: int, slot: datetime) -> None:
        self._set(enrollment_id, next_due_at=to_db(slot))

    def queue(self, row: Any, journey: str, decision: Advance, address: str, due: datetime) -> None:
        self.messages.append(
            {
                "idempotency_key": f"{row.id}:{decision.step_id}",
                "enrollment_id": row.id,
                "contact_id": row.contact_id,
                "journey": journey,
                "step_id": decision.step_id,
                "channel": decision.channel,
                "status": "queued",
                "to_address": address,
                "created_at": self.stamp,
                "due_at": to_db(due),
            }
        )

    def exit(self, enrollment_id: int, contact_id: int, journey: str, decision: Exit) -> None:
        self._set(
            enrollment_id,
            status=decision.status,
            outcome=decision.reason,
            ended_at=self.stamp,
            next_due_at=None,
        )
        self.cancel.append(enrollment_id)
        self.audits.append(
            audit_row(
                at=self.now,
                actor=f"journey:{journey}",
                action="reactivated" if decision.status == "reactivated" else "exit",
                contact_id=contact_id,
                reason=decision.reason,
                details={"journey": journey, "enrollment": enrollment_id},
            )
        )

    def finish(
        self, row: Any, name: str, journey: Journey, decision: Finish, reachable: list[str]
    ) -> str:
        """End a journey whose last wait is over. The holdout only completes: it never
        got a message, so it is neither let go nor suppressed."""
        status = "sunset" if decision.after == "sunset" and not row.holdout else "completed"
        outcome = "holdout" if row.holdout else decision.after
        self._set(row.id, status=status, outcome=outcome, ended_at=self.stamp, next_due_at=None)
        actor = f"journey:{name}"
        self.audits.append(
            audit_row(
                at=self.now,
                actor=actor,
                action="complete",
                contact_id=row.contact_id,
                reason=outcome,
                details={"journey": name, "enrollment": row.id},
            )
        )
        if row.holdout or decision.after == "nothing":
            return status
        self.connection.execute(
            update(contacts)
            .where(contacts.c.id == row.contact_id)
            .values(lost_by_journey_at=self.stamp)
        )
        if decision.after == "sunset":
            for channel in sorted(journey.channels):
                suppress(
                    self.connection,
                    self.workspace,
                    channel=channel,
                    reason="sunset",
                    now=self.now,
                    actor=actor,
                    contact_id=row.contact_id,
                )
        return status

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
        for batch in chunks(self.messages, 50_000):
            connection.execute(insert(outbox), list(batch))
        for batch in chunks(self.audits, 50_000):
            record(connection, batch)
