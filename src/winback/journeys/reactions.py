"""The reactions the tick reads: what each active enrollment's contact did since their
last step (an open a person made, a click no scanner made, a purchase, a reply...), and
whether that ends their journey."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, select

from winback.domain import INTERACTIONS, EventType
from winback.journeys.definition import Journey
from winback.scoring import is_machine_open
from winback.scoring.interaction import human_interaction_sql
from winback.store.history import events_slice
from winback.store.schema import enrollments, outbox


@dataclass
class Seen:
    opened: bool = False
    clicked: bool = False
    replied: bool = False
    first: dict[str, datetime] = field(default_factory=dict)


def read_reactions(connection: Connection, now: datetime, machine_seconds: int) -> dict[int, Seen]:
    """What each contact of an active enrollment did since enrolment (first time of each
    interaction type) and since the current step went out (opened, clicked, replied)."""
    sent = outbox.alias("sent_message")
    events = events_slice(connection, types=INTERACTIONS, until=now)
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
            # Flagged machine opens and bot clicks out here; unflagged opens are judged
            # below, with our send time standing for the delivery.
            human_interaction_sql(
                events.c.type, machine_open=events.c.machine_open.is_(True), bot=events.c.bot
            )
            == 1,
        )
    )
    seen: dict[int, Seen] = defaultdict(Seen)
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


def exit_event(journey: Journey, facts: Seen | None) -> str | None:
    if facts is None:
        return None
    hits = [(facts.first[kind], kind) for kind in journey.exit_on if kind in facts.first]
    return min(hits)[1] if hits else None
