"""The user's own hand on the suppression list: ``winback suppress add|remove|list|import|
export``.

Adding an address with a refusal reason (``unsubscribe``, ``bounce_hard``,
``complaint``) for a contact of the base goes through :func:`apply_refusals`, like any
other refusal: the channel status changes too. Removing an entry is a decision of the
user, recorded in the audit log with their note; it does not subscribe anyone again (only
the person can turn a no into a yes).

The export is a CSV of ``channel,address,hash,reason,suppressed_at,refused_at``: the
address when a contact of the base still has it, else only the hash (the person was
erased, or the address was suppressed without ever being a contact). The import of the same
columns, and of the ESPs' suppression and unsubscribed exports, reads the file in
:mod:`winback.ingest.suppressions` and puts its entries on the list here
(:func:`add_entries`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import Connection, delete, select

from winback.clock import from_db, to_db
from winback.compliance.audit import audit_row, record
from winback.compliance.refusals import REFUSAL_EVENTS, apply_refusals
from winback.compliance.suppression import (
    REASONS,
    address_hash,
    address_hashes,
    suppress_hashes,
)
from winback.contacts import typed_address
from winback.errors import NotFoundError
from winback.json_values import json_record
from winback.safe_output import csv_writer
from winback.store.chunks import chunks
from winback.store.contacts import contacts_by_address, find_contact
from winback.store.schema import contacts, suppressions
from winback.workspace import Workspace

EXPORT_COLUMNS = ("channel", "address", "hash", "reason", "suppressed_at", "refused_at")
# The refusal event a reason stands for, when it stands for one.
_EVENT_OF_REASON = {reason: event for event, (_, reason) in REFUSAL_EVENTS.items()}


def parse_address(workspace: Workspace, text: str, channel: str | None) -> tuple[str, str]:
    """(channel, normalised address) of what the user typed; the channel follows the
    address (an email is email, anything else a phone) unless given."""
    found, address = typed_address(workspace, text)
    if channel is not None and channel != found:
        raise NotFoundError(f"{address} is not an address of the {channel} channel")
    return found, address


def add_suppression(
    workspace: Workspace,
    address: str,
    *,
    reason: str,
    now: datetime,
    channel: str | None = None,
) -> bool:
    """Suppress one address (an email, or a phone for SMS). Returns False when it was
    suppressed already (its first reason stays)."""
    if reason not in REASONS:
        raise NotFoundError(f"unknown reason {reason!r}: use one of {', '.join(sorted(REASONS))}")
    channel, key = parse_address(workspace, address, channel)
    entry = SuppressionEntry(channel, address_hash(workspace, channel, key), reason, key)
    with workspace.engine.begin() as connection:
        return add_entries(connection, workspace, [entry], now) == 1


def _entry(
    connection: Connection, workspace: Workspace, channel: str, address: str
) -> dict[str, Any] | None:
    row = (
        connection.execute(
            select(suppressions).where(
                suppressions.c.channel == channel,
                suppressions.c.address_hash.in_(address_hashes(workspace, channel, address)),
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def remove_suppression(
    workspace: Workspace,
    address: str,
    *,
    note: str,
    now: datetime,
    channel: str | None = None,
) -> str:
    """Take an address off the suppression list, with an ``unsuppress`` audit record
    carrying the user's ``note``. Returns the reason it was suppressed for."""
    channel, key = parse_address(workspace, address, channel)
    with workspace.engine.begin() as connection:
        reason = lift_suppression(connection, workspace, channel, key, note=note, now=now)
    if reason is None:
        raise NotFoundError(f"{key} is not on the {channel} suppression list")
    return reason


def lift_suppression(
    connection: Connection,
    workspace: Workspace,
    channel: str,
    address: str,
    *,
    note: str,
    now: datetime,
    actor: str = "user",
    reasons: frozenset[str] | None = None,
) -> str | None:
    """Take a normalised ``address`` off ``channel``'s list when it is there (for one of
    ``reasons``, if given), with an ``unsuppress`` audit record; the reason it was
    suppressed for, or None when nothing was lifted."""
    entry = _entry(connection, workspace, channel, address)
    if entry is None or (reasons is not None and entry["reason"] not in reasons):
        return None
    # Both spellings go (an IDNA domain may be listed under its older Unicode one).
    connection.execute(
        delete(suppressions).where(
            suppressions.c.channel == channel,
            suppressions.c.address_hash.in_(address_hashes(workspace, channel, address)),
        )
    )
    contact = find_contact(connection, address)
    record(
        connection,
        [
            audit_row(
                at=now,
                actor=actor,
                action="unsuppress",
                contact_id=contact["id"] if contact else None,
                contact_key=entry["address_hash"],
                reason=note,
                details={"channel": channel, "suppressed_for": entry["reason"]},
            )
        ],
    )
    return str(entry["reason"])


def _known_addresses(connection: Connection, workspace: Workspace) -> dict[tuple[str, str], str]:
    """(channel, hash) -> address for every address of a contact still in the base."""
    known: dict[tuple[str, str], str] = {}
    rows = connection.execute(
        select(contacts.c.email, contacts.c.phone).where(contacts.c.erased_at.is_(None))
    )
    for email, phone in rows:
        for channel, address in (("email", email), ("sms", phone)):
            if address:
                known.update(
                    ((channel, digest), address)
                    for digest in address_hashes(workspace, channel, address)
                )
    return known


@dataclass(frozen=True)
class ListedSuppression:
    """An entry of the suppression list as ``winback suppress list`` shows it."""

    channel: str
    address: str | None  # when a contact of the base still has it
    hash: str
    reason: str  # the first reason
    suppressed_at: datetime  # aware UTC: when it reached the list
    refused_at: datetime  # when the person refused (suppressed_at when nothing says)

    def as_dict(self) -> dict[str, Any]:
        return json_record(self)


def list_suppressions(
    workspace: Workspace, *, channel: str | None = None, reason: str | None = None
) -> Iterator[ListedSuppression]:
    """The suppression list, oldest first, each entry with its address when a contact of
    the base still has it (``address`` None otherwise) and its hash."""
    query = select(suppressions).order_by(suppressions.c.id)
    if channel is not None:
        query = query.where(suppressions.c.channel == channel)
    if reason is not None:
        query = query.where(suppressions.c.reason == reason)
    with workspace.engine.connect() as connection:
        known = _known_addresses(connection, workspace)
        for row in connection.execute(query).mappings():
            yield ListedSuppression(
                channel=row["channel"],
                address=known.get((row["channel"], row["address_hash"])),
                hash=row["address_hash"],
                reason=row["reason"],
                suppressed_at=from_db(row["created_at"]),
                refused_at=from_db(row["refused_at"] or row["created_at"]),
            )


def export_suppressions(workspace: Workspace, out: TextIO, **filters: str | None) -> int:
    """Write the list as CSV (:data:`EXPORT_COLUMNS`): the address of a contact still
    present, the hash alone for the others. Returns how many entries were written."""
    writer = csv_writer(out)
    writer.writerow(EXPORT_COLUMNS)
    written = 0
    for entry in list_suppressions(workspace, **filters):
        writer.writerow(
            [
                entry.channel,
                entry.address or "",
                "" if entry.address else entry.hash,
                entry.reason,
                entry.suppressed_at.isoformat(),
                entry.refused_at.isoformat(),
            ]
        )
        written += 1
    return written


@dataclass(frozen=True)
class SuppressionEntry:
    """One address to put on the list: its channel, hash and reason, and its normalised
    form (None for a line that gave only the hash)."""

    channel: str
    digest: str
    reason: str
    address: str | None = None
    # When the person refused, when the file says (else the time of the import).
    refused_at: datetime | None = None


def add_entries(
    connection: Connection, workspace: Workspace, entries: Sequence[SuppressionEntry], now: datetime
) -> int:
    """Put ``entries`` on the list as if one by one, in a few queries per chunk; returns
    how many were new (an address on the list already, or met earlier among ``entries``,
    keeps its first reason). A refusal reason for a contact of the base goes through
    :func:`apply_refusals` like any refusal: the channel status changes too, even when the
    address was on the list already."""
    addresses = [entry.address for entry in entries if entry.address]
    owners: dict[str, int] = {}
    for row in contacts_by_address(
        connection,
        (a for a in addresses if "@" in a),
        (a for a in addresses if "@" not in a),
    ):
        owners.update((address, row["id"]) for address in (row["email"], row["phone"]) if address)
    listed = _listed(connection, sorted({entry.digest for entry in entries}))
    # Consecutive entries are written together, in the order of ``entries``: a run of
    # plain entries (by channel and reason), or a run of refusals of contacts of the base,
    # at most one per contact and channel (a second one starts a new run, so the status
    # ends as the last refusal says and the list keeps the first reason).
    runs: list[_Run] = []
    added = 0
    for entry in entries:
        owner = owners.get(entry.address) if entry.address else None
        event = None if owner is None else _EVENT_OF_REASON.get(entry.reason)
        new = (entry.channel, entry.digest) not in listed
        listed.add((entry.channel, entry.digest))
        added += new
        if owner is not None and event is not None:
            refusal = {
                "contact_id": owner,
                "type": event.value,
                "channel": entry.channel,
                "occurred_at": to_db(entry.refused_at or now),
            }
            if not runs or runs[-1].plain or (entry.channel, owner) in runs[-1].refusals:
                runs.append(_Run(plain=False))
            runs[-1].refusals[(entry.channel, owner)] = refusal
        elif new:
            if not runs or not runs[-1].plain:
                runs.append(_Run(plain=True))
            runs[-1].hashes.setdefault((entry.channel, entry.reason), {})[entry.digest] = owner
            if entry.refused_at is not None:
                runs[-1].refused_at[entry.digest] = entry.refused_at
    for run in runs:
        for (channel, reason), digests in run.hashes.items():
            for batch in chunks(list(digests)):
                suppress_hashes(
                    connection,
                    {digest: digests[digest] for digest in batch},
                    channel=channel,
                    reason=reason,
                    now=now,
                    actor="user",
                    refused_at=run.refused_at,
                )
        if run.refusals:
            apply_refusals(
                connection, workspace, list(run.refusals.values()), now=now, actor="user"
            )
    return added


@dataclass
class _Run:
    """Entries of :func:`add_entries` written together."""

    plain: bool
    hashes: dict[tuple[str, str], dict[str, int | None]] = field(default_factory=dict)
    refusals: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    refused_at: dict[str, datetime] = field(default_factory=dict)


def _listed(connection: Connection, digests: Sequence[str]) -> set[tuple[str, str]]:
    """The (channel, hash) pairs among these hashes that are on the list."""
    listed: set[tuple[str, str]] = set()
    for batch in chunks(digests):
        rows = connection.execute(
            select(suppressions.c.channel, suppressions.c.address_hash).where(
                suppressions.c.address_hash.in_(batch)
            )
        )
        listed.update((channel, digest) for channel, digest in rows)
    return listed
