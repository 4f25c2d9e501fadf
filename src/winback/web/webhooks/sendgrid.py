"""SendGrid's Event Webhook: a JSON array of events, signed (the "Signed Event Webhook")
with ECDSA P-256 over SHA-256 of the timestamp header followed by the raw body. The
verification key is the base64 DER public key SendGrid shows in its settings
(``web.sendgrid_public_key``); the signature comes base64 DER in
``X-Twilio-Email-Event-Webhook-Signature``."""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from winback.domain import EventType
from winback.errors import ConfigError
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

SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"

# processed, deferred and dropped say nothing about the person: not recorded.
_KINDS = {
    "delivered": EventType.DELIVERED,
    "open": EventType.OPEN,
    "click": EventType.CLICK,
    "spamreport": EventType.COMPLAINT,
    "unsubscribe": EventType.UNSUBSCRIBE,
    "group_unsubscribe": EventType.UNSUBSCRIBE,
}


def verify(public_key: str, request: WebhookRequest) -> None:
    """Raise :class:`BadSignature` unless the request carries SendGrid's signature."""
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
    except (binascii.Error, InvalidSignature):
        raise BadSignature("the SendGrid signature does not match the body") from None


def parse(workspace: Workspace, request: WebhookRequest) -> list[WebhookEvent]:
    verify(configured(workspace.config.web.sendgrid_public_key, "sendgrid_public_key"), request)
    payload = read_json(request.body)
    if not isinstance(payload, list):
        raise WebhookError("a SendGrid delivery is a JSON array of events")
    found = []
    for item in payload:
        kind = _KINDS.get(str(text_of(item, "event")))
        if text_of(item, "event") == "bounce":
            # "bounce" is a refusal by the receiving server, "blocked" a temporary one.
            blocked = text_of(item, "type") == "blocked"
            kind = EventType.BOUNCE_SOFT if blocked else EventType.BOUNCE_HARD
        address, event_id = text_of(item, "email"), text_of(item, "sg_event_id")
        stamp = epoch_time(field_of(item, "timestamp"))
        if kind is None or address is None or event_id is None or stamp is None:
            continue
        provider_id = text_of(item, "sg_message_id")
        flag = item.get("sg_machine_open")
        found.append(
            WebhookEvent(
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
        )
    return found
