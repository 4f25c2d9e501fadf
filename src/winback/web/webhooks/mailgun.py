"""Mailgun's webhooks: one JSON event per request, ``{"signature": {...}, "event-data":
{...}}``, signed with HMAC-SHA256 of ``timestamp + token`` under the HTTP webhook signing
key (``web.mailgun_signing_key``).

The signature covers neither the event nor anything but that pair: a captured signature
object verifies with any other ``event-data``. So a request is taken only while its
timestamp is within ``web.webhook_max_age`` of the server's clock, and each token with
one body only (:func:`~winback.web.webhooks.base.record_webhook` keeps them in the
store): the same body again is Mailgun's retry, recorded once; another body is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from winback.domain import EventType
from winback.web.webhooks.base import (
    BadSignature,
    Delivery,
    Verified,
    WebhookError,
    WebhookEvent,
    WebhookRequest,
    configured,
    epoch_time,
    field_of,
    fresh_epoch,
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
# Mailgun's tokens are 50 hex characters; a longer one is no token of theirs.
_TOKEN_CHARS = 128


def verify(workspace: Workspace, request: WebhookRequest) -> Verified:
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
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise BadSignature("the Mailgun signature does not match")
    if len(token) > _TOKEN_CHARS:
        raise WebhookError("the Mailgun token is longer than Mailgun makes them")
    max_age = workspace.config.web.webhook_max_age
    expires = fresh_epoch(timestamp, request, max_age, "the Mailgun signature's timestamp")
    digest = hashlib.sha256(request.body).hexdigest()
    return Verified(payload, token=token, digest=digest, token_expires=expires)


def records(payload: Any) -> list[Any]:
    """The event of a webhook body (or a file's record: a body, or its ``event-data``
    alone, as Mailgun's Events API lists them)."""
    wrapped = isinstance(payload, dict) and "event-data" in payload
    data = payload["event-data"] if wrapped else payload
    if not isinstance(data, dict):
        raise WebhookError("a Mailgun webhook carries an event-data object")
    return [data]


def read(workspace: Workspace, data: Any) -> Delivery:
    name = text_of(data, "event")
    kind = _KINDS.get(str(name))
    if name == "failed":
        permanent = text_of(data, "severity") == "permanent"
        kind = EventType.BOUNCE_HARD if permanent else EventType.BOUNCE_SOFT
    address, event_id = text_of(data, "recipient"), text_of(data, "id")
    stamp = epoch_time(field_of(data, "timestamp"), "event-data.timestamp")
    if kind is None or address is None or event_id is None or stamp is None:
        return Delivery()
    event = WebhookEvent(
        kind=kind,
        address=address,
        at=stamp,
        event_id=event_id,
        message_id=text_of(data, "message", "headers", "message-id"),
        user_agent=text_of(data, "client-info", "user-agent"),
        ip=text_of(data, "ip"),
        url=text_of(data, "url"),
    )
    return Delivery([event])
