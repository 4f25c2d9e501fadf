"""Recording a verified delivery in the store: the signature token taken once, events
matched to their message and contact and stored once, topics left, bounce suppressions
lifted; each with its audit record."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from winback.addresses import normalise_address
from winback.clock import to_db
from winback.compliance import audit
from winback.compliance.refusals import REFUSAL_EVENTS, apply_refusals
from winback.compliance.suppression_list import lift_suppression
from winback.domain import ChannelStatus
from winback.events import record_events
from winback.store.contacts import (
    contacts_by_address,
    dedup_key,
    set_channel_status,
    update_contacts,
)
from winback.store.webhook_tokens import take_token
from winback.web.events import Message, find_messages, stored_user_agent
from winback.web.webhooks.base import (
    BadSignature,
    Delivery,
    Reactivation,
    TopicLeft,
    WebhookEvent,
    WebhookResult,
)
from winback.workspace import Workspace


class Replayed(BadSignature):
    """A signature token seen before, within the freshness window."""


def record_webhook(
    connection: Connection,
    workspace: Workspace,
    provider: str,
    delivery: Delivery,
    now: datetime,
) -> WebhookResult:
    """Store a verified delivery: its signature token once (:class:`Replayed` when it was
    taken before), each event matched to its outbox message and to its contact (by the
    message, else by address), topics left, bounce suppressions lifted. An event for an
    address we do not know is counted as unmatched; a refusal among them is still handed
    to :func:`apply_refusals` (with ``contact_id`` None and the ``address``), which may
    suppress the address itself."""
    signed = delivery.verified
    if signed is not None and signed.token is not None and signed.token_expires is not None:
        expires = signed.token_expires
        if not take_token(
            connection, provider, signed.token, signed.digest, expires_at=expires, now=now
        ):
            raise Replayed(f"this {provider} signature was used already: a replayed request")
    events = [change for change in delivery.changes if isinstance(change, WebhookEvent)]
    result = WebhookResult(received=len(delivery.changes), warnings=list(delivery.warnings))
    actor = f"webhook:{provider}"
    region = workspace.config.workspace.default_region
    addresses: dict[str, str | None] = {}
    for change in delivery.changes:
        try:
            addresses[change.address] = normalise_address(change.address, region)
        except ValueError:
            addresses[change.address] = None
    known = contacts_by_address(connection, {a for a in addresses.values() if a}, ())
    contacts = {row["email"]: row for row in known}
    messages = find_messages(
        connection,
        (event.message_id for event in events if event.message_id),
        (event.provider_id for event in events if event.provider_id),
    )
    rows, strangers = [], []
    for event in events:
        message = messages.get(event.message_id or "") or messages.get(event.provider_id or "")
        address = addresses[event.address]
        contact = contacts.get(address) if address else None
        contact_id = contact["id"] if contact else None
        # The message names its contact when the event's address is unreadable; a readable
        # address of no contact is another recipient (an SES bounce lists them all).
        unreadable = contact_id is None and address is None
        if message is not None and (unreadable or contact_id == message.contact_id):
            contact_id = message.contact_id
        else:
            message = None
        if contact_id is None:
            result.unmatched += 1
            if address and event.kind in REFUSAL_EVENTS:
                strangers.append(_row(event, provider, None, None) | {"address": address})
            continue
        rows.append(_row(event, provider, contact_id, message))
    result.recorded = record_events(connection, workspace, rows, now=now, actor=actor)
    result.duplicates = len(rows) - result.recorded
    if strangers:
        apply_refusals(connection, workspace, strangers, now=now, actor=actor)
    for change in delivery.changes:
        address = addresses[change.address]
        contact = contacts.get(address) if address else None
        if isinstance(change, TopicLeft):
            if contact is None:
                result.unmatched += 1
            else:
                result.topics_left += _leave_topic(connection, workspace, contact, change, actor)
        elif isinstance(change, Reactivation):
            if address is None:
                result.unmatched += 1
            else:
                result.reactivated += _reactivate(
                    connection, workspace, address, contact, actor, now
                )
    return result


def _row(
    event: WebhookEvent, provider: str, contact_id: int | None, message: Message | None
) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "type": event.kind.value,
        "channel": "email",
        "occurred_at": to_db(event.at),
        "campaign": message.journey if message else None,
        "message_id": event.message_id,
        "machine_open": event.machine_open,
        "user_agent": stored_user_agent(event.user_agent),
        "url": event.url,
        "ip": event.ip,
        "outbox_id": message.outbox_id if message else None,
        "source": f"webhook:{provider}",
        "dedup_key": dedup_key(provider, event.event_id, event.kind.value),
    }


def _leave_topic(
    connection: Connection,
    workspace: Workspace,
    contact: Mapping[str, Any],
    change: TopicLeft,
    actor: str,
) -> int:
    """Take ``change.topic`` out of the contact's topics (a contact who never chose holds
    every topic offered); 1 when it was there."""
    held = contact["topics"] if contact["topics"] is not None else workspace.config.web.topics
    if change.topic not in held:
        return 0
    kept = [topic for topic in held if topic != change.topic]
    update_contacts(connection, [{"id": contact["id"], "topics": kept}])
    audit.record(
        connection,
        [
            audit.audit_row(
                at=change.at,
                actor=actor,
                action="leave_topic",
                contact_id=contact["id"],
                reason=change.topic,
                details={"topics": kept},
            )
        ],
    )
    return 1


# The suppressions a provider's reactivation lifts: bounces only. An unsubscribe or a
# complaint is the person's no, which only the person can take back.
_BOUNCES = frozenset({"bounce_hard", "bounce_soft"})


def _reactivate(
    connection: Connection,
    workspace: Workspace,
    address: str,
    contact: Mapping[str, Any] | None,
    actor: str,
    now: datetime,
) -> int:
    """Lift the bounce suppression of ``address`` and give a ``bounced`` contact back its
    subscription (the bounce, not the person, took it); 1 when something was lifted."""
    note = "reactivated at the provider"
    lifted = lift_suppression(
        connection, workspace, "email", address, note=note, now=now, actor=actor, reasons=_BOUNCES
    )
    if lifted is None:
        return 0
    if contact is not None and contact["email_status"] == ChannelStatus.BOUNCED:
        status = ChannelStatus.SUBSCRIBED.value
        set_channel_status(
            connection, [{"id": contact["id"], "status": status, "at": to_db(now)}], "email"
        )
        audit.record(
            connection,
            [
                audit.status_change(
                    at=now,
                    actor=actor,
                    contact_id=contact["id"],
                    channel="email",
                    status=status,
                    details={"reason": note},
                )
            ],
        )
    return 1
