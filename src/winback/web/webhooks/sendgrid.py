"""SendGrid's Event Webhook: a JSON array of events, signed (the "Signed Event Webhook")
with ECDSA P-256 over SHA-256 of the timestamp header followed by the raw body. The
verification key is the base64 DER public key SendGrid shows in its settings
(``web.sendgrid_public_key``); the signature comes base64 DER in
``X-Twilio-Email-Event-Webhook-Signature``, and its timestamp must be within
``web.webhook_max_age`` of the server's clock.

A ``group_unsubscribe`` leaves one topic, the one ``web.sendgrid_groups`` maps its
``asm_group_id`` to, and never every message; ``dropped`` and ``deferred`` are SendGrid's
own doing, never bounces."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from winback.domain import EventType
from winback.errors import ConfigError
from winback.web.webhooks.base import (
    BadSignature,
    Delivery,
    TopicLeft,
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

SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"

# processed, deferred and dropped say nothing about the person (a drop is SendGrid's own
# refusal to send, a deferral a later try): not recorded, and never bounces.
_KINDS = {
    "delivered": EventType.DELIVERED,
    "open": EventType.OPEN,
    "click": EventType.CLICK,
    "spamreport": EventType.COMPLAINT,
    "unsubscribe": EventType.UNSUBSCRIBE,
}


def verify(workspace: Workspace, request: WebhookRequest) -> Verified:
    """The events of a request carrying SendGrid's signature, made within
    ``web.webhook_max_age``; :class:`BadSignature` otherwise."""
    public_key = configured(workspace.config.web.sendgrid_public_key, "sendgrid_public_key")
    try:
        key = load_der_public_key(base64.b64decode(public_key))
    except (binascii.Error, ValueError):
        raise ConfigError(
            "web.sendgrid_public_key is not a base64 DER public key: copy the "
            "verification key from SendGrid's Mail Settings > Event Webhook"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError("web.sendgrid_public_key is not an elliptic-curve (ECDSA) key")
    signature = request.headers.get(SIGNATURE_HEADER)
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise BadSignature("the request is not signed (no SendGrid signature headers)")
    try:
        key.verify(
            base64.b64decode(signature),
            timestamp.encode("utf-8") + request.body,
            ec.ECDSA(hashes.SHA256()),
        )
    except (binascii.Error, ValueError, InvalidSignature):
        raise BadSignature("the SendGrid signature does not match the body") from None
    max_age = workspace.config.web.webhook_max_age
    fresh_epoch(timestamp, request, max_age, "the SendGrid signature's timestamp")
    payload = read_json(request.body)
    if not isinstance(payload, list):
        raise WebhookError("a SendGrid delivery is a JSON array of events")
    return Verified(payload)


def records(payload: Any) -> list[Any]:
    """The events of a delivery (an array), or a file's record (one event)."""
    return payload if isinstance(payload, list) else [payload]


def read(workspace: Workspace, item: Any) -> Delivery:
    name = str(text_of(item, "event"))
    kind = _KINDS.get(name)
    if name == "bounce":
        # "bounce" is a refusal by the receiving server, "blocked" a temporary one.
        blocked = text_of(item, "type") == "blocked"
        kind = EventType.BOUNCE_SOFT if blocked else EventType.BOUNCE_HARD
    address, event_id = text_of(item, "email"), text_of(item, "sg_event_id")
    stamp = epoch_time(field_of(item, "timestamp"), "timestamp")
    if address is None or event_id is None or stamp is None:
        return Delivery()
    if name == "group_unsubscribe":
        return _group_unsubscribe(workspace, item, address, stamp)
    if kind is None:
        return Delivery()
    provider_id = text_of(item, "sg_message_id")
    flag = field_of(item, "sg_machine_open")
    event = WebhookEvent(
        kind=kind,
        address=address,
        at=stamp,
        event_id=event_id,
        message_id=text_of(item, "smtp-id"),
        # sg_message_id is the X-Message-Id SendGrid gave at sending, plus a suffix.
        provider_id=provider_id.split(".", 1)[0] if provider_id else None,
        machine_open=flag if kind == EventType.OPEN and isinstance(flag, bool) else None,
        user_agent=text_of(item, "useragent"),
        ip=text_of(item, "ip"),
        url=text_of(item, "url"),
    )
    return Delivery([event])


def _group_unsubscribe(workspace: Workspace, item: Any, address: str, stamp: datetime) -> Delivery:
    """A ``group_unsubscribe`` leaves the topic ``web.sendgrid_groups`` maps its
    ``asm_group_id`` to; an unmapped group is a warning, never a global unsubscribe."""
    group = field_of(item, "asm_group_id")
    topic = None
    if isinstance(group, int | str) and not isinstance(group, bool):
        topic = workspace.config.web.sendgrid_groups.get(str(group))
    if topic is None:
        return Delivery(
            warnings=[
                f"a group_unsubscribe from SendGrid group {str(group)[:40]!r}, which "
                "web.sendgrid_groups maps to no topic: not applied"
            ]
        )
    return Delivery([TopicLeft(address=address, topic=topic, at=stamp)])
