"""The marketer's hand on a running journey: pause it (nothing moves and nothing of it
goes out until it is resumed; waits keep running, so a contact whose step came due during
the pause moves at the first tick after it), resume it, stop it for good (every
enrollment ends, queued messages are cancelled), and take one contact out of it. Each act
leaves an audit record: a journey's history says who stopped it and when.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Select, func, select, update

from winback.compliance.audit import audit_row, record
from winback.contacts import typed_address
from winback.errors import NotFoundError, WinbackError
from winback.journeys.exits import exit_journeys
from winback.store.contacts import find_contact
from winback.store.schema import enrollments, journeys, outbox
from winback.workspace import Workspace

ACTIVE, PAUSED, STOPPED = "active", "paused", "stopped"


class JourneyStateError(WinbackError):
    """A control that does not apply to the journey as it is (resume a running one...)."""

    exit_code = 2


@dataclass(frozen=True)
class ControlResult:
    journey: str
    status: str
    enrollments_ended: int = 0
    messages_cancelled: int = 0


def _status(connection: Connection, name: str) -> tuple[int, str]:
    row = connection.execute(
        select(journeys.c.id, journeys.c.status).where(journeys.c.name == name)
    ).first()
    if row is None:
        raise NotFoundError(f"no journey named {name!r}; see `winback journey list`")
    return int(row.id), str(row.status)


def _set(
    workspace: Workspace, name: str, wanted: str, allowed: tuple[str, ...], now: datetime
) -> ControlResult:
    with workspace.engine.begin() as connection:
        journey_id, status = _status(connection, name)
        if status not in allowed:
            hint = " (a stopped journey stays stopped)" if status == STOPPED else ""
            raise JourneyStateError(f"journey {name!r} is {status}: it cannot be {wanted}{hint}")
        connection.execute(
            update(journeys).where(journeys.c.id == journey_id).values(status=wanted)
        )
        row = audit_row(
            at=now, actor="user", action=f"journey_{wanted}", reason=name,
            details={"journey": name, "was": status},
        )  # fmt: skip
        record(connection, [row])
    return ControlResult(name, wanted)


def pause_journey(workspace: Workspace, name: str, *, now: datetime) -> ControlResult:
    """Hold a running journey: the tick leaves its enrollments, dispatch its messages."""
    return _set(workspace, name, PAUSED, (ACTIVE,), now)


def resume_journey(workspace: Workspace, name: str, *, now: datetime) -> ControlResult:
    """Let a paused journey run again from where each contact was."""
    return _set(workspace, name, ACTIVE, (PAUSED,), now)


def stop_journey(workspace: Workspace, name: str, *, now: datetime) -> ControlResult:
    """End a journey for good: every active enrollment ends (``exited``, outcome
    ``stopped``), its queued messages are cancelled, and it enrols no one again."""
    _set(workspace, name, STOPPED, (ACTIVE, PAUSED), now)
    with workspace.engine.begin() as connection:
        journey_id, _ = _status(connection, name)
        active = select(enrollments.c.id).where(
            enrollments.c.journey_id == journey_id, enrollments.c.status == ACTIVE
        )
        cancelled = connection.execute(
            update(outbox)
            .where(outbox.c.enrollment_id.in_(active), outbox.c.status == "queued")
            .values(status="cancelled", error=f"journey {name} stopped")
        ).rowcount
        contacts = connection.execute(
            select(enrollments.c.contact_id).where(
                enrollments.c.journey_id == journey_id, enrollments.c.status == ACTIVE
            )
        ).scalars().all()  # fmt: skip
        for contact_id in contacts:
            exit_journeys(connection, contact_id, outcome="stopped", now=now, actor="user")
    return ControlResult(name, STOPPED, len(contacts), int(cancelled or 0))


def unenroll(workspace: Workspace, name: str, address: str, *, now: datetime) -> ControlResult:
    """Take the contact with this email or phone out of the journey (``exited``,
    outcome ``unenrolled``), cancelling their queued messages."""
    _, key = typed_address(workspace, address)
    with workspace.engine.begin() as connection:
        journey_id, status = _status(connection, name)
        contact = find_contact(connection, key)
        active = (
            connection.execute(
                select(func.count()).where(
                    enrollments.c.journey_id == journey_id,
                    enrollments.c.contact_id == contact["id"],
                    enrollments.c.status == ACTIVE,
                )
            ).scalar_one()
            if contact is not None
            else 0
        )
        if not active or contact is None:
            raise NotFoundError(f"{key} is not in journey {name!r} (or has left it already)")
        queued = connection.execute(
            select(func.count()).where(
                outbox.c.contact_id == contact["id"],
                outbox.c.journey == name,
                outbox.c.status == "queued",
            )
        ).scalar_one()
        exit_journeys(connection, contact["id"], outcome="unenrolled", now=now, actor="user")
    return ControlResult(name, status, 1, int(queued))


def held_journeys() -> Select[int]:
    """The ids of the paused or stopped journeys, for the tick and enrolment to leave
    alone."""
    return select(journeys.c.id).where(journeys.c.status != ACTIVE)


def paused_names() -> Select[str]:
    """The names of the paused journeys, whose queued messages dispatch holds."""
    return select(journeys.c.name).where(journeys.c.status == PAUSED)
