"""Suppression: the addresses we must never write to again, per channel, with the reason.

An address is kept as a keyed hash of its normalised form (``Workspace.keyed_hash``), so
the list survives the erasure of the person and a later re-import of the same address is
still blocked. Journeys check it at enrolment, when the tick writes the outbox, and at
dispatch as the last line of defence; a contact whose channel status is a refusal
(unsubscribed, bounced, complained) is never written to either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, insert, select

from winback.clock import to_db
from winback.compliance.audit import audit_row, record
from winback.domain import ChannelStatus
from winback.store.schema import contacts, suppressions
from winback.workspace import Workspace

REASONS = frozenset(
    {"unsubscribe", "bounce_hard", "bounce_soft", "complaint", "sunset", "erased", "manual"}
)
_ADDRESS_COLUMN = {"email": contacts.c.email, "sms": contacts.c.phone}


def normalise_address(channel: str, address: str) -> str:
    """The form an address is hashed in: a lower-case email, an E.164 phone without spaces."""
    if channel == "email":
        return address.strip().lower()
    return "".join(address.split())


def address_hash(workspace: Workspace, channel: str, address: str) -> str:
    return workspace.keyed_hash(normalise_address(channel, address))


def can_receive(status: str | None, address: str | None) -> bool:
    """A channel can carry marketing to a contact only with an address and a subscription."""
    return bool(address) and status == ChannelStatus.SUBSCRIBED


@dataclass
class SuppressionList:
    """The suppressed hashes of some channels, loaded once for a bulk check (enrolment,
    tick). Hashing is skipped for a channel whose list is empty."""

    workspace: Workspace
    hashes: dict[str, set[str]] = field(default_factory=dict)

    def blocks(self, channel: str, address: str | None) -> bool:
        known = self.hashes.get(channel)
        if not address or not known:
            return False
        return address_hash(self.workspace, channel, address) in known


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
    """One address, one query: the check dispatch makes just before sending."""
    digest = address_hash(workspace, channel, address)
    found = connection.execute(
        select(suppressions.c.id).where(
            suppressions.c.channel == channel, suppressions.c.address_hash == digest
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
) -> bool:
    """Suppress the contact's address on ``channel`` (or a bare ``address``), with an
    audit record. Returns False when there was no address or it was suppressed already
    (the first reason is kept: it is the one that made the decision)."""
    if reason not in REASONS:
        raise ValueError(f"unknown suppression reason {reason!r} (one of {sorted(REASONS)})")
    if address is None and contact_id is not None:
        address = connection.execute(
            select(_ADDRESS_COLUMN[channel]).where(contacts.c.id == contact_id)
        ).scalar_one_or_none()
    if not address:
        return False
    digest = address_hash(workspace, channel, address)
    exists = connection.execute(
        select(suppressions.c.id).where(
            suppressions.c.channel == channel, suppressions.c.address_hash == digest
        )
    ).first()
    if exists is not None:
        return False
    connection.execute(
        insert(suppressions),
        {"channel": channel, "address_hash": digest, "reason": reason, "created_at": to_db(now)},
    )
    record(
        connection,
        [
            audit_row(
                at=now,
                actor=actor,
                action="suppress",
                contact_id=contact_id,
                contact_key=digest,
                reason=reason,
                details={"channel": channel},
            )
        ],
    )
    return True
