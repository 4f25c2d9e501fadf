"""The bytes of a marketing email: the MIME structure (text and HTML alternatives), the
headers mailbox providers ask of bulk senders (Message-ID, Date, List-Id, a one-click
List-Unsubscribe per RFC 8058 with both ``mailto:`` and ``https:``), and an optional DKIM
signature that covers them. The SMTP channel sends these bytes; the file channel writes
them to ``.eml`` files, so a dry run shows exactly what would have gone out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING
from unicodedata import normalize

import dkim
from dkim.crypto import UnparsableKeyError, parse_pem_private_key

from winback.channels.base import ChannelError, OutgoingMessage
from winback.domain import Channel
from winback.errors import ConfigError
from winback.links import Links

if TYPE_CHECKING:
    from winback.workspace import Workspace

# Headers folded at 998 octets (the RFC 5322 limit) rather than 78: the email package
# would otherwise turn a long List-Unsubscribe URL into an encoded word no client reads.
_WIRE = policy.SMTP.clone(max_line_length=998)

# Signed when present: the identity of the message and the unsubscribe headers, which
# RFC 8058 section 4 requires the DKIM signature to cover.
_SIGNED_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "mime-version",
    "content-type",
)

# Headers the composer sets itself; a template may add others (X-Campaign...).
RESERVED_HEADERS = frozenset({*_SIGNED_HEADERS, "dkim-signature", "content-transfer-encoding"})


def address_domain(address: str) -> str:
    """The domain of ``"Name <user@domain>"`` or ``user@domain``."""
    return parseaddr(address)[1].rpartition("@")[2].lower()


def make_message_id(from_address: str) -> str:
    """A new, unique Message-ID on the sender's domain, for the outbox to keep: the
    same value then names the message in the header, the open pixel and the clicks."""
    return make_msgid(idstring="winback", domain=address_domain(from_address) or "localhost")


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    private_key: bytes

    @classmethod
    def load(cls, domain: str, selector: str, key_file: Path) -> DkimKey:
        """Read and check a PEM private key (RSA) for signing."""
        try:
            pem = key_file.read_bytes()
            parse_pem_private_key(pem)
        except OSError as exc:
            raise ConfigError(
                f"winback.toml: email.dkim_key_file: cannot read {key_file} ({exc.strerror}); "
                "give the path of the PEM private key, relative to the workspace"
            ) from None
        except UnparsableKeyError:
            raise ConfigError(
                f"winback.toml: email.dkim_key_file: {key_file} is not a PEM RSA private key "
                "(create one with `openssl genrsa -traditional 2048`)"
            ) from None
        return cls(domain=domain, selector=selector, private_key=pem)

    def sign(self, data: bytes) -> bytes:
        """``data`` with a DKIM-Signature header in front."""
        present = {
            line.split(b":", 1)[0].strip().lower()
            for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            if line and not line[:1].isspace()
        }
        include = [name.encode() for name in _SIGNED_HEADERS if name.encode() in present]
        signature = dkim.sign(
            data,
            self.selector.encode("ascii"),
            self.domain.encode("ascii"),
            self.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=include,
        )
        return bytes(signature) + data


@dataclass(frozen=True)
class EmailComposer:
    """Turns an :class:`OutgoingMessage` into the bytes of an email."""

    from_address: str
    links: Links
    list_name: str
    reply_to: str | None = None
    unsubscribe_mailto: str | None = None
    dkim_key: DkimKey | None = None

    @classmethod
    def of(cls, workspace: Workspace) -> EmailComposer:
        """The composer of a workspace's ``[email]`` settings; loads the DKIM key when
        the DKIM keys are set (the config makes sure they are set together)."""
        email = workspace.config.email
        dkim_key = None
        if email.dkim_domain and email.dkim_selector and email.dkim_key_file:
            dkim_key = DkimKey.load(
                email.dkim_domain, email.dkim_selector, workspace.path / email.dkim_key_file
            )
        return cls(
            from_address=email.from_,
            links=Links.of(workspace),
            list_name=workspace.config.workspace.name,
            reply_to=email.reply_to,
            unsubscribe_mailto=email.unsubscribe_mailto,
            dkim_key=dkim_key,
        )

    @property
    def envelope_sender(self) -> str:
        """The address of the SMTP ``MAIL FROM``, where bounces return."""
        return parseaddr(self.from_address)[1]

    @property
    def list_id(self) -> str:
        """RFC 2919 List-Id: the workspace name and a dotted id on the sender's domain."""
        ascii_name = normalize("NFKD", self.list_name).encode("ascii", "ignore").decode()
        slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "winback"
        return formataddr((self.list_name, f"{slug}.{address_domain(self.from_address)}"))

    def list_unsubscribe(self, contact_id: int) -> str:
        token = self.links.unsubscribe_token(contact_id, Channel.EMAIL)
        https = self.links.unsubscribe_url(contact_id, Channel.EMAIL)
        if self.unsubscribe_mailto is None:
            return f"<{https}>"
        return f"<mailto:{self.unsubscribe_mailto}?subject=unsubscribe%20{token}>, <{https}>"

    def compose(self, message: OutgoingMessage, *, now: datetime) -> EmailMessage:
        """The email of ``message`` dated ``now``, without DKIM signature."""
        if message.body_text is None and message.body_html is None:
            raise ChannelError(
                f"outbox message {message.idempotency_key!r} has neither a text nor an "
                "HTML body: render it again before dispatch"
            )
        email = EmailMessage(policy=policy.SMTP)
        email["From"] = self.from_address
        email["To"] = message.to_address
        email["Subject"] = message.subject or ""
        email["Date"] = format_datetime(now)
        email["Message-ID"] = message.message_id or make_message_id(self.from_address)
        if self.reply_to:
            email["Reply-To"] = self.reply_to
        email["List-Id"] = self.list_id
        email["List-Unsubscribe"] = self.list_unsubscribe(message.contact_id)
        email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        for name, value in message.headers.items():
            if name.lower() in RESERVED_HEADERS:
                raise ChannelError(
                    f"outbox message {message.idempotency_key!r}: header {name!r} is set "
                    "by the email channel and cannot come from the template"
                )
            email[name] = value
        if message.body_text is not None:
            email.set_content(message.body_text)
            if message.body_html is not None:
                email.add_alternative(message.body_html, subtype="html")
        else:
            assert message.body_html is not None
            email.set_content(message.body_html, subtype="html")
        return email

    def render(self, message: OutgoingMessage, *, now: datetime) -> bytes:
        """The wire bytes of ``message`` (CRLF line ends), DKIM-signed when configured."""
        data = self.compose(message, now=now).as_bytes(policy=_WIRE)
        return self.dkim_key.sign(data) if self.dkim_key else data
