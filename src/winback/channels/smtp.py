"""Email over SMTP with aiosmtplib: connections reused for every message of a
dispatch, re-opened when the server drops them, with STARTTLS or implicit TLS and login
from ``[email]`` (or ``WINBACK_SMTP_URL``).

The dispatcher is synchronous; aiosmtplib is not. The sender runs its own event loop in
a background thread for its whole life, so the SMTP connections (which belong to that
loop) survive from one ``send`` to the next. ``send_batch`` hands the loop a whole batch
of composed messages in one go (a handover per message cost more than the send): up to
``lanes`` messages travel at the same time, each on its own connection (one SMTP
transaction per connection at a time), their starts spaced by the channel's rate limit.
One message at a time uses one connection.

What the server answers becomes a result (see :mod:`winback.channels.base`): 250 after
DATA is :class:`Sent`; a 4xx at any step is a :class:`TemporaryFailure`; a 5xx to the
recipient or the data is a :class:`PermanentFailure` recorded as a hard bounce; a broken
connection while the data is in flight is an :class:`UnknownOutcome`. An unreachable
server, a refused login or a refused sender address raise :class:`ChannelError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import aiosmtplib

from winback.channels.base import (
    BatchResult,
    ChannelError,
    MessageError,
    OutgoingMessage,
    PermanentFailure,
    Progress,
    SendResult,
    Sent,
    TemporaryFailure,
    UnknownOutcome,
)
from winback.channels.email_message import EmailComposer, address_domain, wire_address
from winback.clock import utcnow
from winback.config import EmailSection
from winback.domain import EventType
from winback.errors import ConfigError

ENV_SMTP_URL = "WINBACK_SMTP_URL"

Tls = Literal["none", "starttls", "tls"]

# WINBACK_SMTP_URL schemes: the TLS mode each one means, and its usual port.
_SCHEMES: dict[str, tuple[Tls, int]] = {
    "smtp": ("none", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}

_TIMEOUT = 30.0
# Messages in flight at once, each on its own connection: four keep the round trips of
# a relay nearby hidden, and stay well under the connection limits of relays (how many
# messages are in doubt after a crash is the dispatcher's claim batch, not this).
CONNECTIONS = 4
T = TypeVar("T")


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to connect. ``password`` is kept out of ``repr``."""

    host: str
    port: int
    tls: Tls = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def resolve(cls, email: EmailSection, environ: Mapping[str, str]) -> SmtpSettings:
        """The ``[email]`` settings, or ``WINBACK_SMTP_URL`` when it is set:
        ``smtp://user:pass@host:port`` (plain), ``smtp+starttls://...`` (STARTTLS, port 587
        by default) or ``smtps://...`` (implicit TLS, port 465 by default). User and
        password are percent-encoded, as in any URL."""
        url = environ.get(ENV_SMTP_URL)
        if not url:
            return cls(
                host=email.host,
                port=email.port,
                tls=email.tls,
                username=email.username,
                password=email.password,
            )
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES:
            raise ConfigError(
                f"{ENV_SMTP_URL}: unknown scheme {parts.scheme + '://'!r}; write "
                "smtp://user:pass@host:port, smtp+starttls://... or smtps://..."
            )
        tls, default_port = _SCHEMES[parts.scheme]
        try:
            port = parts.port or default_port
        except ValueError:
            raise ConfigError(f"{ENV_SMTP_URL}: the port is not a number from 1 to 65535") from None
        if not parts.hostname:
            raise ConfigError(f"{ENV_SMTP_URL}: no host; write {parts.scheme}://host:port")
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    @property
    def where(self) -> str:
        return f"SMTP server {self.host}:{self.port}"


class _LoopThread:
    """An event loop running in a daemon thread; coroutines are submitted from the
    caller's thread and waited for."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="winback-smtp", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


@dataclass(frozen=True)
class _Mail:
    """A composed message: its envelope recipient (IDNA domain), whether it needs
    SMTPUTF8, and its bytes."""

    message: OutgoingMessage
    recipient: str
    utf8: bool
    data: bytes


class _Lane:
    """One connection of the sender, carrying one SMTP transaction at a time."""

    def __init__(self) -> None:
        self.client: aiosmtplib.SMTP | None = None


class SmtpSender:
    """Sends emails through one SMTP server, keeping its connections open between sends.

    ``connections`` counts the connections opened, for reports and tests.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        composer: EmailComposer,
        *,
        timeout: float = _TIMEOUT,
        lanes: int = CONNECTIONS,
    ) -> None:
        self.settings = settings
        self.composer = composer
        self.timeout = timeout
        self.connections = 0
        self._lanes = [_Lane() for _ in range(lanes)]
        self._free: asyncio.LifoQueue[_Lane] | None = None
        self._loop = _LoopThread()

    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one message; raises :class:`ChannelError` when the channel cannot work."""
        result = self.send_batch([message])[0]
        if isinstance(result, ChannelError):
            raise result
        return result

    def send_batch(
        self,
        messages: Sequence[OutgoingMessage],
        *,
        pace: Callable[[], float] | None = None,
        progress: Progress | None = None,
    ) -> list[BatchResult]:
        """Send ``messages`` on the sender's connections, up to one per connection at a
        time, and give what became of each (see :func:`winback.channels.send_batch`).
        The bytes are composed here (a message that cannot be is a failure of its own),
        then the whole batch goes to the event loop in one handover; ``pace`` spaces the
        starts inside the loop, and ``progress`` hears of each message as it goes."""
        now = utcnow()
        mails: list[_Mail | PermanentFailure] = []
        for message in messages:
            try:
                recipient, utf8 = wire_address(message.to_address)
                data = self.composer.render(message, now=now)
            except MessageError as exc:
                mails.append(PermanentFailure(str(exc)))
                continue
            mails.append(_Mail(message, recipient, utf8, data))
        return self._loop.run(self._send_all(mails, pace, progress))

    def close(self) -> None:
        """Say QUIT to the server on every open connection and stop the loop."""
        for lane in self._lanes:
            self._loop.run(self._disconnect(lane, polite=True))
        self._loop.stop()

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- inside the loop --------------------------------------------------------------

    async def _send_all(
        self,
        mails: Sequence[_Mail | PermanentFailure],
        pace: Callable[[], float] | None,
        progress: Progress | None,
    ) -> list[BatchResult]:
        if self._free is None:
            self._free = asyncio.LifoQueue()
            for lane in reversed(self._lanes):
                self._free.put_nowait(lane)
        free = self._free
        results: list[BatchResult | None] = [None] * len(mails)
        stopped: list[ChannelError] = []

        async def deliver(index: int, lane: _Lane, mail: _Mail) -> None:
            result: BatchResult
            try:
                result = await self._deliver(lane, mail, progress)
            except ChannelError as exc:
                result = exc
                stopped.append(exc)
            finally:
                free.put_nowait(lane)
            results[index] = result
            if progress is not None:
                progress.finished(mail.message, result)

        flights = []
        for index, mail in enumerate(mails):
            if not isinstance(mail, _Mail):
                results[index] = mail
                continue
            wait = pace() if pace is not None else 0.0
            if wait > 0:
                await asyncio.sleep(wait)
            # Last in, first out: one message at a time keeps using the same connection.
            lane = await free.get()
            if stopped:  # the channel broke: what has not started stays unsent
                free.put_nowait(lane)
                break
            flights.append(asyncio.create_task(deliver(index, lane, mail)))
        await asyncio.gather(*flights)
        return [stopped[0] if result is None else result for result in results]

    async def _connected(self, lane: _Lane) -> aiosmtplib.SMTP:
        if lane.client is not None and lane.client.is_connected:
            return lane.client
        settings = self.settings
        client = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            use_tls=settings.tls == "tls",
            start_tls=settings.tls == "starttls",
            local_hostname=address_domain(self.composer.from_address) or None,
            timeout=self.timeout,
        )
        try:
            await client.connect()
        except aiosmtplib.SMTPAuthenticationError as exc:
            client.close()
            raise ChannelError(
                f"{settings.where} refused the login of {settings.username!r} "
                f"({exc.code} {exc.message}); check [email] username and password in "
                "winback.toml, or WINBACK_SMTP_URL"
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise ChannelError(
                f"cannot open a session with {settings.where} (tls={settings.tls}): {exc}; "
                "check [email] host, port and tls in winback.toml, or WINBACK_SMTP_URL"
            ) from None
        self.connections += 1
        lane.client = client
        return client

    async def _disconnect(self, lane: _Lane, *, polite: bool) -> None:
        client, lane.client = lane.client, None
        if client is None:
            return
        transport = client.transport
        if polite and client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
        client.close()
        if isinstance(transport, asyncio.Transport):
            # A TLS transport closes gracefully (close_notify) in the background; abort
            # it so its socket is released now, not left to a loop about to stop.
            transport.abort()
            await asyncio.sleep(0)

    async def _reset(self, lane: _Lane, client: aiosmtplib.SMTP) -> None:
        """Clear a refused transaction so the connection can carry the next message."""
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            await self._disconnect(lane, polite=False)

    async def _deliver(self, lane: _Lane, mail: _Mail, progress: Progress | None) -> SendResult:
        sender = self.composer.envelope_sender
        recipient = mail.recipient
        # A connection found dead before DATA is harmless: nothing was handed over, so
        # reconnect once and start the envelope again.
        announced = progress is None
        for attempt in (1, 2):
            client = await self._connected(lane)
            try:
                if mail.utf8 and not await self._offers_smtputf8(client):
                    return PermanentFailure(
                        f"{recipient!r} has a non-ASCII user part, which needs SMTPUTF8, "
                        f"and {self.settings.where} does not offer it"
                    )
                if not announced:
                    assert progress is not None
                    progress.started(mail.message)
                    announced = True
                if mail.utf8:
                    await client.mail(sender, options=["SMTPUTF8"])
                    await client.rcpt(recipient, encoding="utf-8")
                else:
                    await client.mail(sender)
                    await client.rcpt(recipient)
                break
            except aiosmtplib.SMTPSenderRefused as exc:
                if exc.code >= 500:
                    await self._reset(lane, client)
                    raise ChannelError(
                        f"{self.settings.where} refuses the sender {sender!r} "
                        f"({exc.code} {exc.message}); check [email] from in winback.toml"
                    ) from None
                return await self._refused(lane, client, exc)
            except aiosmtplib.SMTPResponseException as exc:
                return await self._refused(lane, client, exc)
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError):
                await self._disconnect(lane, polite=False)
                if attempt == 2:
                    return TemporaryFailure(f"{self.settings.where} closed the connection")
        try:
            response = await client.data(mail.data)
        except aiosmtplib.SMTPResponseException as exc:
            return await self._refused(lane, client, exc)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            await self._disconnect(lane, polite=False)
            return UnknownOutcome(
                f"the connection to {self.settings.where} broke during DATA ({exc}); "
                "the message may have been delivered"
            )
        return Sent(provider_id=response.message or None)

    @staticmethod
    async def _offers_smtputf8(client: aiosmtplib.SMTP) -> bool:
        """Whether the server's EHLO lists SMTPUTF8 (RFC 6531)."""
        if client.is_ehlo_or_helo_needed:
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                return False
        return client.supports_extension("smtputf8")

    async def _refused(
        self, lane: _Lane, client: aiosmtplib.SMTP, exc: aiosmtplib.SMTPResponseException
    ) -> SendResult:
        """The result of a refusal, after clearing the transaction (or, on 421, the
        connection the server is closing: the next send opens a new one)."""
        if exc.code == 421:
            await self._disconnect(lane, polite=False)
        else:
            await self._reset(lane, client)
        reason = f"{exc.code} {exc.message}"
        if exc.code >= 500:
            return PermanentFailure(reason, code=str(exc.code), event=EventType.BOUNCE_HARD)
        return TemporaryFailure(reason, code=str(exc.code))
