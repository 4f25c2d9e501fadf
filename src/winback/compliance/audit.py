"""The audit log: one append-only record per decision about a contact (stage change,
enrolment, exit, send, suppression, purge, erasure). Records name the contact by id and,
once the person is erased, by the keyed hash of their address, never by the address."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Connection, DateTime, Select, insert, literal, null, select

from winback.clock import to_db
from winback.store.schema import audit


def audit_row(
    *,
    at: datetime,
    actor: str,
    action: str,
    contact_id: int | None = None,
    contact_key: str | None = None,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One audit record as a row. ``actor`` says who decided: ``import``, ``score``,
    ``journey:NAME``, ``dispatch``, ``web``, ``user``, ``purge``..."""
    return {
        "at": to_db(at),
        "actor": actor,
        "action": action,
        "contact_id": contact_id,
        "contact_key": contact_key,
        "reason": reason,
        "details": dict(details) if details else None,
    }


def status_change(
    *,
    at: datetime,
    actor: str,
    contact_id: int,
    channel: str,
    status: str,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The audit row of a channel status change (``email unsubscribed``...)."""
    return audit_row(
        at=at,
        actor=actor,
        action="status_change",
        contact_id=contact_id,
        reason=f"{channel} {status}",
        details=details,
    )


def record(connection: Connection, rows: Iterable[Mapping[str, Any]]) -> int:
    """Append audit rows (built with :func:`audit_row`) in the caller's transaction."""
    batch = list(rows)
    if batch:
        connection.execute(insert(audit), batch)
    return len(batch)


def record_selected(
    connection: Connection,
    rows: Select[Any],
    *,
    at: datetime,
    actor: str,
    action: str,
    details: Mapping[str, Any] | None = None,
) -> None:
    """One audit record per row of ``rows`` (a select of ``contact_id`` and ``reason``),
    written by one INSERT ... SELECT: how bulk decisions (a score run's stage changes, a
    journey's enrolment) are logged without a Python loop over the contacts."""
    source = rows.subquery()
    connection.execute(
        insert(audit).from_select(
            ["at", "actor", "action", "contact_id", "reason", "details"],
            select(
                literal(to_db(at), DateTime),
                literal(actor),
                literal(action),
                source.c.contact_id,
                source.c.reason,
                literal(dict(details), JSON) if details else null(),
            ),
        )
    )
