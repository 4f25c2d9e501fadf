"""The outbox's queries: the batch of queued messages the dispatcher works on next, the
claim that moves them to ``sending``, and the outbox as the user looks at it (how many
messages in each status, the ones a crash left in doubt: ``winback outbox
[--unknown]``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select, update

from winback.clock import from_db, to_db
from winback.compliance.suppression import suppression_reasons
from winback.journeys.controls import paused_names
from winback.journeys.render import CONTACT_FIELDS
from winback.json_values import json_record
from winback.store.schema import contacts, enrollments, outbox
from winback.workspace import Workspace

# What a claimed message is made of, as the outbox keeps it for a retry.
CONTENT = ("to_address", "subject", "body_text", "body_html", "headers", "message_id")
# A prepared message: its outbox row (with its contact) and the content to send.
Prepared = tuple[Mapping[str, Any], dict[str, Any]]


def due_messages(
    connection: Connection, now: datetime, after_id: int, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` queued rows due at ``now`` (of journeys not paused), after
    ``after_id`` in id order, with their enrollment's status and their contact's
    status, erasure and fields (``contact_<field>``) for the last checks and rendering."""
    query = (
        select(
            outbox,
            enrollments.c.status.label("enrollment_status"),
            contacts.c.erased_at,
            contacts.c.email_status,
            contacts.c.sms_status,
            *(contacts.c[name].label(f"contact_{name}") for name in CONTACT_FIELDS),
        )
        .join(contacts, contacts.c.id == outbox.c.contact_id)
        .outerjoin(enrollments, enrollments.c.id == outbox.c.enrollment_id)
        .where(
            outbox.c.status == "queued",
            outbox.c.due_at <= to_db(now),
            outbox.c.id > after_id,
            or_(outbox.c.journey.is_(None), outbox.c.journey.not_in(paused_names())),
        )
        .order_by(outbox.c.id)
        .limit(limit)
    )
    return [dict(row) for row in connection.execute(query).mappings()]


def suppressed_of(
    connection: Connection, workspace: Workspace, rows: Sequence[Mapping[str, Any]]
) -> set[tuple[str, str]]:
    """The (channel, address) pairs of a batch of rows that are on the suppression list:
    one query per batch, just before the batch goes out."""
    pairs = {
        (row["channel"], address)
        for row in rows
        if (address := row["contact_email"] if row["channel"] == "email" else row["contact_phone"])
    }
    return set(suppression_reasons(connection, workspace, pairs))


def claim(connection: Connection, ready: Sequence[Prepared]) -> list[Prepared]:
    """Move prepared messages to ``sending`` with their content, in the caller's
    transaction (committed before any is handed over). Returns those claimed; the
    others were moved by someone else meanwhile (an exit cancelled them)."""
    if not ready:
        return []
    connection.execute(
        update(outbox)
        .where(outbox.c.id == bindparam("claim_id"), outbox.c.status == "queued")
        .values(status="sending", attempts=outbox.c.attempts + 1),
        [{"claim_id": row["id"], **content} for row, content in ready],
    )
    # The rows this claim moved: no other dispatcher runs (the lock), and none of
    # these was `sending` before, so `sending` now means claimed by this statement.
    moved = set(
        connection.execute(
            select(outbox.c.id).where(
                outbox.c.id.in_([row["id"] for row, _ in ready]),
                outbox.c.status == "sending",
            )
        ).scalars()
    )
    return [(row, content) for row, content in ready if row["id"] in moved]


@dataclass(frozen=True)
class UnknownMessage:
    """A message a crash left undecided: it may or may not have gone out."""

    id: int
    journey: str | None
    step_id: str | None
    channel: str
    to_address: str | None
    message_id: str | None  # what to ask the provider about
    due_at: datetime  # aware UTC
    error: str | None  # what is known

    def as_dict(self) -> dict[str, Any]:
        return json_record(self)


@dataclass(frozen=True)
class OutboxCounts:
    """How many outbox rows are in each status (the statuses that have any)."""

    by_status: dict[str, int]

    def as_dict(self) -> dict[str, int]:
        return dict(self.by_status)


def unknown_messages(workspace: Workspace) -> list[UnknownMessage]:
    """The messages whose fate is unknown (``winback outbox --unknown``), by outbox id:
    check them with the provider before deciding anything."""
    with workspace.engine.connect() as connection:
        rows = connection.execute(
            select(
                outbox.c.id,
                outbox.c.journey,
                outbox.c.step_id,
                outbox.c.channel,
                outbox.c.to_address,
                outbox.c.message_id,
                outbox.c.due_at,
                outbox.c.error,
            )
            .where(outbox.c.status == "unknown")
            .order_by(outbox.c.id)
        ).mappings()
        return [UnknownMessage(**{**row, "due_at": from_db(row["due_at"])}) for row in rows]


def outbox_counts(workspace: Workspace) -> OutboxCounts:
    """How many outbox rows are in each status."""
    with workspace.engine.connect() as connection:
        rows = connection.execute(
            select(outbox.c.status, func.count()).group_by(outbox.c.status)
        ).all()
    return OutboxCounts({status: count for status, count in rows})
