"""Postmark's webhooks: one JSON object per request whose ``RecordType`` says what it is
(Delivery, Bounce, SpamComplaint, Open, Click, SubscriptionChange). Postmark signs
nothing; the webhook URL carries ``web.postmark_token`` as its Basic auth password.

A ``SubscriptionChange`` that suppresses keeps its reason: ``HardBounce`` is a hard
bounce, ``SpamComplaint`` a complaint, ``ManualSuppression`` (the recipient's
unsubscribe link, or the sender's hand) an unsubscribe. One that stops suppressing
(``SuppressSending: false``: the sender reactivated the address in Postmark) lifts the
address's bounce suppression here too; never an unsubscribe or a complaint.
"""

from __future__ import annotations

from typing import Any

from winback.domain import EventType
from winback.web.webhooks.base import (
    Delivery,
    Reactivation,
    Verified,
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
# Why Postmark suppressed an address; an unknown reason is taken as an unsubscribe.
_SUPPRESSIONS = {
    "HardBounce": EventType.BOUNCE_HARD,
    "SpamComplaint": EventType.COMPLAINT,
    "ManualSuppression": EventType.UNSUBSCRIBE,
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


def verify(workspace: Workspace, request: WebhookRequest) -> Verified:
    check_shared_secret(request, workspace.config.web.postmark_token, "postmark_token")
    return Verified(read_json(request.body))


def records(payload: Any) -> list[Any]:
    if not isinstance(payload, dict):
        raise WebhookError("a Postmark webhook is one JSON object")
    return [payload]


def read(workspace: Workspace, item: Any) -> Delivery:
    record_type = str(text_of(item, "RecordType"))
    if record_type not in _FIELDS:
        return Delivery()
    kind, address_field, time_field = _FIELDS[record_type]
    address = text_of(item, address_field)
    stamp = iso_time(text_of(item, time_field), time_field)
    if address is None or stamp is None:
        return Delivery()
    if record_type == "Bounce":
        kind = _BOUNCES.get(str(text_of(item, "Type")))
    elif record_type == "SubscriptionChange":
        suppress = item.get("SuppressSending")
        if suppress is False:
            return Delivery([Reactivation(address=address, at=stamp)])
        if suppress is not True:
            return Delivery()
        kind = _SUPPRESSIONS.get(str(text_of(item, "SuppressionReason")), EventType.UNSUBSCRIBE)
    if kind is None:
        return Delivery()
    provider_id = text_of(item, "MessageID")
    event_id = item.get("ID") or f"{provider_id}:{address}:{stamp.isoformat()}"
    event = WebhookEvent(
        kind=kind,
        address=address,
        at=stamp,
        event_id=f"{record_type}:{event_id}",
        provider_id=provider_id,
        user_agent=text_of(item, "UserAgent"),
        ip=text_of(item, "Geo", "IP"),
        url=text_of(item, "OriginalLink"),
    )
    return Delivery([event])
