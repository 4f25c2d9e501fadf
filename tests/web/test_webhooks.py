"""ESP webhooks: each provider's documented payload becomes our events, signatures are
checked (bad: 401, nothing recorded), a repeated delivery is recorded once, and bodies
that are too large, of the wrong type or not JSON are refused. On SQLite and PostgreSQL.

The payloads follow the providers' documentation; the keys are made here (an ECDSA key
standing for SendGrid's, an RSA certificate standing for the SNS topic's)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from tests.builders import add_contact, day
from tests.web.conftest import IPHONE_SAFARI, NOW, Site, open_site, sent_message
from winback.compliance.suppression import is_suppressed
from winback.web.webhooks.ses import string_to_sign
from winback.workspace import Workspace

pytestmark = pytest.mark.anyio

MAILGUN_KEY = "key-7f3a9c0e5b2d4a61"
POSTMARK_TOKEN = "pm-webhook-secret"
BREVO_TOKEN = "brevo-webhook-secret"
MESSAGE = "<20250602100000.1@news.example.com>"
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


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture
def workspace(workspace: Workspace, keys: Keys) -> Workspace:
    """The backend's workspace with every webhook configured."""
    (workspace.path / "sns.pem").write_bytes(
        keys.certificate.public_bytes(serialization.Encoding.PEM)
    )
    config = workspace.path / "winback.toml"
    text = config.read_text(encoding="utf-8").replace(
        "[web]\n",
        "[web]\n"
        f'mailgun_signing_key = "{MAILGUN_KEY}"\n'
        f'sendgrid_public_key = "{keys.sendgrid_public}"\n'
        'ses_certificate = "sns.pem"\n'
        f'postmark_token = "{POSTMARK_TOKEN}"\n'
        f'brevo_token = "{BREVO_TOKEN}"\n',
    )
    config.write_text(text, encoding="utf-8")
    opened = Workspace.open(workspace.path)
    yield opened
    opened.close()


@pytest.fixture
def people(site: Site) -> dict[str, int]:
    """dave received MESSAGE (provider id ``prov-1``); erin is known by address only."""
    with site.workspace.engine.begin() as c:
        dave = add_contact(c, email="dave@example.com", created_at=day(2024, 1, 5))
        erin = add_contact(c, email="erin@example.com", created_at=day(2024, 1, 5))
        sent_message(c, dave, MESSAGE, sent_at=SENT, provider_id="prov-1")
    return {"dave": dave, "erin": erin}


# -- the providers, as their documentation shows them ---------------------------------


def sendgrid(keys: Keys, events: list[dict[str, Any]], *, key: Any = None) -> dict[str, Any]:
    body = json.dumps(events).encode()
    timestamp = str(EVENT_TIME + 5)
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
    keys: Keys, message: dict[str, Any], *, version: str = "2", **changes: Any
) -> dict[str, Any]:
    envelope = {
        "Type": "Notification",
        "MessageId": f"sns-{message.get('eventType') or message['notificationType']}",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-events",
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(message),
        "Timestamp": "2025-06-02T09:00:01.655Z",
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


# -- tests --------------------------------------------------------------------------------


async def test_sendgrid(site: Site, people: dict[str, int], keys: Keys) -> None:
    delivery = sendgrid(keys, sendgrid_events())
    answer = await post(site, "sendgrid", delivery)
    assert answer.status_code == 200
    assert answer.json() == {"received": 6, "recorded": 5, "duplicates": 0, "unmatched": 1,
                             "topics_left": 0, "reactivated": 0, "warnings": []}  # fmt: skip
    dave, erin = people["dave"], people["erin"]
    assert summary(site) == sorted([
        ("bounce_hard", erin, None, False, None),
        ("click", dave, None, True, "https://shop.example.com/"),
        ("delivered", dave, None, True, None),
        ("open", dave, False, True, None),
        ("open", dave, True, True, None),
    ])  # fmt: skip
    assert site.contact(erin)["email_status"] == "bounced"
    with site.workspace.engine.connect() as c:
        assert is_suppressed(c, site.workspace, "email", "erin@example.com")
    again = await post(site, "sendgrid", delivery)
    assert again.json()["duplicates"] == 5
    assert len(site.events()) == 5


async def test_sendgrid_refuses_what_it_did_not_sign(
    site: Site, people: dict[str, int], keys: Keys
) -> None:
    delivery = sendgrid(keys, sendgrid_events())
    tampered = {**delivery, "content": delivery["content"].replace(b"erin", b"dave")}
    other_key = sendgrid(keys, sendgrid_events(), key=ec.generate_private_key(ec.SECP256R1()))
    unsigned = {"content": delivery["content"], "headers": {"Content-Type": "application/json"}}
    for request in (tampered, other_key, unsigned):
        assert (await post(site, "sendgrid", request)).status_code == 401
    await site.settled()
    assert site.events() == []


async def test_mailgun(site: Site, people: dict[str, int]) -> None:
    for event in (
        mailgun_event("delivered"),
        mailgun_event(
            "opened", **{"client-info": {"user-agent": "Mozilla/5.0"}, "ip": "17.58.1.1"}
        ),
        mailgun_event("clicked", url="https://shop.example.com/"),
        mailgun_event("failed", severity="temporary", reason="generic"),
        mailgun_event("accepted"),
    ):
        answer = await post(site, "mailgun", mailgun(event))
        assert answer.status_code == 200
    dave = people["dave"]
    assert summary(site) == sorted([
        ("bounce_soft", dave, None, True, None),
        ("click", dave, None, True, "https://shop.example.com/"),
        ("delivered", dave, None, True, None),
        ("open", dave, None, True, None),
    ])  # fmt: skip
    assert site.contact(dave)["email_status"] == "subscribed"  # a soft bounce is no refusal
    hard = mailgun(mailgun_event("failed", severity="permanent", reason="bounce"))
    for _ in range(2):
        assert (await post(site, "mailgun", hard)).status_code == 200
    assert [e["type"] for e in site.events(type="bounce_hard")] == ["bounce_hard"]
    assert site.contact(dave)["email_status"] == "bounced"


async def test_mailgun_refuses_a_bad_signature(site: Site, people: dict[str, int]) -> None:
    forged = mailgun(mailgun_event("complained"), key="key-guessed")
    unsigned = {"json": {"event-data": mailgun_event("complained")}}
    delivered = mailgun(mailgun_event("delivered"))
    replayed = mailgun(mailgun_event("delivered"))
    replayed["json"] = {**delivered["json"], "event-data": mailgun_event("complained")}
    for request in (forged, unsigned):
        assert (await post(site, "mailgun", request)).status_code == 401
    assert (await post(site, "mailgun", delivered)).status_code == 200
    # Mailgun signs the timestamp and token only: a captured signature with another
    # event verifies, so each token is taken once.
    answer = await post(site, "mailgun", replayed)
    assert answer.status_code == 401
    assert "used already" in answer.json()["error"]
    assert site.contact(people["dave"])["email_status"] == "subscribed"
    assert [e["type"] for e in site.events()] == ["delivered"]


async def test_postmark(site: Site, people: dict[str, int]) -> None:
    for record in postmark_records():
        answer = await post(site, "postmark", {"json": record, "headers": basic(POSTMARK_TOKEN)})
        assert answer.status_code == 200, answer.text
    dave, erin = people["dave"], people["erin"]
    assert summary(site) == sorted([
        ("bounce_hard", erin, None, False, None),
        ("click", dave, None, True, "https://shop.example.com/"),
        ("delivered", dave, None, True, None),
        ("open", dave, None, True, None),
        ("unsubscribe", dave, None, True, None),
    ])  # fmt: skip
    [delivered] = site.events(type="delivered")
    assert delivered["occurred_at"] == datetime(2025, 6, 2, 9, 0, 0, 907025)
    assert (site.contact(dave)["email_status"], site.contact(erin)["email_status"]) == (
        "unsubscribed",
        "bounced",
    )
    bearer = {"Authorization": f"Bearer {POSTMARK_TOKEN}"}
    again = await post(site, "postmark", {"json": postmark_records()[3], "headers": bearer})
    assert again.json()["duplicates"] == 1


async def test_postmark_and_brevo_need_their_secret(site: Site, people: dict[str, int]) -> None:
    for provider, record in (("postmark", postmark_records()[3]), ("brevo", brevo_events()[5])):
        for headers in ({}, basic("wrong"), {"Authorization": "Bearer wrong"},
                        {"Authorization": "Basic !!!"}):  # fmt: skip
            answer = await post(site, provider, {"json": record, "headers": headers})
            assert answer.status_code == 401, (provider, headers)
    await site.settled()
    assert site.events() == []


async def test_brevo(site: Site, people: dict[str, int]) -> None:
    bearer = {"Authorization": f"Bearer {BREVO_TOKEN}"}
    for event in brevo_events():
        answer = await post(site, "brevo", {"json": event, "headers": bearer})
        assert answer.status_code == 200
    dave, erin = people["dave"], people["erin"]
    assert summary(site) == sorted([
        ("bounce_hard", erin, None, False, None),
        ("click", dave, None, True, "https://shop.example.com/"),
        ("complaint", dave, None, True, None),
        ("delivered", dave, None, True, None),
        ("open", dave, False, True, None),
        ("open", dave, True, True, None),
    ])  # fmt: skip
    assert site.contact(dave)["email_status"] == "complained"
    repeat = await post(site, "brevo", {"json": brevo_events()[1], "headers": basic(BREVO_TOKEN)})
    assert repeat.json()["duplicates"] == 1


async def test_ses_through_sns(site: Site, people: dict[str, int], keys: Keys) -> None:
    bounce = ses_event("Bounce", bounce={
        "bounceType": "Permanent", "bounceSubType": "General",
        "bouncedRecipients": [{"emailAddress": "dave@example.com", "action": "failed",
                               "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1"}],
        "timestamp": "2025-06-02T09:00:00.669Z", "feedbackId": "0102017..."})  # fmt: skip
    delivery = ses_event("Delivery", delivery={
        "timestamp": "2025-06-02T08:00:03.000Z", "recipients": ["dave@example.com"],
        "processingTimeMillis": 546, "smtpResponse": "250 ok"})  # fmt: skip
    opened = ses_event("Open", open={
        "ipAddress": "192.0.2.1", "timestamp": "2025-06-02T08:30:00.000Z",
        "userAgent": IPHONE_SAFARI})  # fmt: skip
    # The older notification form: notificationType, and a message we do not know.
    complaint = ses_event("Complaint", complaint={
        "complainedRecipients": [{"emailAddress": "erin@example.com"}],
        "timestamp": "2025-06-02T09:10:00.000Z", "feedbackId": "0102"})  # fmt: skip
    complaint["notificationType"] = complaint.pop("eventType")
    complaint["mail"] = {**complaint["mail"], "messageId": "other", "commonHeaders": {}}
    for message, version in ((bounce, "2"), (delivery, "1"), (opened, "2"), (complaint, "2")):
        answer = await post(site, "ses", sns(keys, message, version=version))
        assert answer.status_code == 200, answer.text
    dave, erin = people["dave"], people["erin"]
    assert summary(site) == sorted([
        ("bounce_hard", dave, None, True, None),
        ("complaint", erin, None, False, None),
        ("delivered", dave, None, True, None),
        ("open", dave, None, True, None),
    ])  # fmt: skip
    assert site.contact(dave)["email_status"] == "bounced"
    assert site.contact(erin)["email_status"] == "complained"
    # SNS delivers at least once: the same notification again adds nothing.
    assert (await post(site, "ses", sns(keys, bounce))).json()["duplicates"] == 1


async def test_sns_signatures_are_checked_against_the_configured_certificate(
    site: Site, people: dict[str, int], keys: Keys
) -> None:
    bounce = ses_event("Bounce", bounce={
        "bounceType": "Permanent", "timestamp": "2025-06-02T09:00:00.669Z",
        "bouncedRecipients": [{"emailAddress": "dave@example.com"}]})  # fmt: skip
    stranger = Keys()
    forged = sns(stranger, bounce)  # a valid signature by a key that is not the topic's
    altered = sns(keys, bounce, Message=json.dumps({**bounce, "eventType": "Complaint"}))
    unsigned = sns(keys, bounce, Signature=None)
    old_version = sns(keys, bounce, SignatureVersion="3")
    confirmation = sns(keys, bounce, Type="SubscriptionConfirmation")  # signed as Notification
    for request in (forged, altered, unsigned, old_version):
        assert (await post(site, "ses", request)).status_code == 401
    assert (await post(site, "ses", confirmation)).status_code in (400, 401)
    await site.settled()
    assert site.events() == []
    assert site.contact(people["dave"])["email_status"] == "subscribed"


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun", "postmark", "ses", "brevo"])
async def test_bodies_too_large_of_the_wrong_type_or_not_json(
    site: Site, people: dict[str, int], provider: str
) -> None:
    auth = basic(POSTMARK_TOKEN if provider == "postmark" else BREVO_TOKEN)
    large = b"[" + b'{"event": "delivered"},' * 100_000 + b"{}]"
    answer = await site.client.post(
        f"/webhooks/{provider}", content=large, headers={"Content-Type": "application/json", **auth}
    )
    assert answer.status_code == 413
    for kind in ("application/x-www-form-urlencoded", "text/html", ""):
        answer = await site.client.post(
            f"/webhooks/{provider}",
            content=b"event=delivered",
            headers={"Content-Type": kind, **auth},
        )
        assert answer.status_code == 415, kind
    if provider in ("postmark", "brevo", "mailgun"):  # verified after reading: 400
        answer = await site.client.post(
            f"/webhooks/{provider}",
            content=b"{not json",
            headers={"Content-Type": "application/json", **auth},
        )
        assert answer.status_code == 400
    await site.settled()
    assert site.events() == []


async def test_an_unknown_or_unconfigured_webhook(sqlite_workspace: Workspace) -> None:
    async for site in open_site(sqlite_workspace):
        assert (await site.client.post("/webhooks/mandrill", json=[])).status_code == 404
        for provider in ("sendgrid", "mailgun", "postmark", "ses", "brevo"):
            answer = await site.client.post(f"/webhooks/{provider}", json={})
            assert answer.status_code == 404
            assert f"web.{provider}" in answer.json()["error"]


async def test_a_signed_sns_subscription_confirmation_records_nothing(
    site: Site, people: dict[str, int], keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    envelope = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e2425c464de12884c3",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-events",
        "Message": "You have chosen to subscribe to the topic. To confirm, visit the SubscribeURL.",
        "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336",
        "Timestamp": "2025-06-02T09:00:01.655Z",
        "SignatureVersion": "2",
    }
    signature = keys.sns.sign(string_to_sign(envelope), padding.PKCS1v15(), hashes.SHA256())
    envelope["Signature"] = base64.b64encode(signature).decode()
    answer = await site.client.post(
        "/webhooks/ses", content=json.dumps(envelope), headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 200
    assert answer.json()["received"] == 0
    assert "Action=ConfirmSubscription" in caplog.text
    assert site.events() == []
