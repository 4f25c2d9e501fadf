"""Amazon SES events through an SNS topic's HTTP subscription.

SNS posts a JSON envelope (sent as ``text/plain``) whose ``Message`` is the SES event,
signed with RSA (SHA1 for ``SignatureVersion`` 1, SHA256 for 2) over the envelope's
fields in a fixed order. The signature is verified against the certificate in
``web.ses_certificate`` (a PEM file, a path relative to the workspace): the server never
fetches the ``SigningCertURL`` a request names, so a forged request cannot bring its own
key; its ``Timestamp`` must be within ``web.webhook_max_age`` of the server's clock. A
verified ``SubscriptionConfirmation`` is logged with its ``SubscribeURL``, to be visited
once by the person setting the subscription up: it is never an event.

The SES event is read in both of its forms: event publishing (``eventType``) and the
older notifications (``notificationType``); each recipient of a bounce or a complaint is
one event. A payload file may hold the SNS envelopes or the SES events alone.
"""

from __future__ import annotations

import base64
import binascii
import logging
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from winback.domain import EventType
from winback.errors import ConfigError
from winback.web.webhooks.base import (
    BadSignature,
    Change,
    Delivery,
    Verified,
    WebhookError,
    WebhookEvent,
    WebhookRequest,
    check_fresh,
    configured,
    field_of,
    iso_time,
    read_json,
    text_of,
)
from winback.workspace import Workspace

log = logging.getLogger("winback.web")

# The fields signed, in order, per SNS message type (Subject only when present).
_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNED["UnsubscribeConfirmation"] = _SIGNED["SubscriptionConfirmation"]
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


@lru_cache(maxsize=4)
def _certificate_key(path: Path) -> rsa.RSAPublicKey:
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"web.ses_certificate: {path} does not exist") from None
    except ValueError:
        raise ConfigError(f"web.ses_certificate: {path} is not a PEM certificate") from None
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError(f"web.ses_certificate: {path} does not hold an RSA key")
    return key


def string_to_sign(envelope: dict[str, Any]) -> bytes:
    """The text SNS signs: ``name\\nvalue\\n`` for each signed field present."""
    kind = envelope.get("Type")
    if not isinstance(kind, str) or kind not in _SIGNED:
        raise WebhookError(f"unknown SNS message type {kind!r}")
    parts = []
    for name in _SIGNED[kind]:
        value = envelope.get(name)
        if value is None and name == "Subject":
            continue
        if not isinstance(value, str):
            raise WebhookError(f"the SNS message has no {name}")
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode("utf-8")


def verify_signature(key: rsa.RSAPublicKey, envelope: dict[str, Any]) -> None:
    algorithm = _HASHES.get(str(envelope.get("SignatureVersion")))
    signature = envelope.get("Signature")
    if algorithm is None or not isinstance(signature, str):
        raise BadSignature("the SNS message is not signed (no Signature or SignatureVersion)")
    try:
        key.verify(
            base64.b64decode(signature),
            string_to_sign(envelope),
            padding.PKCS1v15(),
            algorithm(),
        )
    except (binascii.Error, ValueError, InvalidSignature):
        raise BadSignature("the SNS signature does not match the configured certificate") from None


def verify(workspace: Workspace, request: WebhookRequest) -> Verified:
    certificate = configured(workspace.config.web.ses_certificate, "ses_certificate")
    envelope = read_json(request.body)
    if not isinstance(envelope, dict):
        raise WebhookError("an SNS message is one JSON object")
    verify_signature(_certificate_key(workspace.path / certificate), envelope)
    signed_at = iso_time(text_of(envelope, "Timestamp"), "the SNS Timestamp")
    if signed_at is None:
        raise WebhookError("the SNS message has no readable Timestamp")
    check_fresh(signed_at, request, workspace.config.web.webhook_max_age)
    if envelope["Type"] != "Notification":
        log.warning(
            "SNS %s for %s: visit %s to confirm it",
            envelope["Type"],
            envelope.get("TopicArn"),
            envelope.get("SubscribeURL"),
        )
    return Verified(envelope)


def records(payload: Any) -> list[Any]:
    """The SES event of an SNS envelope, with the envelope's ``MessageId`` (the event's
    id), or a file's record holding the SES event alone. A subscription's confirmation
    holds no event."""
    if not isinstance(payload, dict):
        raise WebhookError("an SNS message is one JSON object")
    kind = payload.get("Type")
    if kind is None:
        return [(None, payload)]
    if kind != "Notification":
        return []
    message = text_of(payload, "Message")
    event = read_json(message) if message else None
    if not isinstance(event, dict):
        raise WebhookError("the SNS Message is not an SES event (a JSON object)")
    return [(text_of(payload, "MessageId"), event)]


def read(workspace: Workspace, record: Any) -> Delivery:
    sns_id, event = record
    name = text_of(event, "eventType") or text_of(event, "notificationType")
    mail = field_of(event, "mail")
    message_id = text_of(mail, "commonHeaders", "messageId")
    provider_id = text_of(mail, "messageId")
    # Without its envelope (a file of SES events), the event's id is its message's.
    event_key = sns_id or f"{provider_id}:{name}"
    found: list[Change] = []

    def add(kind: EventType, recipient: Any, at: str | None, **extra: Any) -> None:
        address = parseaddr(recipient)[1] if isinstance(recipient, str) else ""
        stamp = iso_time(at, f"{name} timestamp") or iso_time(
            text_of(mail, "timestamp"), "mail.timestamp"
        )
        if address and stamp is not None:
            found.append(
                WebhookEvent(
                    kind=kind,
                    address=address,
                    at=stamp,
                    event_id=f"{event_key}:{address}",
                    message_id=message_id,
                    provider_id=provider_id,
                    **extra,
                )
            )

    if name == "Bounce":
        bounce = field_of(event, "bounce")
        permanent = text_of(bounce, "bounceType") == "Permanent"
        kind = EventType.BOUNCE_HARD if permanent else EventType.BOUNCE_SOFT
        for recipient in _list(field_of(bounce, "bouncedRecipients")):
            add(kind, field_of(recipient, "emailAddress"), text_of(bounce, "timestamp"))
    elif name == "Complaint":
        complaint = field_of(event, "complaint")
        for recipient in _list(field_of(complaint, "complainedRecipients")):
            add(
                EventType.COMPLAINT,
                field_of(recipient, "emailAddress"),
                text_of(complaint, "timestamp"),
            )
    elif name == "Delivery":
        delivery = field_of(event, "delivery")
        for address in _list(field_of(delivery, "recipients")):
            add(EventType.DELIVERED, address, text_of(delivery, "timestamp"))
    elif name in ("Open", "Click"):
        hit = field_of(event, name.lower())
        for address in _list(field_of(mail, "destination")):
            add(
                EventType.OPEN if name == "Open" else EventType.CLICK,
                address,
                text_of(hit, "timestamp"),
                user_agent=text_of(hit, "userAgent"),
                ip=text_of(hit, "ipAddress"),
                url=text_of(hit, "link"),
            )
    return Delivery(found)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
