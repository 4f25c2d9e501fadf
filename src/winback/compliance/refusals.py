"""What a refusal does, wherever it comes from (an imported file, the dispatcher, the
tracking server, an ESP webhook): an unsubscribe, a hard bounce or a complaint on a
sending channel sets the contact's status for that channel and suppresses the address at
once, each with an audit record. Every path that records events calls
:func:`apply_refusals` after storing them, so no path can forget a step.

Two more events are refusals in disguise:

- soft bounces: ``bounces.soft_limit`` of them on one channel within
  ``bounces.soft_window`` (counted in the store, up to each one in turn) make the address
  ``bounced``, suppressed with reason ``bounce_soft``;
- an SMS ``reply`` whose text is a stop word (:data:`STOP_WORDS`, compared without case,
  accents, punctuation or surrounding spaces: ``STOP``, ``Stop``, ``stop.``, ``ARRÊT``,
  ``STOP SMS``...) unsubscribes the SMS channel, as French operators' STOP rule requires.

A refusal for an address that is no contact of ours (a webhook's hard bounce for an
address we never imported, a STOP from an unknown phone) is still a refusal: it suppresses
the bare address. A contact import whose status column (or ``--status``) says a contact
refused puts the address on the list too (:func:`suppress_refused`).

Each suppression keeps the time the refusal happened (the event's own time, the status
time the import stored), not the time we learnt it.

Several refusals of one address act in their order, each as if it came alone: the status
follows each one, the suppression keeps the first reason (an address suppressed already
keeps its own). A refusal acts when its event is first stored: :mod:`winback.events`
passes only those, so a webhook delivered twice or a file imported twice records nothing
new, and a contact who subscribed again since is not unsubscribed by an old event.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from winback.clock import from_db
from winback.compliance import audit
from winback.compliance.suppression import (
    ADDRESS_COLUMNS,
    address_hash,
    suppress_contacts,
    suppress_hashes,
)
from winback.domain import REFUSED_STATUSES, SENDING_CHANNELS, ChannelStatus, EventType
from winback.store.chunks import chunks
from winback.store.contacts import channel_statuses, set_channel_status
from winback.store.history import events_slice
from winback.store.schema import contacts
from winback.words import fold
from winback.workspace import Workspace

# What a refusal event says about the address: the status it gets, the suppression reason.
REFUSAL_EVENTS: dict[EventType, tuple[ChannelStatus, str]] = {
    EventType.UNSUBSCRIBE: (ChannelStatus.UNSUBSCRIBED, "unsubscribe"),
    EventType.BOUNCE_HARD: (ChannelStatus.BOUNCED, "bounce_hard"),
    EventType.COMPLAINT: (ChannelStatus.COMPLAINED, "complaint"),
}
# The event types apply_refusals looks at (a soft bounce counts towards the limit, a reply
# may be STOP): a caller that sorts events first passes it at least these.
CONSIDERED = frozenset({*REFUSAL_EVENTS, EventType.BOUNCE_SOFT, EventType.REPLY})
# The texts of an SMS reply that mean "no more SMS", folded (lower case, no accents, no
# spaces or punctuation): the STOP keyword of French operators (also STOP SMS, ARRET,
# ARRÊT), and the English ones carriers honour (UNSUBSCRIBE, CANCEL, END, QUIT, STOPALL).
STOP_WORDS = frozenset(
    {
        "stop",
        "stopsms",
        "stoppub",
        "stopall",
        "arret",
        "arretsms",
        "unsubscribe",
        "desabonner",
        "desabonnement",
        "cancel",
        "end",
        "quit",
    }
)
# What a soft-bounce limit reached does: the same as a hard bounce, another reason.
SOFT_LIMIT = (ChannelStatus.BOUNCED, "bounce_soft")
# The suppression reason of a refused channel status (an import's status column).
STATUS_REASONS = {status: reason for status, reason in REFUSAL_EVENTS.values()}


def is_stop_reply(body: str | None) -> bool:
    """Whether the text of an SMS reply asks to stop.

    >>> is_stop_reply(" Stop. "), is_stop_reply("ARRÊT"), is_stop_reply("stop sms")
    (True, True, True)
    >>> is_stop_reply("stop sending me the old catalogue, I want the new one")
    False
    """
    return body is not None and fold(body) in STOP_WORDS


def _refusal_of(event: Mapping[str, Any]) -> tuple[ChannelStatus, str] | None:
    """What a single event refuses, or None (soft bounces are judged together)."""
    kind = EventType(event["type"])
    if kind in REFUSAL_EVENTS:
        return REFUSAL_EVENTS[kind]
    if kind == EventType.REPLY and event["channel"] == "sms" and is_stop_reply(event.get("body")):
        return REFUSAL_EVENTS[EventType.UNSUBSCRIBE]
    return None


def _soft_limit_reached(
    connection: Connection,
    workspace: Workspace,
    bounced: dict[tuple[str, int], list[tuple[int, datetime]]],
) -> list[tuple[tuple[str, int], int, datetime]]:
    """Where each (channel, contact) pair reaches the soft-bounce limit among its soft
    bounces of this batch (position, time): each as if it came alone, in the batch's
    order, so counting the soft bounces stored in the ``bounces.soft_window`` that ends
    at its own time, those the batch stores further down left out (they have not come
    yet). A file then gives the same result whatever its batches: three soft bounces
    in a week suppress the address even when a fourth, months later, follows."""
    config = workspace.config.bounces
    reached: list[tuple[tuple[str, int], int, datetime]] = []
    for channel in SENDING_CHANNELS:
        mine = {cid: steps for (on, cid), steps in bounced.items() if on == channel}
        for batch in chunks(sorted(mine)):
            soft = events_slice(
                connection,
                contacts=batch,
                types=[EventType.BOUNCE_SOFT],
                since=from_db(min(at for c in batch for _, at in mine[c]) - config.soft_window),
            )
            rows = connection.execute(
                select(soft.c.contact_id, soft.c.occurred_at).where(soft.c.channel == channel)
            )
            stored: dict[int, list[datetime]] = {}
            for contact_id, at in rows:
                stored.setdefault(contact_id, []).append(at)
            for contact_id in batch:
                times = sorted(stored.get(contact_id, []))
                # From the batch's last soft bounce back: those after a step, by time.
                later: list[datetime] = []
                for position, end in reversed(mine[contact_id]):
                    start = end - config.soft_window
                    count = _within(times, start, end) - _within(later, start, end)
                    if count >= config.soft_limit:
                        reached.append(((channel, contact_id), position, end))
                    insort(later, end)
    return reached


def _within(times: list[datetime], start: datetime, end: datetime) -> int:
    """How many of the sorted ``times`` are after ``start`` and at most ``end``."""
    return bisect_right(times, end) - bisect_right(times, start)


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
    ``channel``, ``occurred_at`` in naive UTC and, for replies, ``body``): status change
    and suppression, with audit records. Unsubscribes, hard bounces, complaints and STOP
    replies act at once; soft bounces when the contact's stored soft bounces reach
    ``bounces.soft_limit`` within ``bounces.soft_window`` (the limit reached where the
    soft bounce that reaches it stands in ``events``).
    Returns how many channel statuses changed.

    Several refusals of one address act in the order of ``events``, as if each came
    alone: the status follows each one that changes it (an audit record each), and the
    suppression keeps the first. So a file gives the same result whether it is written
    in one batch or in several.

    For example, with a connection in a transaction (returns 1: one status changed)::

        apply_refusals(connection, workspace, [{"contact_id": 7, "type": "unsubscribe",
            "channel": "email", "occurred_at": to_db(now)}], now=now, actor="web")
    """
    # (channel, contact) -> its refusals as (position in events, refusal, time).
    steps: dict[tuple[str, int], list[tuple[int, tuple[ChannelStatus, str], datetime]]] = {}
    soft: dict[tuple[str, int], list[tuple[int, datetime]]] = {}
    strays: list[Mapping[str, Any]] = []
    for position, event in enumerate(events):
        if event["channel"] not in SENDING_CHANNELS:
            continue
        if event.get("contact_id") is None:
            strays.append(event)
            continue
        pair = (event["channel"], event["contact_id"])
        refusal = _refusal_of(event)
        if refusal is not None:
            steps.setdefault(pair, []).append((position, refusal, event["occurred_at"]))
        elif event["type"] == EventType.BOUNCE_SOFT:
            soft.setdefault(pair, []).append((position, event["occurred_at"]))
    _suppress_strays(connection, workspace, strays, now=now, actor=actor)
    for pair, position, at in _soft_limit_reached(connection, workspace, soft) if soft else ():
        steps.setdefault(pair, []).append((position, SOFT_LIMIT, at))
    if not steps:
        return 0
    for refusals in steps.values():
        refusals.sort(key=lambda step: step[0])
    current = channel_statuses(connection, {contact_id for _, contact_id in steps})
    changed = 0
    for channel in SENDING_CHANNELS:
        changes: list[dict[str, Any]] = []
        first: dict[int, tuple[tuple[ChannelStatus, str], datetime]] = {}
        for (on, contact_id), refusals in sorted(steps.items()):
            if on != channel:
                continue
            first[contact_id] = refusals[0][1:]
            if contact_id not in current:
                continue
            status = current[contact_id][channel]
            for _, (refused, _), at in refusals:
                if refused != status:
                    changes.append({"id": contact_id, "status": refused.value, "at": at})
                    status = refused
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
        for refusal in {refusal for refusal, _ in first.values()}:
            suppress_contacts(
                connection,
                workspace,
                [contact_id for contact_id, (r, _) in first.items() if r == refusal],
                channel=channel,
                reason=refusal[1],
                now=now,
                actor=actor,
                refused_at={
                    contact_id: from_db(at) for contact_id, (r, at) in first.items() if r == refusal
                },
            )
    return changed


def _suppress_strays(
    connection: Connection,
    workspace: Workspace,
    events: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    actor: str,
) -> int:
    """Suppress the bare addresses (``address``, canonical) of refusals that name no
    contact of the base, each with its first refusal; soft bounces of such addresses
    are not counted (nothing stores them). Returns how many addresses were newly
    suppressed."""
    by_reason: dict[tuple[str, str], dict[str, datetime]] = {}
    for event in events:
        refusal = _refusal_of(event)
        if refusal is None or not event.get("address"):
            continue
        digest = address_hash(workspace, event["channel"], event["address"])
        times = by_reason.setdefault((event["channel"], refusal[1]), {})
        times.setdefault(digest, from_db(event["occurred_at"]))
    return sum(
        suppress_hashes(
            connection,
            dict.fromkeys(times),
            channel=channel,
            reason=reason,
            now=now,
            actor=actor,
            refused_at=times,
        )
        for (channel, reason), times in by_reason.items()
    )


def suppress_refused(
    connection: Connection,
    workspace: Workspace,
    addresses: Mapping[str, Iterable[str]],
    *,
    now: datetime,
    actor: str,
    details: Mapping[str, Any] | None = None,
    first: Mapping[tuple[str, str], tuple[str, int, datetime | None]] | None = None,
) -> int:
    """Put on the list the addresses among ``addresses`` (channel -> canonical
    addresses) whose contact's channel status is a refusal, each with the refusal of its
    status (``unsubscribed`` -> ``unsubscribe``...) and the time the status took effect
    (``{channel}_status_at``, which an export's own unsubscribe date sets); and those of
    ``first``, by (channel, address): the first refusal an import saw of each (status,
    contact, time), whoever holds the address now. One select and one insert per chunk:
    how a contact import's refused rows reach the list. Returns how many addresses were
    newly suppressed."""
    found: dict[tuple[str, str], tuple[dict[str, int | None], dict[str, datetime]]] = {}

    def take(channel: str, address: str, refused: str, owner: int, at: datetime | None) -> None:
        reason = STATUS_REASONS[ChannelStatus(refused)]
        owners, times = found.setdefault((channel, reason), ({}, {}))
        digest = address_hash(workspace, channel, address)
        owners[digest] = owner
        times[digest] = from_db(at) if at is not None else now

    first = first or {}
    for (channel, address), (refused, owner, at) in first.items():
        take(channel, address, refused, owner, at)
    for channel, wanted in addresses.items():
        column = ADDRESS_COLUMNS[channel]
        status = contacts.c[f"{channel}_status"]
        for batch in chunks(sorted({a for a in wanted if (channel, a) not in first})):
            rows = connection.execute(
                select(contacts.c.id, column, status, contacts.c[f"{channel}_status_at"]).where(
                    column.in_(batch), status.in_([s.value for s in STATUS_REASONS])
                )
            )
            for contact_id, address, refused, at in rows:
                take(channel, address, refused, contact_id, at)
    return sum(
        suppress_hashes(
            connection,
            owners,
            channel=channel,
            reason=reason,
            now=now,
            actor=actor,
            refused_at=times,
            details=details,
        )
        for (channel, reason), (owners, times) in found.items()
    )


def suppress_imported_refusals(
    connection: Connection,
    workspace: Workspace,
    rows: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    details: Mapping[str, Any],
    first: Mapping[tuple[str, str], tuple[str, int, datetime | None]] | None = None,
) -> int:
    """:func:`suppress_refused` for an import: the addresses among ``rows`` (records or
    stored contacts, each field a value or a column of values) whose channel status is a
    refusal; only those are looked up. Returns how many addresses were newly suppressed."""
    refused: dict[str, list[str]] = {"email": [], "sms": []}
    for fields in rows:
        for channel, address in (("email", "email"), ("sms", "phone")):
            values, statuses = fields[address], fields[f"{channel}_status"]
            if not isinstance(values, list):
                values, statuses = [values], [statuses]
            refused[channel].extend(
                value
                for value, status in zip(values, statuses, strict=True)
                if value and status in REFUSED_STATUSES
            )
    if not (refused["email"] or refused["sms"] or first):
        return 0
    return suppress_refused(
        connection, workspace, refused, now=now, actor="import", details=details, first=first
    )
