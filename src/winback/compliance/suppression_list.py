"""The user's own hand on the suppression list: ``winback suppress add|remove|list|import|
export``.

Adding an address with a refusal reason (``unsubscribe``, ``bounce_hard``,
``complaint``) for a contact of the base goes through :func:`apply_refusals`, like any
other refusal: the channel status changes too. Removing an entry is a decision of the
user, recorded in the audit log with their note; it does not subscribe anyone again (only
the person can turn a no into a yes).

The export is a CSV of ``channel,address,hash,reason,suppressed_at,refused_at``: the
address when a contact of the base still has it, else only the hash (the person was
erased, or the address was suppressed without ever being a contact). The import reads the
same columns, and the ESPs' suppression and unsubscribed exports
(:mod:`winback.compliance.suppression_files`); a row needs an address or a hash.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
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
from winback.compliance.suppression_files import file_shape, is_refusal, row_reason, row_time
from winback.contacts import typed_address
from winback.errors import InputFileError, NotFoundError
from winback.ingest.reader import open_source
from winback.safe_output import csv_writer
from winback.store.chunks import chunks
from winback.store.contacts import contacts_by_address, find_contact
from winback.store.schema import contacts, suppressions
from winback.workspace import Workspace

EXPORT_COLUMNS = ("channel", "address", "hash", "reason", "suppressed_at", "refused_at")
# The refusal event a reason stands for, when it stands for one.
_EVENT_OF_REASON = {reason: event for event, (_, reason) in REFUSAL_EVENTS.items()}


def _parse(workspace: Workspace, text: str, channel: str | None) -> tuple[str, str]:
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
    channel, key = _parse(workspace, address, channel)
    entry = _Entry(channel, address_hash(workspace, channel, key), reason, key)
    with workspace.engine.begin() as connection:
        return _add_entries(connection, workspace, [entry], now) == 1


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
    channel, key = _parse(workspace, address, channel)
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


def list_suppressions(
    workspace: Workspace, *, channel: str | None = None, reason: str | None = None
) -> Iterator[dict[str, Any]]:
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
            yield {
                "channel": row["channel"],
                "address": known.get((row["channel"], row["address_hash"])),
                "hash": row["address_hash"],
                "reason": row["reason"],
                "suppressed_at": from_db(row["created_at"]).isoformat(),
                "refused_at": from_db(row["refused_at"] or row["created_at"]).isoformat(),
            }


def export_suppressions(workspace: Workspace, out: TextIO, **filters: str | None) -> int:
    """Write the list as CSV (:data:`EXPORT_COLUMNS`): the address of a contact still
    present, the hash alone for the others. Returns how many entries were written."""
    writer = csv_writer(out)
    writer.writerow(EXPORT_COLUMNS)
    written = 0
    for entry in list_suppressions(workspace, **filters):
        hashed = "" if entry["address"] else entry["hash"]
        writer.writerow(
            [
                entry["channel"],
                entry["address"] or "",
                hashed,
                entry["reason"],
                entry["suppressed_at"],
                entry["refused_at"],
            ]
        )
        written += 1
    return written


@dataclass
class SuppressionImport:
    """What ``winback suppress import`` did: entries added, already there, rows that
    are no refusal (a Brevo row without its blocklist flag), and the lines refused with
    their reason."""

    added: int = 0
    already: int = 0
    skipped: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def import_suppressions(
    workspace: Workspace, path: Path, *, reason: str | None, now: datetime
) -> SuppressionImport:
    """Add the addresses (or hashes) of a suppression file, winback's own or an ESP's
    export (:mod:`~winback.compliance.suppression_files`), to the list; a row's own
    reason wins over ``reason``, a ``channel`` column over the address's own, and a
    row's date is when the person refused."""
    source = open_source(path)
    shape = file_shape(source.header, reason)
    if shape.address is None and shape.hash is None:
        source.close()
        raise InputFileError(
            f"{path}: no address column (address, email, Email Address, EmailAddress or "
            f"phone) and no hash column; the header is {source.header}"
        )
    tz = workspace.config.workspace.tz
    result = SuppressionImport()
    entries: list[_Entry] = []
    try:
        for line, values in source.rows:
            cell = _cells(values)
            try:
                if not is_refusal(shape, cell(shape.flag)):
                    result.skipped += 1
                    continue
                row = row_reason(shape, cell(shape.reason), cell(shape.status), cell(shape.origin))
                refused_at = row_time(cell(shape.time), tz)
                channel = cell(shape.channel)
                if channel not in (None, "email", "sms"):
                    raise ValueError(f"unknown channel {channel!r} (email or sms)")
                text = cell(shape.address)
                if text:
                    channel, key = _parse(workspace, text, channel)
                    digest = address_hash(workspace, channel, key)
                    entries.append(_Entry(channel, digest, row, key, refused_at))
                else:
                    digest = (cell(shape.hash) or "").lower()
                    if len(digest) != 64 or not channel:
                        raise ValueError("a hash row needs a 64-digit hash and a channel")
                    entries.append(_Entry(channel, digest, row, refused_at=refused_at))
            except (ValueError, NotFoundError) as exc:
                result.rejected.append((line, str(exc)))
    finally:
        source.close()
    with workspace.engine.begin() as connection:
        result.added = _add_entries(connection, workspace, entries, now)
    result.already = len(entries) - result.added
    return result


@dataclass(frozen=True)
class _Entry:
    """One address to put on the list: its channel, hash and reason, and its normalised
    form (None for a line that gave only the hash)."""

    channel: str
    digest: str
    reason: str
    address: str | None = None
    # When the person refused, when the file says (else the time of the import).
    refused_at: datetime | None = None


def _add_entries(
    connection: Connection, workspace: Workspace, entries: Sequence[_Entry], now: datetime
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
    """Entries of :func:`_add_entries` written together."""

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


def _cells(values: list[Any]) -> Any:
    def cell(position: int | None) -> str | None:
        if position is None or position >= len(values) or values[position] is None:
            return None
        text = str(values[position]).strip()
        return text or None

    return cell
