"""The providers' webhook requests, as their documentation shows them, signed with keys
made here (an ECDSA key standing for SendGrid's, an RSA certificate standing for the SNS
topic's); every address is @example.com."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from tests.web.conftest import NOW, Site
from winback.web.webhooks.ses import string_to_sign

MAILGUN_KEY = "key-7f3a9c0e5b2d4a61"
POSTMARK_TOKEN = "pm-webhook-secret"
BREVO_TOKEN = "brevo-webhook-secret"
MESSAGE = "<20250602100000.1@news.example.com>"
# The SendGrid unsubscribe group of the newsletter (web.sendgrid_groups maps it to "news").
NEWS_GROUP = 4821
SENT = NOW - timedelta(hours=2)
EVENT_TIME = int((NOW - timedelta(hours=1)).timestamp())


class Keys:
    """The signing keys the fake providers hold."""

    def __init__(self) -> None:
        self.sendgrid = ec.generate_private_key(ec.SECP256R1())
        self.sns = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.sns.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(datetime(2025, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2035, 1, 1, tzinfo=UTC))
            .sign(self.sns, hashes.SHA256())
        )

    @property
    def sendgrid_public(self) -> str:
        der = self.sendgrid.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode("ascii")


# -- the providers, as their documentation shows them ---------------------------------


def sendgrid(
    keys: Keys,
    events: Any,
    *,
    key: Any = None,
    timestamp: str = str(EVENT_TIME + 5),
    body: bytes | None = None,
) -> dict[str, Any]:
    body = json.dumps(events).encode() if body is None else body
    signature = (key or keys.sendgrid).sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "content": body,
        "headers": {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        },
    }


def sendgrid_events() -> list[dict[str, Any]]:
    common = {"timestamp": EVENT_TIME, "smtp-id": MESSAGE, "category": ["winback"]}
    dave = {**common, "email": "dave@example.com", "sg_message_id": "prov-1.filter0001.16648.0"}
    return [
        {**dave, "event": "processed", "sg_event_id": "cHJvY2Vzc2Vk"},
        {**dave, "event": "delivered", "sg_event_id": "ZGVsaXZlcmVk", "response": "250 OK"},
        {**dave, "event": "open", "sg_event_id": "b3Blbi0x", "sg_machine_open": True,
         "useragent": "Mozilla/5.0", "ip": "17.58.0.1"},
        {**dave, "event": "open", "sg_event_id": "b3Blbi0y", "sg_machine_open": False,
         "useragent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "ip": "203.0.113.9"},
        {**dave, "event": "click", "sg_event_id": "Y2xpY2s", "url": "https://shop.example.com/"},
        {"email": "erin@example.com", "timestamp": EVENT_TIME, "event": "bounce",
         "type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 unknown user",
         "sg_event_id": "Ym91bmNl"},
        {"email": "nobody@example.com", "timestamp": EVENT_TIME, "event": "delivered",
         "sg_event_id": "dW5rbm93bg"},
    ]  # fmt: skip


def mailgun(
    event_data: dict[str, Any],
    *,
    key: str = MAILGUN_KEY,
    timestamp: str = str(EVENT_TIME),
    token: str | None = None,
) -> dict[str, Any]:
    """A Mailgun request as Mailgun signs it: each with a new token, as Mailgun's are."""
    token = token or secrets.token_hex(25)
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    payload = {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    }
    return {"json": payload}


def mailgun_event(event: str, **extra: Any) -> dict[str, Any]:
    return {
        "event": event,
        "id": f"mg-{event}-{extra.get('severity', '')}",
        "timestamp": EVENT_TIME + 0.329574,
        "recipient": "dave@example.com",
        "message": {"headers": {"message-id": MESSAGE.strip("<>")}},
        **extra,
    }


def basic(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"winback:{secret}".encode()).decode()}


def postmark_records() -> list[dict[str, Any]]:
    at = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.9070259Z")
    return [
        {"RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound",
         "MessageID": "prov-1", "Recipient": "dave@example.com", "DeliveredAt": at,
         "Details": "Test delivery webhook details"},
        {"RecordType": "Open", "FirstOpen": True, "Platform": "WebMail",
         "UserAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "ReadSeconds": 5,
         "Geo": {"IP": "188.2.95.4"}, "MessageID": "prov-1", "ReceivedAt": at,
         "Recipient": "dave@example.com"},
        {"RecordType": "Click", "ClickLocation": "HTML", "OriginalLink": "https://shop.example.com/",
         "MessageID": "prov-1", "ReceivedAt": at, "Recipient": "dave@example.com"},
        {"RecordType": "Bounce", "ID": 4323372036854775807, "Type": "HardBounce", "TypeCode": 1,
         "Name": "Hard bounce", "MessageID": "prov-2", "Email": "erin@example.com",
         "BouncedAt": at, "Inactive": True},
        {"RecordType": "SubscriptionChange", "MessageID": "prov-1", "ChangedAt": at,
         "Recipient": "dave@example.com", "Origin": "Recipient", "SuppressSending": True,
         "SuppressionReason": "ManualSuppression"},
    ]  # fmt: skip


def brevo_events() -> list[dict[str, Any]]:
    common = {"id": 1234, "date": "2025-06-02 11:00:00", "ts": EVENT_TIME - 60,
              "message-id": MESSAGE, "ts_event": EVENT_TIME, "subject": "We miss you",
              "sending_ip": "185.41.28.109", "ts_epoch": EVENT_TIME * 1000}  # fmt: skip
    return [
        {**common, "event": "delivered", "email": "dave@example.com"},
        {**common, "event": "proxy_open", "email": "dave@example.com"},
        {**common, "event": "opened", "email": "dave@example.com", "ts_event": EVENT_TIME + 60},
        {**common, "event": "click", "email": "dave@example.com", "link": "https://shop.example.com/"},
        {**common, "event": "spam", "email": "dave@example.com"},
        {**common, "event": "hard_bounce", "email": "erin@example.com", "message-id": "<x@y>",
         "reason": "unknown user"},
    ]  # fmt: skip


def sns(
    keys: Keys,
    message: dict[str, Any],
    *,
    version: str = "2",
    timestamp: str = "2025-06-02T09:00:01.655Z",
    **changes: Any,
) -> dict[str, Any]:
    """An SNS notification of ``message``, signed; ``changes`` are made after signing."""
    envelope = {
        "Type": "Notification",
        "MessageId": f"sns-{message.get('eventType') or message['notificationType']}",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-events",
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(message),
        "Timestamp": timestamp,
        "SignatureVersion": version,
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem",
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
    }
    algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
    signature = keys.sns.sign(string_to_sign(envelope), padding.PKCS1v15(), algorithm)
    envelope["Signature"] = base64.b64encode(signature).decode()
    envelope.update(changes)
    return {
        "content": json.dumps(envelope).encode(),
        "headers": {"Content-Type": "text/plain; charset=UTF-8",
                    "x-amz-sns-message-type": envelope["Type"]},
    }  # fmt: skip


def ses_event(kind: str, **body: Any) -> dict[str, Any]:
    mail = {
        "timestamp": "2025-06-02T08:00:02.012Z",
        "source": "Boutique <news@example.com>",
        "messageId": "prov-1",
        "destination": ["dave@example.com"],
        "commonHeaders": {"messageId": MESSAGE, "subject": "We miss you"},
    }
    return {"eventType": kind, "mail": mail, **body}


def summary(site: Site) -> list[tuple[Any, ...]]:
    return sorted(
        (e["type"], e["contact_id"], e["machine_open"], e["outbox_id"] is not None, e["url"])
        for e in site.events()
    )


async def post(site: Site, provider: str, request: dict[str, Any]) -> httpx.Response:
    return await site.client.post(f"/webhooks/{provider}", **request)
