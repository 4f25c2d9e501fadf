"""What the ESP webhook parsers share: the changes they read, the errors the web app
turns into status codes, and the checks every request passes before it is interpreted
(a JSON body of bounded depth, a fresh signature, times in range)."""

from __future__ import annotations

import base64
import binascii
import hmac
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from winback.domain import EventType
from winback.errors import WinbackError
from winback.workspace import Workspace

# The times a webhook may carry: an event before 2000 or from 2100 on is a broken or
# hostile value (``1e20``, ``NaN``, year 9999), refused with 400 before it reaches the store.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class WebhookError(WinbackError):
    """A webhook request refused; ``status`` is the HTTP answer."""

    status = 400


class BadSignature(WebhookError):
    """Not signed, signed by another key, signed too long ago, or signed before (a
    replay)."""

    status = 401


class NotConfigured(WebhookError):
    status = 404


@dataclass(frozen=True)
class WebhookEvent:
    """One event as a provider reports it, before it is matched to our store."""

    kind: EventType
    address: str
    at: datetime  # aware UTC
    event_id: str  # the provider's id of the event, or the fields that make it unique
    message_id: str | None = None  # the Message-ID header
    provider_id: str | None = None  # the provider's id of the message
    machine_open: bool | None = None
    user_agent: str | None = None
    ip: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class TopicLeft:
    """The person left one topic (SendGrid's unsubscribe group), not every message."""

    address: str
    topic: str
    at: datetime


@dataclass(frozen=True)
class Reactivation:
    """The sender took a bounced address off the provider's suppressions (Postmark's
    ``SuppressSending: false`` by the customer): the address is deliverable again."""

    address: str
    at: datetime


Change = WebhookEvent | TopicLeft | Reactivation


@dataclass
class Delivery:
    """What a verified request (or one record of a payload file) brings: its changes,
    what it carried that we could not use (``warnings``), and, for Mailgun, the
    signature token to take with this body only (:class:`Verified`)."""

    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    verified: Verified | None = None

    def extend(self, other: Delivery) -> None:
        self.changes.extend(other.changes)
        self.warnings.extend(other.warnings)


@dataclass
class WebhookResult:
    received: int = 0
    recorded: int = 0
    duplicates: int = 0
    unmatched: int = 0
    topics_left: int = 0
    reactivated: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WebhookRequest:
    """What a parser sees of the HTTP request: headers (lower-case names), raw body, and
    when the server received it (the freshness window is counted from there)."""

    headers: Mapping[str, str]
    body: bytes
    received_at: datetime


@dataclass(frozen=True)
class Verified:
    """A request's JSON payload once its signature (or secret) is checked and fresh, and
    the signature token to take with this body (its ``digest``) only, until
    ``token_expires`` (Mailgun)."""

    payload: Any
    token: str | None = None
    digest: str = ""
    token_expires: datetime | None = None


# A provider's verification against the workspace's ``[web]`` settings: nothing is read
# from the payload before it but what the signature needs.
Verifier = Callable[[Workspace, WebhookRequest], Verified]
# A provider's reading of one of its records (an event object), a request's or a file's.
Reader = Callable[[Workspace, Any], Delivery]


def read_json(body: bytes | str) -> Any:
    """The JSON document of a webhook body; :class:`WebhookError` (400) when it is not,
    or nests deeper than 1,024 levels (orjson's limit: no recursion runs out first)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise WebhookError("the body is not a JSON document") from None


def field_of(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]...``, or None where the path stops."""
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def text_of(data: Any, *path: str) -> str | None:
    value = field_of(data, *path)
    return value if isinstance(value, str) and value else None


def in_range(moment: datetime, what: str) -> datetime:
    """``moment`` when it lies between :data:`EARLIEST` and :data:`LATEST`; else
    :class:`WebhookError` (400) naming ``what``."""
    if not EARLIEST <= moment < LATEST:
        raise WebhookError(f"{what} {moment.isoformat()} is out of range")
    return moment


def epoch_time(value: Any, what: str = "the time") -> datetime | None:
    """A Unix time in seconds (a JSON number) as aware UTC; None when it is not a number,
    :class:`WebhookError` (400) when it is one out of range (``1e20``, ``NaN``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not EARLIEST.timestamp() <= value < LATEST.timestamp():
        raise WebhookError(f"{what} {value!r} is out of range")
    return datetime.fromtimestamp(value, UTC)


def iso_time(text: str | None, what: str = "the time") -> datetime | None:
    """An ISO 8601 time (``Z``, an offset, or none for UTC; any number of decimals) as
    aware UTC; None when it is missing or unreadable, :class:`WebhookError` (400) when it
    is out of range (year 9999)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
        moment = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return in_range(moment, what)


def fresh_epoch(text: str, request: WebhookRequest, max_age: timedelta, what: str) -> datetime:
    """A signature's Unix time given as text (Mailgun's, SendGrid's header), checked by
    :func:`check_fresh`; :class:`WebhookError` (400) when it is no number in range."""
    try:
        seconds = float(text)
    except ValueError:
        raise WebhookError(f"{what} {text[:40]!r} is not a number") from None
    signed_at = epoch_time(seconds, what)
    assert signed_at is not None  # a float is a number
    return check_fresh(signed_at, request, max_age)


def check_fresh(signed_at: datetime, request: WebhookRequest, max_age: timedelta) -> datetime:
    """``signed_at`` when it is within ``max_age`` of the request's arrival (either way:
    clocks drift); :class:`BadSignature` otherwise, so a captured request cannot be played
    later. Returns when the signature stops being fresh."""
    if abs(request.received_at - signed_at) > max_age:
        raise BadSignature(
            f"the signature's time {signed_at.isoformat()} is not within web.webhook_max_age "
            f"of the server's clock"
        )
    return signed_at + max_age


def configured(value: str | None, key: str) -> str:
    """``value``, the setting ``web.<key>`` a provider's verification needs;
    :class:`NotConfigured` (404) while it is not set: that provider's webhook is off."""
    if not value:
        raise NotConfigured(f"this webhook is off: set web.{key} in winback.toml")
    return value


def check_shared_secret(request: WebhookRequest, secret: str | None, key: str) -> None:
    """Postmark and Brevo sign nothing: their webhook URLs carry the secret ``web.<key>``
    instead, as the HTTP Basic password (``https://user:SECRET@host/webhooks/postmark``)
    or a Bearer token."""
    secret = configured(secret, key)
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    given = ""
    if scheme.lower() == "bearer":
        given = credentials.strip()
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        given = decoded.partition(":")[2]
    if not given or not hmac.compare_digest(given.encode(), secret.encode()):
        raise BadSignature("missing or wrong webhook credentials")
