"""Brevo's webhooks, transactional and marketing alike: one JSON object per request,
``event`` naming what happened (``delivered``, ``opened``, ``proxy_open``, ``click``,
``hard_bounce``..., ``unsubscribed`` for transactional messages and ``unsubscribe`` for
campaigns). Brevo signs nothing; the webhook carries ``web.brevo_token`` as a Bearer
token or as the Basic auth password of its URL."""

from __future__ import annotations

from typing import Any

from winback.domain import EventType
from winback.web.webhooks.base import (
    Delivery,
    Verified,
    WebhookError,
    WebhookEvent,
    WebhookRequest,
    check_shared_secret,
    epoch_time,
    field_of,
    read_json,
    text_of,
)
from winback.workspace import Workspace

# request, deferred, blocked and error are about our sending, not about the person;
# list_addition is the sender's own doing.
_KINDS = {
    "delivered": EventType.DELIVERED,
    "opened": EventType.OPEN,
    "unique_opened": EventType.OPEN,
    "proxy_open": EventType.OPEN,
    "unique_proxy_open": EventType.OPEN,
    "click": EventType.CLICK,
    "hard_bounce": EventType.BOUNCE_HARD,
    "invalid_email": EventType.BOUNCE_HARD,
    "soft_bounce": EventType.BOUNCE_SOFT,
    "spam": EventType.COMPLAINT,
    "unsubscribed": EventType.UNSUBSCRIBE,  # transactional
    "unsubscribe": EventType.UNSUBSCRIBE,  # marketing
}
_PROXY_OPENS = {"proxy_open", "unique_proxy_open"}


def verify(workspace: Workspace, request: WebhookRequest) -> Verified:
    check_shared_secret(request, workspace.config.web.brevo_token, "brevo_token")
    return Verified(read_json(request.body))


def records(payload: Any) -> list[Any]:
    if not isinstance(payload, dict):
        raise WebhookError("a Brevo webhook is one JSON object")
    return [payload]


def read(workspace: Workspace, item: Any) -> Delivery:
    name = str(text_of(item, "event"))
    kind, address = _KINDS.get(name), text_of(item, "email")
    # ts_event is in seconds, ts_epoch in milliseconds (seconds in some examples), both
    # UTC; ``date`` is in the account's local time, so it is not read.
    stamp = epoch_time(field_of(item, "ts_event"), "ts_event")
    epoch = field_of(item, "ts_epoch")
    if stamp is None and isinstance(epoch, int | float) and not isinstance(epoch, bool):
        stamp = epoch_time(epoch / 1000 if epoch > 10**11 else epoch, "ts_epoch")
    if kind is None or address is None or stamp is None:
        return Delivery()
    message_id = text_of(item, "message-id")
    link = text_of(item, "link")
    # Brevo gives no event id: the event, message (or campaign), address, time and link
    # make one.
    campaign = field_of(item, "camp_id")
    message = message_id if message_id or campaign is None else f"campaign {campaign}"
    event = WebhookEvent(
        kind=kind,
        address=address,
        at=stamp,
        event_id=f"{name}:{message}:{address}:{stamp.isoformat()}:{link}",
        message_id=message_id,
        machine_open=(name in _PROXY_OPENS) if kind == EventType.OPEN else None,
        user_agent=text_of(item, "user_agent"),
        ip=text_of(item, "ip"),
        url=link,
    )
    return Delivery([event])
