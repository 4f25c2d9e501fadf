"""The rights of one person (GDPR articles 15 and 17): ``winback gdpr export`` gathers
everything held on them into one document, ``winback gdpr erase`` removes their personal
data from the database, the freed pages of the SQLite file, the outbox and every file of
the workspace (quarantine, file-channel output, logs), keeping only the keyed hash that
blocks their address and names them in the audit log."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, FromClause, or_, select

from winback.compliance.erasure import erase_contacts, erasing, reclaim_space
from winback.compliance.files import FileScrub, scrub_files
from winback.compliance.suppression import address_hashes, suppress
from winback.contacts import typed_address
from winback.errors import NotFoundError
from winback.json_values import json_value
from winback.scoring import contact_scores
from winback.store.contacts import find_contact
from winback.store.history import events_slice
from winback.store.schema import (
    audit,
    enrollments,
    journeys,
    offers,
    outbox,
    suppressions,
    survey_answers,
)
from winback.workspace import Workspace

# Outbox columns a person is shown: what was sent to them, not our plumbing.
_MESSAGE_COLUMNS = (
    "id",
    "journey",
    "step_id",
    "channel",
    "status",
    "to_address",
    "subject",
    "body_text",
    "created_at",
    "due_at",
    "sent_at",
)


def _rows(connection: Connection, table: FromClause, *where: Any, columns: Any = None) -> list[Any]:
    query = select(*(columns or table.columns)).where(*where).order_by(table.c.id)
    return [
        {key: json_value(value) for key, value in row.items()}
        for row in connection.execute(query).mappings()
    ]


def export_person(workspace: Workspace, address: str) -> dict[str, Any]:
    """Everything held on the person with this email or phone, as one JSON-ready document:
    the contact, stage and scores, events, enrollments (with the journey's name), messages
    (subject, step, text), offer codes, survey answers, suppressions of their addresses
    and audit records (by contact and by the hash of their addresses)."""
    channel, key = typed_address(workspace, address)
    with workspace.engine.connect() as connection:
        contact = find_contact(connection, key)
        if contact is None:
            raise NotFoundError(f"no contact with the address {key}")
        contact_id = contact["id"]
        # Every spelling the list may hold an address under (winback.addresses).
        hashes = set(address_hashes(workspace, channel, key))
        if contact["email"]:
            hashes.update(address_hashes(workspace, "email", contact["email"]))
        if contact["phone"]:
            hashes.update(address_hashes(workspace, "sms", contact["phone"]))
        scored = contact_scores(connection, contact_id)
        document = {
            "contact": {k: json_value(v) for k, v in contact.items() if k != "key_hash"},
            "stage": scored["stage"],
            "scores": scored["scores"],
            "stage_history": scored["stage_history"],
            "events": [
                {k: v for k, v in row.items() if k != "dedup_key"}
                for row in _rows(connection, events_slice(connection, contact_id=contact_id))
            ],
            "enrollments": _rows(
                connection,
                enrollments,
                enrollments.c.contact_id == contact_id,
                columns=[
                    *enrollments.columns,
                    select(journeys.c.name)
                    .where(journeys.c.id == enrollments.c.journey_id)
                    .scalar_subquery()
                    .label("journey"),
                ],
            ),
            "messages": _rows(
                connection,
                outbox,
                outbox.c.contact_id == contact_id,
                columns=[outbox.c[name] for name in _MESSAGE_COLUMNS],
            ),
            "codes": _rows(connection, offers, offers.c.contact_id == contact_id),
            "survey_answers": _rows(
                connection, survey_answers, survey_answers.c.contact_id == contact_id
            ),
            "suppressions": _rows(
                connection,
                suppressions,
                suppressions.c.address_hash.in_(sorted(hashes)),
                columns=[
                    suppressions.c.id,
                    suppressions.c.channel,
                    suppressions.c.reason,
                    suppressions.c.created_at,
                ],
            ),
            "audit": _rows(
                connection,
                audit,
                or_(audit.c.contact_id == contact_id, audit.c.contact_key.in_(sorted(hashes))),
            ),
        }
    return document


@dataclass
class EraseResult:
    """What ``winback gdpr erase`` did."""

    contact_erased: bool
    log_emptied: bool = True
    files: FileScrub = field(default_factory=FileScrub)

    def as_dict(self) -> dict[str, Any]:
        return {
            "contact_erased": self.contact_erased,
            "log_emptied": self.log_emptied,
            "files_rewritten": self.files.rewritten,
            "files_deleted": self.files.deleted,
            "files_left": self.files.left,
        }


def erase_person(workspace: Workspace, address: str, *, now: datetime) -> EraseResult:
    """Erase the person with this email or phone: their contact (see
    :mod:`winback.compliance.erasure`), the freed database pages, and every line of the
    workspace's files that names them. An address with no contact is still suppressed
    (reason ``erased``) and taken out of the files: the person asked not to be kept."""
    channel, key = typed_address(workspace, address)
    with erasing(workspace.engine) as connection:
        contact = find_contact(connection, key)
        if contact is None:
            email, phone = (key, None) if channel == "email" else (None, key)
            suppress(
                connection,
                workspace,
                channel=channel,
                reason="erased",
                now=now,
                actor="user",
                address=key,
            )
        else:
            email, phone = contact["email"], contact["phone"]
            erase_contacts(
                connection,
                workspace,
                [contact["id"]],
                now=now,
                actor="user",
                reason="erasure request",
            )
    emptied = reclaim_space(workspace.engine)
    files = scrub_files(workspace, email, phone)
    return EraseResult(contact_erased=contact is not None, log_emptied=emptied, files=files)
