"""Brevo's transactional webhooks: one JSON object per request, ``event`` naming what
happened (``delivered``, ``opened``, ``proxy_open``, ``click``, ``hard_bounce``...).
Brevo signs nothing; the webhook carries ``web.brevo_token`` as a Bearer token or as the
Basic auth password of its URL."""

from __future__ import annotations

from winback.domain import EventType
from winback.web.webhooks.common import (
    WebhookError,
    WebhookEvent,
    WebhookRequest,
    check_shared_secret,
    epoch_time,
    read_json,
    text_of,
)
from winback.workspace import Workspace

# request, deferred, blocked and error are about our sending, not about the person.
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
    "unsubscribed": EventType.UNSUBSCRIBE,
}
_PROXY_OPENS = {"proxy_open", "unique_proxy_open"}


def parse(workspace: Workspace, request: WebhookRequest) -> list[WebhookEvent]:
    check_shared_secret(request, workspace.config.web.brevo_token, "brevo_token")
    item = read_json(request.body)
    if not isinstance(item, dict):
        raise WebhookError("a Brevo webhook is one JSON object")
    name = str(text_of(item, "event"))
    kind, address = _KINDS.get(name), text_of(item, "email")
    # ts_event is in seconds, ts_epoch in milliseconds (seconds in some examples), both
    # UTC; ``date`` is in the account's local time, so it is not read.
    stamp = epoch_time(item.get("ts_event"))
    epoch = item.get("ts_epoch")
    if stamp is None and isinstance(epoch, int | float):
        stamp = epoch_time(epoch / 1000 if epoch > 10**11 else epoch)
    if kind is None or address is None or stamp is None:
        return []
    message_id = text_of(item, "message-id")
    link = text_of(item, "link")
    return [
        WebhookEvent(
            kind=kind,
            address=address,
            at=stamp,
            # Brevo gives no event id: the event, message, address, time and link are one.
            event_id=f"{name}:{message_id}:{address}:{stamp.isoformat()}:{link}",
            message_id=message_id,
            machine_open=(name in _PROXY_OPENS) if kind == EventType.OPEN else None,
            user_agent=text_of(item, "user_agent"),
            ip=text_of(item, "ip"),
            url=link,
        )
    ]
