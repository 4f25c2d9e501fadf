"""No body answers 500: random JSON (shaped like each provider's events, or not) and
random bytes, posted to every webhook with and without valid credentials, get 200 or a
4xx (issue 15). httpx against the ASGI app, with its writer running."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.web.conftest import NOW, Site, open_site
from tests.web.webhooks.conftest import configured
from tests.web.webhooks.providers import BREVO_TOKEN, MAILGUN_KEY, POSTMARK_TOKEN, Keys, basic
from winback.web.webhooks.ses import string_to_sign
from winback.workspace import Workspace

# The fields the parsers read, so that random objects reach past the first check.
FIELDS = [
    "event", "email", "recipient", "timestamp", "id", "sg_event_id", "sg_message_id",
    "sg_machine_open", "asm_group_id", "type", "smtp-id", "severity", "message", "headers",
    "message-id", "RecordType", "Type", "Recipient", "Email", "ChangedAt", "DeliveredAt",
    "BouncedAt", "SuppressSending", "SuppressionReason", "MessageID", "ID", "ts_event",
    "ts_epoch", "camp_id", "eventType", "notificationType", "mail", "bounce", "complaint",
    "bouncedRecipients", "complainedRecipients", "emailAddress", "destination", "delivery",
    "recipients", "open", "click", "event-data", "signature", "token",
]  # fmt: skip
VALUES = st.sampled_from(
    ["delivered", "bounce", "failed", "permanent", "group_unsubscribe", "unsubscribe",
     "SubscriptionChange", "Bounce", "HardBounce", "Complaint", "Notification",
     "dave@example.com", "Dave <dave@example.com>", "2025-06-02T09:00:00Z",
     "9999-12-31T23:59:59Z", "1e20", "NaN", "4821"]
)  # fmt: skip
# Values that broke the reading once (issue 15): times far out of range, as numbers and
# as text.
HOSTILE = st.sampled_from(
    [1e20, -1e20, 1e300, 10**30, 253402300800, "1e20", "NaN", "9999-12-31T23:59:59Z",
     "0001-01-01T00:00:00Z", "2025-06-02T09:00:00+25:00"]
)  # fmt: skip
SCALARS = (
    HOSTILE
    | st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | VALUES
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=25,
)
PROVIDERS = ["sendgrid", "mailgun", "postmark", "ses", "brevo"]
CORPUS = Path(__file__).parent.parent.parent / "corpus" / "webhooks"


def _documented() -> dict[str, list[dict[str, Any]]]:
    """Records of each provider as its documentation shows them (tests/corpus/webhooks):
    what a request carries once unwrapped (Mailgun's event-data, the SES event)."""

    def lines(name: str) -> list[Any]:
        return [json.loads(line) for line in (CORPUS / name).read_text().splitlines()]

    return {
        "sendgrid": json.loads((CORPUS / "sendgrid_delivery.json").read_text()),
        "mailgun": [body["event-data"] for body in lines("mailgun_webhooks.jsonl")],
        "postmark": lines("postmark_webhooks.jsonl"),
        "ses": [json.loads(e["Message"]) for e in lines("ses_sns.jsonl")[1:]],
        "brevo": lines("brevo_transactional.jsonl") + lines("brevo_marketing.jsonl"),
    }


DOCUMENTED = _documented()


def shaped(provider: str) -> st.SearchStrategy[Any]:
    """A documented record of ``provider`` with some of its values replaced at random
    (nested objects too, one level down), so that random values reach the reading."""

    def mutate(record: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries(
            {
                key: st.just(value) | HOSTILE | (mutate(value) if isinstance(value, dict) else JSON)
                for key, value in record.items()
            }
        )

    record = st.sampled_from(DOCUMENTED[provider]).flatmap(mutate)
    return st.lists(record, min_size=1, max_size=3) if provider == "sendgrid" else record


CONTENT_TYPES = {"ses": "text/plain; charset=UTF-8"}


@pytest.fixture
def served(sqlite_workspace: Workspace, keys: Keys) -> Iterator[tuple[asyncio.Runner, Site]]:
    """The app, served for the whole hypothesis run on one event loop."""
    workspace = configured(sqlite_workspace, keys)
    with asyncio.Runner() as runner:
        sites = open_site(workspace)
        site = runner.run(sites.__anext__())
        yield runner, site
        runner.run(sites.aclose())
    workspace.close()


def signed(provider: str, keys: Keys, body: bytes, payload: Any) -> tuple[bytes, dict[str, str]]:
    """The request as the provider would sign it (random ``payload`` inside the signed
    wrapper for Mailgun and SNS, whose signatures travel in the JSON)."""
    stamp = str(int(NOW.timestamp()) - 60)
    if provider == "sendgrid":
        signature = keys.sendgrid.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return body, {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }
    if provider == "mailgun":
        token = secrets.token_hex(25)
        digest = hmac.new(MAILGUN_KEY.encode(), (stamp + token).encode(), hashlib.sha256)
        signed_by = {"timestamp": stamp, "token": token, "signature": digest.hexdigest()}
        wrapper = {"signature": signed_by, "event-data": payload}
        return json.dumps(wrapper).encode(), {}
    if provider == "ses":
        envelope = {
            "Type": "Notification", "MessageId": secrets.token_hex(8),
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-events",
            "Message": json.dumps(payload), "Timestamp": "2025-06-02T09:59:00.000Z",
            "SignatureVersion": "2",
        }  # fmt: skip
        raw = keys.sns.sign(string_to_sign(envelope), padding.PKCS1v15(), hashes.SHA256())
        envelope["Signature"] = base64.b64encode(raw).decode()
        return json.dumps(envelope).encode(), {}
    return body, basic(POSTMARK_TOKEN if provider == "postmark" else BREVO_TOKEN)


def check(
    runner: asyncio.Runner, site: Site, provider: str, body: bytes, headers: dict[str, str]
) -> None:
    headers = {"Content-Type": CONTENT_TYPES.get(provider, "application/json"), **headers}
    answer = runner.run(site.client.post(f"/webhooks/{provider}", content=body, headers=headers))
    assert answer.status_code in (200, 400, 401, 413), (answer.status_code, answer.text)


FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.slow
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("credentials", [True, False], ids=["signed", "unsigned"])
@FUZZ
@given(data=st.data())
def test_random_json(
    served: tuple[asyncio.Runner, Site],
    keys: Keys,
    provider: str,
    credentials: bool,
    data: st.DataObject,
) -> None:
    runner, site = served
    payload = data.draw(JSON | shaped(provider))
    body = json.dumps(payload).encode()
    headers: dict[str, str] = {}
    if credentials:
        body, headers = signed(provider, keys, body, payload)
    check(runner, site, provider, body, headers)


@pytest.mark.slow
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("credentials", [True, False], ids=["signed", "unsigned"])
@FUZZ
@given(body=st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_random_bytes(
    served: tuple[asyncio.Runner, Site],
    keys: Keys,
    provider: str,
    credentials: bool,
    body: bytes,
) -> None:
    runner, site = served
    headers: dict[str, str] = {}
    if credentials and provider in ("sendgrid", "postmark", "brevo"):
        body, headers = signed(provider, keys, body, None)
    check(runner, site, provider, body, headers)
