"""A person's own act ends their journey at once: the survey's "why do we hear less from
you?" is a reply to the journey itself, so whatever it says, the journey stops writing;
a purchase with the journey's coupon code is its conversion (the tick ends enrollments
on reactions and events; these are the paths that do not wait for it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from winback.clock import to_db
from winback.compliance.audit import audit_row, record
from winback.store.schema import enrollments, journeys, outbox


def exit_journeys(
    connection: Connection,
    contact_id: int,
    *,
    outcome: str,
    now: datetime,
    actor: str,
    status: str = "exited",
) -> list[str]:
    """End the contact's active enrollments with ``status`` (``exited``, or
    ``reactivated`` for a conversion) and ``outcome``, cancel their messages still
    queued, and leave an audit record for each; returns the journeys left (enrolment
    keeps one active enrollment per contact, so usually one)."""
    active = connection.execute(
        select(enrollments.c.id, journeys.c.name)
        .join(journeys, journeys.c.id == enrollments.c.journey_id)
        .where(enrollments.c.contact_id == contact_id, enrollments.c.status == "active")
        .order_by(enrollments.c.id)
    ).all()
    if not active:
        return []
    ids = [enrollment_id for enrollment_id, _ in active]
    stamp = to_db(now)
    connection.execute(
        update(enrollments)
        .where(enrollments.c.id.in_(ids))
        .values(status=status, outcome=outcome, ended_at=stamp, next_due_at=None)
    )
    connection.execute(
        update(outbox)
        .where(outbox.c.enrollment_id.in_(ids), outbox.c.status == "queued")
        .values(status="cancelled", error=f"the contact left the journey ({outcome})")
    )
    record(
        connection,
        [
            audit_row(
                at=now,
                actor=actor,
                action="exit",
                contact_id=contact_id,
                reason=outcome,
                details={"journey": name, "enrollment": enrollment_id},
            )
            for enrollment_id, name in active
        ],
    )
    return [name for _, name in active]
