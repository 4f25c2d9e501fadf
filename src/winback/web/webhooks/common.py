"""What the ESP webhook parsers share: the event they produce, the errors the web
app turns into status codes, and the recording of verified events in the store."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from winback.addresses import normalise_address
from winback.clock import to_db
from winback.domain import EventType
from winback.errors import WinbackError
from winback.store.contacts import contacts_by_address, dedup_key
from winback.web.events import find_messages, record_events, stored_user_agent
from winback.workspace import Workspace


class WebhookError(WinbackError):
    """A webhook request refused; ``status`` is the HTTP answer."""

    status = 400


class BadSignature(WebhookError):
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


@dataclass
class WebhookResult:
    received: int = 0
    recorded: int = 0
    duplicates: int = 0
    unmatched: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WebhookRequest:
    """What a parser sees of the HTTP request: headers (lower-case names) and raw body."""

    headers: Mapping[str, str]
    body: bytes


# A provider's parser: verifies the request against the workspace's ``[web]`` secrets,
# then reads its events.
Parser = Callable[[Workspace, WebhookRequest], list[WebhookEvent]]


def record_webhook(
    connection: Connection,
    workspace: Workspace,
    provider: str,
    received: Sequence[WebhookEvent],
    now: datetime,
) -> WebhookResult:
    """Store a verified delivery's events: each matched to its outbox message and to its
    contact (by the message, else by address); an event for an address we do not know is
    counted as unmatched and not stored, but a refusal among them still suppresses the
    address."""
    result = WebhookResult(received=len(received))
    region = workspace.config.workspace.default_region
    addresses: dict[str, str | None] = {}
    for event in received:
        try:
            addresses[event.address] = normalise_address(event.address, region)
        except ValueError:
            addresses[event.address] = None
    known = contacts_by_address(connection, {a for a in addresses.values() if a}, ())
    contact_ids = {row["email"]: row["id"] for row in known}
    messages = find_messages(
        connection,
        (event.message_id for event in received if event.message_id),
        (event.provider_id for event in received if event.provider_id),
    )
    rows = []
    strays = []
    for event in received:
        message = messages.get(event.message_id or "") or messages.get(event.provider_id or "")
        address = addresses[event.address]
        contact_id = contact_ids.get(address) if address else None
        if message is not None and (contact_id is None or contact_id == message.contact_id):
            contact_id = message.contact_id
        else:
            message = None
        if contact_id is None:
            result.unmatched += 1
            if address:
                strays.append(
                    {
                        "address": address,
                        "type": event.kind.value,
                        "channel": "email",
                        "occurred_at": to_db(event.at),
                    }
                )
            continue
        rows.append(
            {
                "contact_id": contact_id,
                "type": event.kind.value,
                "channel": "email",
                "occurred_at": to_db(event.at),
                "campaign": message.journey if message else None,
                "message_id": event.message_id,
                "machine_open": event.machine_open,
                "user_agent": stored_user_agent(event.user_agent),
                "url": event.url,
                "ip": event.ip,
                "outbox_id": message.outbox_id if message else None,
                "source": f"webhook:{provider}",
                "dedup_key": dedup_key(provider, event.event_id, event.kind.value),
            }
        )
    result.recorded = record_events(
        connection, workspace, rows, now=now, actor=f"webhook:{provider}", strays=strays
    )
    result.duplicates = len(rows) - result.recorded
    return result


def read_json(body: bytes) -> Any:
    """The JSON document of a webhook body; :class:`WebhookError` (400) when it is not."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
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


def epoch_time(value: Any) -> datetime | None:
    """A Unix time in seconds (a JSON number) as aware UTC; None when it is not a number."""
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else None


def iso_time(text: str | None) -> datetime | None:
    """An ISO 8601 time (``Z``, an offset, or none for UTC; any number of decimals) as
    aware UTC; None when it is missing or unreadable."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)


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
