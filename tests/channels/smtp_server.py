"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, counts the
connections it accepts, and answers what a test scripts: 4xx or 5xx at RCPT, MAIL or
DATA, or a connection cut in the middle of DATA."""

from __future__ import annotations

import socket
import ssl
from collections import defaultdict, deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


def body_of(message: EmailMessage, subtype: str) -> str:
    """The text of a received message's ``plain`` or ``html`` body."""
    part = message.get_body((subtype,))
    assert part is not None, f"no {subtype} body"
    content: str = part.get_content()
    return content


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class RecordingHandler:
    received: list[Received] = field(default_factory=list)
    # Scripted answers, consumed in order: per recipient at RCPT, and for MAIL and DATA.
    rcpt_answers: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    mail_answers: deque[str] = field(default_factory=deque)
    data_answers: deque[str] = field(default_factory=deque)
    cut_during_data: int = 0

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.mail_answers:
            return self.mail_answers.popleft()
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        answers = self.rcpt_answers.get(address)
        if answers:
            return answers.popleft()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.cut_during_data:
            self.cut_during_data -= 1
            assert server.transport is not None
            server.transport.close()
            return "250 never seen"
        if self.data_answers:
            return self.data_answers.popleft()
        auth = session.auth_data
        assert server.transport is not None
        # STARTTLS fills session.ssl; an implicit-TLS connection shows on its transport.
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        self.received.append(
            Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                data=bytes(envelope.original_content or b""),
                tls=tls,
                login=auth.login.decode() if isinstance(auth, LoginPassword) else None,
            )
        )
        return f"250 2.0.0 Ok: queued as Q{len(self.received)}"


class CountingController(Controller):
    """Counts the connections its clients open (not the one ``start`` makes itself)."""

    def __init__(self, handler: RecordingHandler, **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
        self.connections = 0

    def factory(self) -> SMTP:
        self.connections += 1
        smtp: SMTP = super().factory()  # type: ignore[no-untyped-call]
        return smtp

    def start(self) -> None:
        super().start()
        self.connections = 0


def password_checker(users: dict[str, str]) -> Any:
    """An aiosmtpd authenticator accepting ``users`` (login to password)."""

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = users.get(auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticate


def server_tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
