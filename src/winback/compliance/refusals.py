"""What a refusal does, wherever it comes from (an imported file, the dispatcher, the
tracking server, an ESP webhook): an unsubscribe, a hard bounce or a complaint on a
sending channel sets the contact's status for that channel and suppresses the address at
once, each with an audit record. Every path that records events calls
:func:`apply_refusals` after storing them, so no path can forget a step.

A status that already says so is left alone, and an address suppressed already keeps its
first reason, so applying the same events twice records nothing new.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from winback.compliance import audit
from winback.compliance.suppression import suppress_contacts
from winback.domain import ChannelStatus, EventType
from winback.store.contacts import channel_statuses, set_channel_status
from winback.workspace import Workspace

# What a refusal event says about the address: the status it gets, the suppression reason.
REFUSALS: dict[EventType, tuple[ChannelStatus, str]] = {
    EventType.UNSUBSCRIBE: (ChannelStatus.UNSUBSCRIBED, "unsubscribe"),
    EventType.BOUNCE_HARD: (ChannelStatus.BOUNCED, "bounce_hard"),
    EventType.COMPLAINT: (ChannelStatus.COMPLAINED, "complaint"),
}
SENDING_CHANNELS = ("email", "sms")


def apply_refusals(
    connection: Connection,
    workspace: Workspace,
    events: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    actor: str,
    details: Mapping[str, Any] | None = None,
) -> int:
    """Apply the refusals among ``events`` (rows as stored: ``contact_id``, ``type``,
    ``channel`` and ``occurred_at`` in naive UTC): status change and suppression, with
    audit records.
    Returns how many channel statuses changed.

    >>> apply_refusals(connection, workspace, [{"contact_id": 7, "type": "unsubscribe",
    ...     "channel": "email", "occurred_at": to_db(now)}], now=now, actor="web")
    1
    """
    refusals: dict[tuple[str, int], tuple[EventType, datetime]] = {}
    for event in events:
        kind = EventType(event["type"])
        if kind in REFUSALS and event["channel"] in SENDING_CHANNELS:
            refusals[(event["channel"], event["contact_id"])] = (kind, event["occurred_at"])
    if not refusals:
        return 0
    current = channel_statuses(connection, {contact_id for _, contact_id in refusals})
    changed = 0
    for channel in SENDING_CHANNELS:
        on_channel = {
            contact_id: kind for (on, contact_id), (kind, _) in refusals.items() if on == channel
        }
        changes: list[dict[str, Any]] = [
            {"id": contact_id, "status": REFUSALS[kind][0].value, "at": at}
            for (on, contact_id), (kind, at) in refusals.items()
            if on == channel
            and contact_id in current
            and current[contact_id][channel] != REFUSALS[kind][0]
        ]
        set_channel_status(connection, changes, channel)
        audit.record(
            connection,
            (
                audit.status_change(
                    at=now,
                    actor=actor,
                    contact_id=change["id"],
                    channel=channel,
                    status=change["status"],
                    details={**(details or {}), "event_at": change["at"].isoformat()},
                )
                for change in changes
            ),
        )
        changed += len(changes)
        for kind in set(on_channel.values()):
            suppress_contacts(
                connection,
                workspace,
                [contact_id for contact_id, k in on_channel.items() if k == kind],
                channel=channel,
                reason=REFUSALS[kind][1],
                now=now,
                actor=actor,
            )
    return changed
