"""The words of the domain, as values shared by every part (see DESIGN.md)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

#: The business profiles: each sets the policy thresholds ``winback init`` writes.
Profile = Literal["ecommerce", "retail", "travel", "subscription", "newsletter"]


class EventType(StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    OPEN = "open"
    CLICK = "click"
    PURCHASE = "purchase"
    VISIT = "visit"
    LOGIN = "login"
    REPLY = "reply"
    UNSUBSCRIBE = "unsubscribe"
    BOUNCE_HARD = "bounce_hard"
    BOUNCE_SOFT = "bounce_soft"
    COMPLAINT = "complaint"


class Channel(StrEnum):
    """Where an event happened. Only email and sms are channels we send on."""

    EMAIL = "email"
    SMS = "sms"
    WEB = "web"
    APP = "app"
    STORE = "store"


SENDING_CHANNELS = (Channel.EMAIL, Channel.SMS)


class ChannelStatus(StrEnum):
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    NONE = "none"


# A "no" from the person (or their mailbox) is final: only the person turns it back.
REFUSED_STATUSES = frozenset(
    {ChannelStatus.UNSUBSCRIBED, ChannelStatus.BOUNCED, ChannelStatus.COMPLAINED}
)


class Stage(StrEnum):
    PROSPECT = "prospect"
    ACTIVE = "active"
    AT_RISK = "at_risk"
    DORMANT = "dormant"
    LOST = "lost"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


# Events that prove a person is alive. An open counts only when it is not a machine open.
INTERACTIONS = frozenset(
    {
        EventType.OPEN,
        EventType.CLICK,
        EventType.PURCHASE,
        EventType.VISIT,
        EventType.LOGIN,
        EventType.REPLY,
    }
)


def merge_status(current: ChannelStatus, incoming: ChannelStatus) -> ChannelStatus:
    """The status a channel gets when an import brings ``incoming`` for an address whose
    status is ``current``. A newer refusal wins; an import never turns a refusal back into
    a subscription, and never forgets an address it knew about.

    >>> merge_status(ChannelStatus.UNSUBSCRIBED, ChannelStatus.SUBSCRIBED)
    <ChannelStatus.UNSUBSCRIBED: 'unsubscribed'>
    """
    if incoming in REFUSED_STATUSES:
        return incoming
    if current in REFUSED_STATUSES or incoming == ChannelStatus.NONE:
        return current
    return incoming


class SuppressionReason(StrEnum):
    """Why an address is on the suppression list (the first reason stays)."""

    UNSUBSCRIBE = "unsubscribe"
    BOUNCE_HARD = "bounce_hard"
    BOUNCE_SOFT = "bounce_soft"
    COMPLAINT = "complaint"
    SUNSET = "sunset"
    ERASED = "erased"
    MANUAL = "manual"
