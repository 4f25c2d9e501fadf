"""Postmark's webhooks: one JSON object per request whose ``RecordType`` says what it is
(Delivery, Bounce, SpamComplaint, Open, Click, SubscriptionChange). Postmark signs
nothing; the webhook URL carries ``web.postmark_token`` as its Basic auth password."""

from __future__ import annotations

from winback.domain import EventType
from winback.web.webhooks.common import (
    WebhookError,
    WebhookEvent,
    WebhookRequest,
    check_shared_secret,
    iso_time,
    read_json,
    text_of,
)
from winback.workspace import Workspace

_BOUNCES = {
    "HardBounce": EventType.BOUNCE_HARD,
    "BadEmailAddress": EventType.BOUNCE_HARD,
    "SoftBounce": EventType.BOUNCE_SOFT,
    "Transient": EventType.BOUNCE_SOFT,
    "DnsError": EventType.BOUNCE_SOFT,
    "SpamComplaint": EventType.COMPLAINT,
    "Unsubscribe": EventType.UNSUBSCRIBE,
}
# Where each record type keeps the address and the time.
_FIELDS = {
    "Delivery": (EventType.DELIVERED, "Recipient", "DeliveredAt"),
    "Open": (EventType.OPEN, "Recipient", "ReceivedAt"),
    "Click": (EventType.CLICK, "Recipient", "ReceivedAt"),
    "SpamComplaint": (EventType.COMPLAINT, "Email", "BouncedAt"),
    "Bounce": (None, "Email", "BouncedAt"),
    "SubscriptionChange": (EventType.UNSUBSCRIBE, "Recipient", "ChangedAt"),
}


def parse(workspace: Workspace, request: WebhookRequest) -> list[WebhookEvent]:
    check_shared_secret(request, workspace.config.web.postmark_token, "postmark_token")
    item = read_json(request.body)
    if not isinstance(item, dict):
        raise WebhookError("a Postmark webhook is one JSON object")
    record_type = str(text_of(item, "RecordType"))
    if record_type not in _FIELDS:
        return []
    kind, address_field, time_field = _FIELDS[record_type]
    if record_type == "Bounce":
        kind = _BOUNCES.get(str(text_of(item, "Type")))
    if record_type == "SubscriptionChange" and item.get("SuppressSending") is not True:
        kind = None  # a reactivation: only the person's own "yes" may do that here
    address, stamp = text_of(item, address_field), iso_time(text_of(item, time_field))
    provider_id = text_of(item, "MessageID")
    if kind is None or address is None or stamp is None:
        return []
    event_id = item.get("ID") or f"{record_type}:{provider_id}:{address}:{stamp.isoformat()}"
    return [
        WebhookEvent(
            kind=kind,
            address=address,
            at=stamp,
            event_id=f"{record_type}:{event_id}",
            provider_id=provider_id,
            user_agent=text_of(item, "UserAgent"),
            ip=text_of(item, "Geo", "IP"),
            url=text_of(item, "OriginalLink"),
        )
    ]
