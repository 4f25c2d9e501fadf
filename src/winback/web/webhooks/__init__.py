"""ESP event webhooks: each provider's documented payload becomes our events.

A parser per provider (:data:`PARSERS`) verifies the request first (Mailgun's HMAC,
SendGrid's ECDSA signed event webhook, the SNS signature of Amazon SES notifications
against a configured certificate, Postmark's and Brevo's shared secret) and then reads
the payload into :class:`WebhookEvent` values, or raises a :class:`WebhookError` that the
web app turns into its status code: 401 for a bad signature, 400 for a payload it cannot
read, 404 for a provider whose secret is not configured (or an unknown one), 415 for a
body of another type than the provider sends (:func:`parser_for`). Only then does
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

_JSON = ("application/json",)
# Each provider's parser, and the content types its requests come with: SNS posts its
# JSON as text/plain, every other provider as application/json.
PARSERS: dict[str, tuple[Parser, tuple[str, ...]]] = {
    "sendgrid": (sendgrid.parse, _JSON),
    "mailgun": (mailgun.parse, _JSON),
    "postmark": (postmark.parse, _JSON),
    "ses": (ses.parse, (*_JSON, "text/plain")),
    "brevo": (brevo.parse, _JSON),
}


class UnsupportedType(WebhookError):
    status = 415


def parser_for(provider: str, content_type: str) -> Parser:
    """The parser of ``provider``'s webhook, for a request with this ``Content-Type``
    header: :class:`NotConfigured` (404) for a provider we have no webhook for,
    :class:`UnsupportedType` (415) for a body of another type than it sends. Checked
    before the body is read."""
    if provider not in PARSERS:
        raise NotConfigured(f"no webhook for {provider!r}")
    parser, accepted = PARSERS[provider]
    kind = content_type.split(";")[0].strip().lower()
    if kind not in accepted:
        raise UnsupportedType(f"expected {' or '.join(accepted)}, not {kind or 'no content type'}")
    return parser


__all__ = [
    "PARSERS",
    "BadSignature",
    "NotConfigured",
    "UnsupportedType",
    "WebhookError",
    "WebhookEvent",
    "WebhookRequest",
    "WebhookResult",
    "parser_for",
    "record_webhook",
]
