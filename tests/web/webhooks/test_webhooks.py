"""ESP webhooks: each provider's documented payload becomes our events, signatures are
checked (bad: 401, nothing recorded), a repeated delivery is recorded once, and bodies
that are too large, of the wrong type or not JSON are refused. On SQLite and PostgreSQL.

The payloads follow the providers' documentation; the keys are made here (an ECDSA key
standing for SendGrid's, an RSA certificate standing for the SNS topic's)."""

from __future__ import annotations

import base64
import json
from datetime import datetime

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from tests.web.conftest import IPHONE_SAFARI, Site, open_site
from tests.web.webhooks.providers import (
    BREVO_TOKEN,
    POSTMARK_TOKEN,
    Keys,
    basic,
    brevo_events,
    mailgun,
    mailgun_event,
    post,
    postmark_records,
    sendgrid,
    sendgrid_events,
    ses_event,
    sns,
    summary,
)
from winback.compliance.suppression import is_suppressed
from winback.web.webhooks.ses import string_to_sign
from winback.workspace import Workspace

pytestmark = pytest.mark.anyio


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
