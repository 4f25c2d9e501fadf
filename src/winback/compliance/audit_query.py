"""Reading the audit log: ``winback audit [--contact EMAIL] [--since DATE] [--json]``.

A contact is found by its id while it is in the base and, once erased, by the keyed hash
of its address: the user types the address, winback hashes it the same way, so the
history of an erased person can still be shown to the authority without storing who
they were."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from winback.clock import from_db, to_db
from winback.compliance.suppression import address_hashes
from winback.contacts import typed_address
from winback.json_values import json_record
from winback.store.schema import audit, contacts
from winback.workspace import Workspace


@dataclass(frozen=True)
class AuditRecord:
    """One decision about a contact: who made it, what, and why."""

    id: int
    at: datetime  # aware UTC
    actor: str  # a command, the tick, a webhook, a user
    contact_id: int | None
    contact_key: str | None  # the contact's keyed hash: what stays once erased
    action: str
    reason: str | None
    details: dict[str, Any] | None  # what the action recorded
    address: str | None  # the contact's email, else phone; None once erased

    def as_dict(self) -> dict[str, Any]:
        return json_record(self)


def audit_log(
    workspace: Workspace, *, contact: str | None = None, since: datetime | None = None
) -> list[AuditRecord]:
    """The audit records, oldest first: all of them, or those of one contact (email or
    phone, erased or not), from ``since`` on. Each carries the contact's ``address``
    (email, else phone) while the person is in the base; once erased, only the hash."""
    query = (
        select(audit, func.coalesce(contacts.c.email, contacts.c.phone).label("address"))
        .outerjoin(contacts, contacts.c.id == audit.c.contact_id)
        .order_by(audit.c.at, audit.c.id)
    )
    if since is not None:
        query = query.where(audit.c.at >= to_db(since))
    with workspace.engine.connect() as connection:
        if contact is not None:
            channel, key = typed_address(workspace, contact)
            digests = address_hashes(workspace, channel, key)
            # Erased: named by the hash of the email (key_hash), or of the phone in the
            # records of its suppression.
            ids = set(
                connection.execute(
                    select(contacts.c.id).where(
                        or_(
                            contacts.c.email == key,
                            contacts.c.phone == key,
                            contacts.c.key_hash.in_(digests),
                        )
                    )
                ).scalars()
            )
            ids.update(
                connection.execute(
                    select(audit.c.contact_id).where(
                        audit.c.contact_key.in_(digests), audit.c.contact_id.is_not(None)
                    )
                ).scalars()
            )
            query = query.where(
                or_(audit.c.contact_id.in_(sorted(ids)), audit.c.contact_key.in_(digests))
            )
        return [
            AuditRecord(**{**row, "at": from_db(row["at"])})
            for row in connection.execute(query).mappings()
        ]
