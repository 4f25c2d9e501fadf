"""What each provider's events mean, as its documentation says (issue 14): Brevo's
marketing ``unsubscribe``; Postmark's SubscriptionChange keeps its reason, and a
reactivation by the sender lifts the bounce suppression; SendGrid's group_unsubscribe
leaves one topic; drops and deferrals are no bounces; every recipient of an SES bounce
or complaint counts; a refusal for an address we do not know is still handed on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.web.conftest import NOW, Site
from tests.web.webhooks.providers import (
    BREVO_TOKEN,
    EVENT_TIME,
    NEWS_GROUP,
    POSTMARK_TOKEN,
    Keys,
    basic,
    post,
    sendgrid,
    ses_event,
    sns,
)
from winback.compliance.suppression import is_suppressed

pytestmark = pytest.mark.anyio

AT = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def suppressed(site: Site, address: str) -> bool:
    with site.workspace.engine.connect() as c:
        return is_suppressed(c, site.workspace, "email", address)


async def test_brevo_marketing_unsubscribe(site: Site, people: dict[str, int]) -> None:
    # Brevo's marketing webhook: a campaign's unsubscribe, with no message-id.
    event = {
        "id": 371224, "camp_id": 42, "email": "dave@example.com",
        "campaign name": "Spring win-back", "date_sent": "2025-06-02 10:00:00",
        "date_event": "2025-06-02 11:00:00", "event": "unsubscribe", "tag": "",
        "ts_sent": EVENT_TIME - 3600, "ts_event": EVENT_TIME, "ts": EVENT_TIME,
        "list_id": [3, 42],
    }  # fmt: skip
    bearer = {"Authorization": f"Bearer {BREVO_TOKEN}"}
    answer = await post(site, "brevo", {"json": event, "headers": bearer})
    assert answer.json()["recorded"] == 1
    assert site.contact(people["dave"])["email_status"] == "unsubscribed"
    assert suppressed(site, "dave@example.com")


def subscription_change(address: str, **fields: Any) -> dict[str, Any]:
    record = {
        "RecordType": "SubscriptionChange", "MessageID": "prov-1", "ServerID": 23,
        "MessageStream": "outbound", "ChangedAt": AT, "Recipient": address,
        "Origin": "Recipient", "SuppressSending": True, "SuppressionReason": None,
        "Tag": "winback", "Metadata": {},
    }  # fmt: skip
    return {"json": {**record, **fields}, "headers": basic(POSTMARK_TOKEN)}


async def test_postmark_subscription_changes_keep_their_reason(
    site: Site, people: dict[str, int]
) -> None:
    with site.workspace.engine.begin() as c:
        from tests.builders import add_contact, day

        fay = add_contact(c, email="fay@example.net", created_at=day(2024, 1, 5))
    changes = [
        subscription_change("dave@example.com", SuppressionReason="ManualSuppression"),
        subscription_change("erin@example.com", SuppressionReason="HardBounce", Origin="Admin"),
        subscription_change("fay@example.net", SuppressionReason="SpamComplaint"),
    ]
    for change in changes:
        assert (await post(site, "postmark", change)).json()["recorded"] == 1
    statuses = [site.contact(i)["email_status"] for i in (people["dave"], people["erin"], fay)]
    assert statuses == ["unsubscribed", "bounced", "complained"]
    reasons = sorted(row["reason"] for row in site.suppressions())
    assert reasons == ["bounce_hard", "complaint", "unsubscribe"]


async def test_a_postmark_reactivation_lifts_the_bounce_only(
    site: Site, people: dict[str, int]
) -> None:
    erin, dave = people["erin"], people["dave"]
    bounced = subscription_change("erin@example.com", SuppressionReason="HardBounce")
    complained = subscription_change("dave@example.com", SuppressionReason="SpamComplaint")
    for change in (bounced, complained):
        await post(site, "postmark", change)
    assert suppressed(site, "erin@example.com")
    later = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for address in ("erin@example.com", "dave@example.com"):
        reactivation = subscription_change(
            address, SuppressSending=False, Origin="Customer", ChangedAt=later
        )
        answer = await post(site, "postmark", reactivation)
        assert answer.status_code == 200
    assert not suppressed(site, "erin@example.com")
    assert site.contact(erin)["email_status"] == "subscribed"
    # A complaint is the person's no: the sender's reactivation does not lift it.
    assert suppressed(site, "dave@example.com")
    assert site.contact(dave)["email_status"] == "complained"
    [lifted] = site.audit(action="unsuppress")
    assert (lifted["actor"], lifted["contact_id"]) == ("webhook:postmark", erin)
    assert lifted["details"]["suppressed_for"] == "bounce_hard"
    # The bounce stays in the history.
    assert [e["type"] for e in site.events(contact_id=erin)] == ["bounce_hard"]


async def test_sendgrid_group_unsubscribe_leaves_one_topic(
    site: Site, people: dict[str, int], keys: Keys
) -> None:
    common = {"timestamp": EVENT_TIME, "sg_message_id": "prov-1.filter0001.16648.0",
              "useragent": "Mozilla/5.0", "ip": "203.0.113.9",
              "url": "https://app.sendgrid.example.com/asm/unsubscribe"}  # fmt: skip
    events = [
        {**common, "email": "dave@example.com", "event": "group_unsubscribe",
         "asm_group_id": NEWS_GROUP, "sg_event_id": "Z3JvdXAtMQ"},
        {**common, "email": "erin@example.com", "event": "group_unsubscribe",
         "asm_group_id": 999, "sg_event_id": "Z3JvdXAtMg"},
    ]  # fmt: skip
    answer = await post(site, "sendgrid", sendgrid(keys, events))
    assert answer.status_code == 200
    result = answer.json()
    assert result["topics_left"] == 1
    assert "group '999'" in result["warnings"][0]
    dave, erin = site.contact(people["dave"]), site.contact(people["erin"])
    assert dave["topics"] == ["offers"]
    assert (dave["email_status"], erin["email_status"]) == ("subscribed", "subscribed")
    assert site.suppressions() == []
    [left] = site.audit(action="leave_topic")
    assert (left["contact_id"], left["reason"]) == (people["dave"], "news")


async def test_sendgrid_drops_and_deferrals_are_no_bounces(
    site: Site, people: dict[str, int], keys: Keys
) -> None:
    common = {
        "timestamp": EVENT_TIME,
        "email": "dave@example.com",
        "sg_message_id": "prov-1.filter0001.16648.0",
        "smtp-id": "<x@example.com>",
    }
    events = [
        {**common, "event": "dropped", "reason": "Bounced Address", "status": "5.0.0",
         "sg_event_id": "ZHJvcHBlZA"},
        {**common, "event": "deferred", "response": "400 try again later", "attempt": "5",
         "sg_event_id": "ZGVmZXJyZWQ"},
    ]  # fmt: skip
    answer = await post(site, "sendgrid", sendgrid(keys, events))
    assert answer.json()["recorded"] == 0
    assert site.events() == []
    assert site.contact(people["dave"])["email_status"] == "subscribed"


async def test_every_recipient_of_an_ses_bounce_and_complaint(
    site: Site, people: dict[str, int], keys: Keys
) -> None:
    dave, erin = people["dave"], people["erin"]
    bounce = ses_event("Bounce", bounce={
        "bounceType": "Permanent", "bounceSubType": "General",
        "bouncedRecipients": [
            {"emailAddress": "dave@example.com", "action": "failed", "status": "5.1.1"},
            {"emailAddress": "erin@example.com", "action": "failed", "status": "5.1.1"},
            {"emailAddress": "ghost@example.org", "action": "failed", "status": "5.1.1"},
        ],
        "timestamp": "2025-06-02T09:00:00.669Z", "feedbackId": "0102017a-1"})  # fmt: skip
    answer = await post(site, "ses", sns(keys, bounce))
    assert answer.json()["received"] == 3
    assert answer.json()["unmatched"] == 1  # ghost: handed on as a refusal, not stored
    assert sorted(e["contact_id"] for e in site.events(type="bounce_hard")) == [dave, erin]
    assert site.contact(erin)["email_status"] == "bounced"
