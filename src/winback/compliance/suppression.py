"""Suppression: the addresses we must never write to again, per channel, with the reason.

An address is kept as a keyed hash of its canonical form (:mod:`winback.addresses`,
``Workspace.keyed_hash``), so the list survives the erasure of the person and a later
re-import of the same address, under any spelling, is still blocked; lookups also check
the older spelling of an IDNA domain (:func:`winback.addresses.hashed_forms`). Each entry
keeps when the refusal happened (``refused_at``: the unsubscribe's own time in the ESP's
export or webhook) apart from when it reached the list (``created_at``).

Journeys check the list at enrolment, when the tick writes the outbox, and at dispatch as
the last line of defence; a contact whose channel status is a refusal (unsubscribed,
bounced, complained) is never written to either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, select
from sqlalchemy.sql import ColumnElement

from winback.addresses import hashed_form, hashed_forms
from winback.clock import to_db
from winback.compliance.audit import audit_row, record
from winback.domain import ChannelStatus, SuppressionReason
from winback.store.chunks import chunks
from winback.store.schema import contacts, suppressions
from winback.workspace import Workspace

REASONS = frozenset(reason.value for reason in SuppressionReason)
# The column of contacts that holds the address of each sending channel.
ADDRESS_COLUMNS = {"email": contacts.c.email, "sms": contacts.c.phone}


def address_hash(workspace: Workspace, channel: str, address: str) -> str:
    """The key of a canonical address on the list (what a new entry is written with)."""
    return workspace.keyed_hash(hashed_form(channel, address))


def address_hashes(workspace: Workspace, channel: str, address: str) -> tuple[str, ...]:
    """Every key the list may hold this address under, :func:`address_hash` first."""
    return tuple(workspace.keyed_hash(form) for form in hashed_forms(channel, address))


def can_receive(status: str | None, address: str | None) -> bool:
    """A channel can carry marketing to a contact only with an address and a subscription."""
    return bool(address) and status == ChannelStatus.SUBSCRIBED


def can_receive_clause(channel: str) -> ColumnElement[bool]:
    """:func:`can_receive` as a SQL condition on ``contacts``, for bulk selections."""
    address = ADDRESS_COLUMNS[channel]
    return and_(
        address.is_not(None),
        address != "",
        contacts.c[f"{channel}_status"] == ChannelStatus.SUBSCRIBED.value,
    )


@dataclass
class SuppressionList:
    """The suppressed hashes of some channels, loaded once for a bulk check (enrolment,
    tick). Hashing is skipped for a channel whose list is empty."""

    workspace: Workspace
    hashes: dict[str, set[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.hashes.values())

    def blocks(self, channel: str, address: str | None) -> bool:
        known = self.hashes.get(channel)
        if not address or not known:
            return False
        return any(digest in known for digest in address_hashes(self.workspace, channel, address))


def load_suppressions(
    connection: Connection,
    workspace: Workspace,
    channels: Iterable[str],
    since: datetime | None = None,
) -> SuppressionList:
    """The suppression list of ``channels``, for many checks in one pass. With ``since``,
    only what was suppressed from then on: a caller that checked the whole list earlier
    (the tick, after enrolment) need not hash every address again."""
    wanted = sorted(set(channels))
    hashes: dict[str, set[str]] = {channel: set() for channel in wanted}
    query = select(suppressions.c.channel, suppressions.c.address_hash).where(
        suppressions.c.channel.in_(wanted)
    )
    if since is not None:
        query = query.where(suppressions.c.created_at >= to_db(since))
    rows = connection.execute(query)
    for channel, digest in rows:
        hashes[channel].add(digest)
    return SuppressionList(workspace, hashes)


def is_suppressed(connection: Connection, workspace: Workspace, channel: str, address: str) -> bool:
    """Whether one address is on the list of ``channel``, in one query (paths that check
    many use :func:`load_suppressions` or :func:`suppression_reasons`)."""
    digests = address_hashes(workspace, channel, address)
    found = connection.execute(
        select(suppressions.c.id).where(
            suppressions.c.channel == channel, suppressions.c.address_hash.in_(digests)
        )
    ).first()
    return found is not None


def suppress(
    connection: Connection,
    workspace: Workspace,
    *,
    channel: str,
    reason: str,
    now: datetime,
    actor: str,
    contact_id: int | None = None,
    address: str | None = None,
    refused_at: datetime | None = None,
) -> bool:
    """Suppress the contact's address on ``channel`` (or a bare ``address``), with an
    audit record; ``refused_at`` is when the person refused (``now`` when not known).
    Returns False when there was no address or it was suppressed already (the first
    reason is kept: it is the one that made the decision)."""
    if not address:
        ids = [] if contact_id is None else [contact_id]
        added = suppress_contacts(
            connection,
            workspace,
            ids,
            channel=channel,
            reason=reason,
            now=now,
            actor=actor,
            refused_at=None
            if refused_at is None or contact_id is None
            else {contact_id: refused_at},
        )
    else:
        digest = address_hash(workspace, channel, address)
        added = suppress_hashes(
            connection,
            {digest: contact_id},
            channel=channel,
            reason=reason,
            now=now,
            actor=actor,
            refused_at=None if refused_at is None else {digest: refused_at},
        )
    return added > 0


def suppress_contacts(
    connection: Connection,
    workspace: Workspace,
    contact_ids: Sequence[int],
    *,
    channel: str,
    reason: str,
    now: datetime,
    actor: str,
    refused_at: Mapping[int, datetime] | None = None,
) -> int:
    """:func:`suppress` for many contacts at once (the sunset of a whole journey): one
    query per chunk of contacts instead of three per contact; ``refused_at`` gives a
    contact's time of refusal when it is not ``now``. Returns how many addresses were
    newly suppressed."""
    column = ADDRESS_COLUMNS[channel]
    added = 0
    for batch in chunks(contact_ids):
        owners = connection.execute(
            select(contacts.c.id, column).where(
                contacts.c.id.in_(batch),
                column.is_not(None),
                column != "",
            )
        )
        digests: dict[str, int | None] = {}
        times: dict[str, datetime] = {}
        for contact_id, address in owners:
            digest = address_hash(workspace, channel, address)
            digests.setdefault(digest, contact_id)
            if refused_at and contact_id in refused_at:
                times.setdefault(digest, refused_at[contact_id])
        added += suppress_hashes(
            connection,
            digests,
            channel=channel,
            reason=reason,
            now=now,
            actor=actor,
            refused_at=times,
        )
    return added


def suppress_hashes(
    connection: Connection,
    digests: Mapping[str, int | None],
    *,
    channel: str,
    reason: str,
    now: datetime,
    actor: str,
    refused_at: Mapping[str, datetime] | None = None,
    details: Mapping[str, Any] | None = None,
) -> int:
    """Add these address hashes (each with its contact's id, or None) to the list of
    ``channel``, those not there yet, each with an audit record; ``refused_at`` gives the
    time a hash's refusal happened when it is not ``now``, and ``details`` go into the
    audit records (the file an import read...). A list imported as hashes (another
    tool's export, an erased person's entry) comes in this way."""
    if reason not in REASONS:
        raise ValueError(f"unknown suppression reason {reason!r} (one of {sorted(REASONS)})")
    if not digests:
        return 0
    known: set[str] = set()
    for batch in chunks(list(digests)):
        known.update(
            connection.execute(
                select(suppressions.c.address_hash).where(
                    suppressions.c.channel == channel, suppressions.c.address_hash.in_(batch)
                )
            ).scalars()
        )
    fresh = {digest: owner for digest, owner in digests.items() if digest not in known}
    if not fresh:
        return 0
    times = {digest: to_db((refused_at or {}).get(digest, now)) for digest in fresh}
    connection.execute(
        insert(suppressions),
        [
            {
                "channel": channel,
                "address_hash": digest,
                "reason": reason,
                "created_at": to_db(now),
                "refused_at": times[digest],
            }
            for digest in fresh
        ],
    )
    record(
        connection,
        (
            audit_row(
                at=now,
                actor=actor,
                action="suppress",
                contact_id=contact_id,
                contact_key=digest,
                reason=reason,
                details={
                    **(details or {}),
                    "channel": channel,
                    "refused_at": times[digest].isoformat(),
                },
            )
            for digest, contact_id in fresh.items()
        ),
    )
    return len(fresh)


def suppression_reasons(
    connection: Connection, workspace: Workspace, addresses: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """The reason each of these ``(channel, address)`` pairs is suppressed, for those
    that are: an import uses it to bring back a suppressed address as refused."""
    by_digest = {
        (channel, digest): (channel, address)
        for channel, address in addresses
        for digest in address_hashes(workspace, channel, address)
    }
    digests = sorted({digest for _, digest in by_digest})
    query = select(suppressions.c.channel, suppressions.c.address_hash, suppressions.c.reason)
    found: dict[tuple[str, str], str] = {}
    for batch in chunks(digests):
        for channel, digest, reason in connection.execute(
            query.where(suppressions.c.address_hash.in_(batch))
        ):
            pair = by_digest.get((channel, digest))
            if pair is not None:
                found[pair] = reason
    return found
