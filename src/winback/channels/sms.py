"""SMS through SMSFactor (a French provider, https://dev.smsfactor.com), over its
documented JSON API: ``POST {api_url}/send`` with a bearer token and the body

    {"sms": {"message": {"text": ..., "pushtype": "marketing", "sender": ..., "unicode": 0},
             "recipients": {"gsm": [{"gsmsmsid": "<outbox id>", "value": "33612345678"}]}}}

The answer is JSON: ``status`` 1 with ``ticket`` (the provider's id) and counters that
say what happened to the number (``sent``, ``invalid``, ``npai``, ``blacklisted``...), or
a negative ``status`` and a ``message``. Numbers go without the ``+``, as in the
provider's examples; ``gsmsmsid`` carries the outbox id so delivery reports find their
message. The opt-out mention is appended here, so the text, its length and its parts are
known before sending (see :mod:`winback.channels.sms_encoding`).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx

from winback.channels.base import (
    ChannelError,
    OutgoingMessage,
    PermanentFailure,
    SendResult,
    Sent,
    TemporaryFailure,
    UnknownOutcome,
)
from winback.channels.sms_encoding import sms_length, with_stop_mention
from winback.domain import EventType

_E164 = re.compile(r"^\+[1-9]\d{5,14}$")
_TIMEOUT = 30.0

# Negative statuses of the SMSFactor API that concern the account, not the message:
# -1 authentication failed, -3 not enough credits. -8 means the campaign is held for
# moderation and will go out once approved ("no need to retry", say the docs).
_AUTH_FAILED = -1
_NO_CREDITS = -3
_MODERATION = -8
_UNKNOWN_ERROR = -99


def _retry_after(response: httpx.Response) -> timedelta | None:
    value = response.headers.get("Retry-After", "")
    return timedelta(seconds=int(value)) if value.isdigit() else None


class SmsFactorSender:
    """Sends SMS one by one through SMSFactor, over one kept-alive HTTP connection."""

    def __init__(
        self,
        *,
        api_url: str,
        api_token: str | None,
        sender: str,
        stop_mention: str,
        timeout: float = _TIMEOUT,
    ) -> None:
        if not api_token:
            raise ChannelError(
                "winback.toml: sms.api_token is empty: create an API token in your SMSFactor "
                'account and set it in [sms] (provider = "smsfactor")'
            )
        self.api_url = api_url.rstrip("/")
        self.sender = sender
        self.stop_mention = stop_mention
        self._client = httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {api_token}", "Accept": "application/json"},
            timeout=timeout,
        )

    def send(self, message: OutgoingMessage) -> SendResult:
        if not _E164.match(message.to_address):
            return PermanentFailure(
                f"{message.to_address!r} is not a phone number in E.164 form (+33612345678)",
                event=EventType.BOUNCE_HARD,
            )
        if not (message.body_text or "").strip():
            return PermanentFailure(f"outbox message {message.idempotency_key!r} has no text")
        text = with_stop_mention(message.body_text or "", self.stop_mention)
        length = sms_length(text)
        payload = {
            "sms": {
                "message": {
                    "text": text,
                    "pushtype": "marketing",
                    "sender": self.sender,
                    "unicode": 1 if length.encoding == "UCS-2" else 0,
                },
                "recipients": {
                    "gsm": [
                        {
                            "gsmsmsid": str(message.outbox_id or message.idempotency_key),
                            "value": message.to_address.removeprefix("+"),
                        }
                    ]
                },
            }
        }
        try:
            response = self._client.post("/send", json=payload)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ChannelError(
                f"cannot reach SMSFactor at {self.api_url} ({exc}); check [sms] api_url in "
                "winback.toml and the network"
            ) from None
        except httpx.TransportError as exc:
            return UnknownOutcome(
                f"the request to SMSFactor broke after it was sent ({exc!r}); "
                "the SMS may have gone out"
            )
        return self._result(response, length.parts)

    def _result(self, response: httpx.Response, parts: int) -> SendResult:
        code = str(response.status_code)
        if response.status_code in (401, 403):
            raise ChannelError(
                f"SMSFactor refused the API token (HTTP {code}); check [sms] api_token"
            )
        if response.status_code == 429 or response.status_code >= 500:
            return TemporaryFailure(
                f"SMSFactor answered HTTP {code}", code=code, retry_after=_retry_after(response)
            )
        if response.status_code >= 400:
            return PermanentFailure(f"SMSFactor refused the SMS: HTTP {code}", code=code)
        try:
            answer: dict[str, Any] = response.json()
            status = int(answer["status"])
        except (ValueError, KeyError, TypeError):
            return UnknownOutcome(f"SMSFactor answered HTTP {code} with an unreadable body")
        message = str(answer.get("message", ""))
        if status == 1:
            return self._accepted(answer, parts)
        if status == _MODERATION:
            return Sent(provider_id=_ticket(answer), parts=parts)
        if status == _AUTH_FAILED:
            raise ChannelError(f"SMSFactor: {message} (status -1); check [sms] api_token")
        if status == _NO_CREDITS:
            raise ChannelError(
                f"SMSFactor: {message} (status -3); buy credits, then run dispatch again"
            )
        if status == _UNKNOWN_ERROR:
            return TemporaryFailure(f"SMSFactor: {message}", code=str(status))
        return PermanentFailure(f"SMSFactor: {message}", code=str(status))

    @staticmethod
    def _accepted(answer: dict[str, Any], parts: int) -> SendResult:
        """Status 1: the campaign was created; the counters say whether our one number
        survived the provider's filters."""

        def count(key: str) -> int:
            value = answer.get(key, 0)
            return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0

        if count("sent") >= 1:
            return Sent(provider_id=_ticket(answer), parts=parts)
        if count("blacklisted"):
            return PermanentFailure(
                "the number is on the SMSFactor blacklist: the person replied STOP",
                code="blacklisted",
                event=EventType.UNSUBSCRIBE,
            )
        for key in ("invalid", "npai"):
            if count(key):
                return PermanentFailure(
                    f"SMSFactor filtered the number as {key}",
                    code=key,
                    event=EventType.BOUNCE_HARD,
                )
        for key in ("flood", "country_limit"):
            if count(key):
                return TemporaryFailure(f"SMSFactor filtered the SMS ({key})", code=key)
        if count("not_allowed"):
            return PermanentFailure(
                "SMSFactor does not send to this country on this account", code="not_allowed"
            )
        return PermanentFailure("SMSFactor accepted the request but sent nothing", code="0")

    def close(self) -> None:
        self._client.close()


def _ticket(answer: dict[str, Any]) -> str | None:
    ticket = answer.get("ticket")
    return str(ticket) if ticket is not None else None
