"""Mailgun's webhooks: one JSON event per request, ``{"signature": {...}, "event-data":
{...}}``, signed with HMAC-SHA256 of ``timestamp + token`` under the HTTP webhook signing
key (``web.mailgun_signing_key``)."""

from __future__ import annotations

import hashlib
import hmac

from winback.domain import EventType
from winback.web.webhooks.common import (
    BadSignature,
    WebhookError,
    WebhookEvent,
    WebhookRequest,
    configured,
    epoch_time,
    field_of,
    read_json,
    text_of,
)
from winback.workspace import Workspace

_KINDS = {
    "delivered": EventType.DELIVERED,
    "opened": EventType.OPEN,
    "clicked": EventType.CLICK,
    "complained": EventType.COMPLAINT,
    "unsubscribed": EventType.UNSUBSCRIBE,
}


def parse(workspace: Workspace, request: WebhookRequest) -> list[WebhookEvent]:
    key = configured(workspace.config.web.mailgun_signing_key, "mailgun_signing_key")
    payload = read_json(request.body)
    timestamp = text_of(payload, "signature", "timestamp")
    token = text_of(payload, "signature", "token")
    signature = text_of(payload, "signature", "signature")
    if not (timestamp and token and signature):
        raise BadSignature("the request is not signed (no signature object)")
    expected = hmac.new(
        key.encode("utf-8"),
        (timestamp + token).encode("utf-8"),
        hashlib.sha256,
    ).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise BadSignature("the Mailgun signature does not match")
    data = field_of(payload, "event-data")
    if not isinstance(data, dict):
        raise WebhookError("a Mailgun webhook carries an event-data object")
    name = text_of(data, "event")
    kind = _KINDS.get(str(name))
    if name == "failed":
        permanent = text_of(data, "severity") == "permanent"
        kind = EventType.BOUNCE_HARD if permanent else EventType.BOUNCE_SOFT
    address, event_id = text_of(data, "recipient"), text_of(data, "id")
    stamp = epoch_time(data.get("timestamp"))
    if kind is None or address is None or event_id is None or stamp is None:
        return []
    return [
        WebhookEvent(
            kind=kind,
            address=address,
            at=stamp,
            event_id=event_id,
            message_id=text_of(data, "message", "headers", "message-id"),
            user_agent=text_of(data, "client-info", "user-agent"),
            ip=text_of(data, "ip"),
            url=text_of(data, "url"),
        )
    ]
