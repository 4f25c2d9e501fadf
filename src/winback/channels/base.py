"""The one small interface every channel offers the dispatcher: ``send`` a message and
get back what became of it, ``close`` at the end (listmonk's Messenger, without Push's
batching). The dispatcher knows this module, never SMTP or HTTP.

What a send can come to:

- :class:`Sent`: the server or provider took the message (with its id, if it gave one);
- :class:`TemporaryFailure`: nothing was sent; try again later (SMTP 4xx, HTTP 429/5xx);
- :class:`PermanentFailure`: nothing was sent and never will be; ``event`` says what the
  engine records about the address (``bounce_hard`` for SMTP 5xx or an invalid number,
  ``unsubscribe`` when the provider knows the person sent STOP);
- :class:`UnknownOutcome`: the connection broke after the message was handed over, so it
  may have gone out. The at-most-once rule says: report it, never resend it silently.

A message that cannot be built or addressed is a :class:`PermanentFailure` of its own
(the channel turns a :class:`MessageError` into one). A channel that cannot work at all
(server unreachable, login refused, no credit left) raises :class:`ChannelError`
instead: that message was not sent, and the next ones would not be either, so the
dispatcher stops and leaves the rest of the outbox queued.

The dispatcher hands a channel a batch of messages at once (:func:`send_batch`), so a
sender that can keep several on the wire (SMTP, on a few connections) does so without a
round trip through the dispatcher for each.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from winback.domain import Channel, EventType
from winback.errors import WinbackError


class ChannelError(WinbackError):
    """The channel cannot send at all: unreachable server, refused login, bad settings.
    The message says which setting to check."""

    exit_code = 7


class MessageError(WinbackError):
    """This one message cannot be built or addressed (no body, an address that cannot
    be written on the wire): it fails alone, and the others of its batch go out."""


@dataclass(frozen=True)
class OutgoingMessage:
    """One message of the outbox, as a channel needs it. ``to_address`` is a normalised
    email or an E.164 phone number; ``headers`` are extra email headers; ``message_id``
    is the exact Message-ID header value (``<...@domain>``), also used by the open pixel
    and click tokens. Email channels add the unsubscribe headers for ``contact_id``."""

    channel: Channel
    contact_id: int
    to_address: str
    idempotency_key: str
    outbox_id: int | None = None
    subject: str | None = None
    body_text: str | None = None
    body_html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    message_id: str | None = None

    @classmethod
    def from_outbox(cls, row: Mapping[str, Any]) -> OutgoingMessage:
        """The message of one ``outbox`` row (a SQLAlchemy row mapping or a dict)."""
        return cls(
            channel=Channel(row["channel"]),
            contact_id=row["contact_id"],
            to_address=row["to_address"],
            idempotency_key=row["idempotency_key"],
            outbox_id=row["id"],
            subject=row["subject"],
            body_text=row["body_text"],
            body_html=row["body_html"],
            headers=dict(row["headers"] or {}),
            message_id=row["message_id"],
        )


@dataclass(frozen=True)
class Sent:
    """Accepted by the server or provider. ``parts`` is what an SMS is billed as."""

    provider_id: str | None
    parts: int = 1


@dataclass(frozen=True)
class TemporaryFailure:
    """Not sent this time; the same message may be tried again after ``retry_after``
    (when the server said) or the dispatcher's own back-off."""

    reason: str
    code: str | None = None
    retry_after: timedelta | None = None


@dataclass(frozen=True)
class PermanentFailure:
    """Refused for good. ``event`` is what to record about the address, if anything."""

    reason: str
    code: str | None = None
    event: EventType | None = None


@dataclass(frozen=True)
class UnknownOutcome:
    """Handed over, then the connection broke before the answer: it may have gone out."""

    reason: str


SendResult = Sent | TemporaryFailure | PermanentFailure | UnknownOutcome


# What became of one message of a batch: its result, or the ChannelError that stopped
# the channel before it went (nothing was sent: it goes back to the queue).
BatchResult = SendResult | ChannelError


class Progress(Protocol):
    """Hears of each message of a batch as it goes: ``started`` just before it is handed
    over (nothing of it has reached the server before), ``finished`` with its result as
    soon as the server or provider answers. The dispatcher writes both down, so that
    after a crash only the messages started and not finished are in doubt."""

    def started(self, message: OutgoingMessage) -> None: ...

    def finished(self, message: OutgoingMessage, result: BatchResult) -> None: ...


class Sender(Protocol):
    """A channel: sends one message at a time, reusing its connection between calls.
    A sender that carries several messages at once (SMTP) also has
    ``send_batch(messages, *, pace, progress)``, which paces inside its own loop (see
    :func:`send_batch`)."""

    def send(self, message: OutgoingMessage) -> SendResult: ...

    def close(self) -> None: ...


def send_batch(
    sender: Sender,
    messages: Sequence[OutgoingMessage],
    *,
    pace: Callable[[], float] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress | None = None,
) -> list[BatchResult]:
    """Send ``messages`` and give what became of each, in order. ``pace`` (a rate
    limiter's ``reserve``) says how long to wait before starting the next one;
    ``progress`` hears of each as it starts and ends. A message that cannot be built or
    addressed (:class:`MessageError`) is a :class:`PermanentFailure` of its own. The
    first :class:`ChannelError` stops the batch: it is the result of that message and of
    every later one, none of which was sent. A sender with its own ``send_batch``
    (several messages in flight) does the work and waits its own way; any other sends
    them one after the other, calling ``sleep`` between them."""
    own = getattr(sender, "send_batch", None)
    if own is not None:
        results: list[BatchResult] = own(messages, pace=pace, progress=progress)
        return results
    results = []
    for message in messages:
        wait = pace() if pace is not None else 0.0
        if wait > 0:
            sleep(wait)
        if progress is not None:
            progress.started(message)
        result: BatchResult
        try:
            result = sender.send(message)
        except MessageError as exc:
            result = PermanentFailure(str(exc))
        except ChannelError as exc:
            result = exc
        if progress is not None:
            progress.finished(message, result)
        if isinstance(result, ChannelError):
            return results + [result] * (len(messages) - len(results))
        results.append(result)
    return results
