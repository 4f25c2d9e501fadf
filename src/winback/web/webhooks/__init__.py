"""ESP event webhooks: each provider's documented payload becomes our events.

A parser per provider (:data:`PARSERS`) verifies the request first (Mailgun's HMAC,
SendGrid's ECDSA signed event webhook, the SNS signature of Amazon SES notifications
against a configured certificate, Postmark's and Brevo's shared secret) and then reads
the payload into :class:`WebhookEvent` values, or raises a :class:`WebhookError` that the
web app turns into its status code: 401 for a bad signature, 400 for a payload it cannot
read, 404 for a provider whose secret is not configured. Only then does
:func:`record_webhook` match each event to its message (Message-ID or the provider's own
id) and contact (address), and store it once: the key is built from the provider's event
id, so a delivery repeated by the provider is recorded once.
"""

from __future__ import annotations

from winback.web.webhooks import brevo, mailgun, postmark, sendgrid, ses
from winback.web.webhooks.common import (
    BadSignature,
    NotConfigured,
    Parser,
    WebhookError,
    WebhookEvent,
    WebhookRequest,
    WebhookResult,
    record_webhook,
)

PARSERS: dict[str, Parser] = {
    "sendgrid": sendgrid.parse,
    "mailgun": mailgun.parse,
    "postmark": postmark.parse,
    "ses": ses.parse,
    "brevo": brevo.parse,
}

__all__ = [
    "PARSERS",
    "BadSignature",
    "NotConfigured",
    "WebhookError",
    "WebhookEvent",
    "WebhookRequest",
    "WebhookResult",
    "record_webhook",
]
