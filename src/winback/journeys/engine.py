"""The tick: the journey engine around the pure state machine.

``tick`` advances every enrollment due at ``now``: it reads the reactions to the last
step, asks :func:`winback.journeys.machine.decide` what comes next, and writes the
messages to send into the outbox, all in one transaction, so a tick that dies half-way
leaves nothing half-done and a tick run twice at the same ``now`` does nothing the second
time. Enrolment is :mod:`winback.journeys.enrolment`.

It works in bulk (one query per kind of fact, grouped updates), because a million
enrollments may start in one go: the due enrollments that share a decision move by
set-based SQL (:mod:`winback.journeys.bulk`); Python walks only through those that need a
look one by one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    Connection,
    DateTime,
    String,
    and_,
    cast,
    func,
    insert,
    literal,
    select,
    true,
    update,
)

from winback.clock import from_db, to_db
from winback.compliance.audit import audit_row, record
from winback.compliance.quiet_hours import next_allowed_moment
from winback.compliance.suppression import (
    load_suppressions,
    suppress_contacts,
)
from winback.config import Config
from winback.journeys.bulk import (
    BULK_PRAGMAS,
    MONTH,
    OUTBOX_COLUMNS,
    PENDING,
    Place,
    advance_groups,
    capped,
    due_table,
    mark_special,
    reachable_channels,
    stage_due,
)
from winback.journeys.catalog import load_journeys
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
from winback.journeys.reactions import exit_event, read_reactions
from winback.store.chunks import chunks
from winback.store.engine import bulk_transaction
from winback.store.schema import contact_scores, contacts, enrollments, outbox
from winback.workspace import Workspace


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
    paused_until: datetime | None = row.paused_until
    if paused_until is not None and paused_until > naive_now:
        return from_db(paused_until)
    if row.frequency == "monthly" and recent:
        # One message per 30 days from all journeys, a message still to go included.
        return from_db(max(recent) + MONTH)
    slot = next_free_slot(recent, config.frequency.max_per_week, naive_now)
    return from_db(slot)


def tick(workspace: Workspace, *, now: datetime, keep_results: bool = True) -> TickResult:
    """Advance every enrollment due at ``now`` and exit every one whose contact came back.
    Writes the outbox rows (key ``enrollment:step``), updates the enrollments, suppresses
    at sunset, and leaves an audit record for every exit and suppression. Then keeps the
    journeys' results for the dashboard, unless ``keep_results`` is false (a dispatch
    follows that will)."""
    from winback.reports.aggregates import refresh_journeys  # reports read what ticks write

    config = workspace.config
    result = TickResult()
    stamp = to_db(now)
    with bulk_transaction(workspace.engine, BULK_PRAGMAS) as connection:
        by_id = {jid: (name, journey) for name, (jid, journey) in load_journeys(connection).items()}
        seen = read_reactions(connection, now, config.scoring.machine_open_seconds)
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
                reason = exit_event(journey, seen[enrollment_id])
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
                    facts.opened, facts.clicked, facts.replied, exit_event(journey, facts)
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
        if keep_results:
            refresh_journeys(connection, config, now)
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
