"""ESP event webhooks: each provider's documented payload becomes our events.

Each provider (:data:`PROVIDERS`) has three steps, taken in this order:

1. ``verify``: the request's signature (Mailgun's HMAC, SendGrid's ECDSA signed event
   webhook, the SNS signature of Amazon SES notifications against a configured
   certificate) or shared secret (Postmark, Brevo), and for signed requests a signature
   time within ``web.webhook_max_age``. The body is parsed only as far as the signature
   needs, as JSON of bounded depth (the web app bounds its size first).
2. ``records``: the provider's records (events) in the verified payload.
3. ``read``: what one record says, as :class:`WebhookEvent` values, topics left or a
   reactivation (:class:`Delivery`); times out of range are refused.

A failure is a :class:`WebhookError` that the web app turns into its status code: 401 for
a bad, stale or replayed signature, 400 for a payload it cannot read or a value out of
range, 404 for a provider whose secret is not configured (or an unknown one), 415 for a
body of another type than the provider sends (:func:`parser_for`). Only then does
:func:`record_webhook` take the signature token once (Mailgun), match each event to its
message (Message-ID or the provider's own id) and contact (address), and store it once:
the key is built from the provider's event id, so a delivery repeated by the provider is
recorded once. Payload files (:mod:`winback.ingest.webhook_files`) skip step 1 (the user
chose the file) and take steps 2 and 3 and the recording alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from winback.web.webhooks import brevo, mailgun, postmark, sendgrid, ses
from winback.web.webhooks.base import (
    BadSignature,
    Delivery,
    NotConfigured,
    Reader,
    Verifier,
    WebhookError,
    WebhookEvent,
    WebhookRequest,
    WebhookResult,
)
from winback.web.webhooks.record import record_webhook
from winback.workspace import Workspace

_JSON = ("application/json",)


@dataclass(frozen=True)
class Provider:
    """One ESP's webhook: its steps, and the content types its requests come with."""

    verify: Verifier
    records: Callable[[Any], list[Any]]
    read: Reader
    content_types: tuple[str, ...] = _JSON

    def parse(self, workspace: Workspace, request: WebhookRequest) -> Delivery:
        """A request's delivery, once verified."""
        verified = self.verify(workspace, request)
        delivery = self.deliver(workspace, verified.payload)
        delivery.verified = verified
        return delivery

    def deliver(self, workspace: Workspace, payload: Any) -> Delivery:
        """What a payload (verified, or from a file) brings."""
        delivery = Delivery()
        for record in self.records(payload):
            delivery.extend(self.read(workspace, record))
        return delivery


# SNS posts its JSON as text/plain, every other provider as application/json.
PROVIDERS: dict[str, Provider] = {
    "sendgrid": Provider(sendgrid.verify, sendgrid.records, sendgrid.read),
    "mailgun": Provider(mailgun.verify, mailgun.records, mailgun.read),
    "postmark": Provider(postmark.verify, postmark.records, postmark.read),
    "ses": Provider(ses.verify, ses.records, ses.read, (*_JSON, "text/plain")),
    "brevo": Provider(brevo.verify, brevo.records, brevo.read),
}


class UnsupportedType(WebhookError):
    status = 415


def parser_for(provider: str, content_type: str) -> Provider:
    """``provider``'s webhook, for a request with this ``Content-Type`` header:
    :class:`NotConfigured` (404) for a provider we have no webhook for,
    :class:`UnsupportedType` (415) for a body of another type than it sends. Checked
    before the body is read."""
    if provider not in PROVIDERS:
        raise NotConfigured(f"no webhook for {provider!r}")
    found = PROVIDERS[provider]
    kind = content_type.split(";")[0].strip().lower()
    if kind not in found.content_types:
        accepted = found.content_types
        raise UnsupportedType(f"expected {' or '.join(accepted)}, not {kind or 'no content type'}")
    return found


__all__ = [
    "PROVIDERS",
    "BadSignature",
    "Delivery",
    "NotConfigured",
    "Provider",
    "UnsupportedType",
    "WebhookError",
    "WebhookEvent",
    "WebhookRequest",
    "WebhookResult",
    "parser_for",
    "record_webhook",
]
