"""The bytes of a marketing email: the MIME structure (text and HTML alternatives), the
headers mailbox providers ask of bulk senders (Message-ID, Date, List-Id, a one-click
List-Unsubscribe per RFC 8058 with both ``mailto:`` and ``https:``), and an optional DKIM
signature that covers them. The SMTP channel sends these bytes; the file channel writes
them to ``.eml`` files, so a dry run shows exactly what would have gone out.

The bytes are put together here rather than by ``email.message.EmailMessage``: its
header objects parse and re-fold every header on every message, which was two thirds of
the time of a dispatch. The message has one fixed shape (a few headers, a text and an
HTML part), so the stdlib's encoders do the parts that need care (RFC 2047 encoded words
with ``email.header``, addresses with ``email.utils.formataddr``, quoted-printable with
``binascii``), and any mail parser reads the result back (the tests do)."""

from __future__ import annotations

import binascii
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from unicodedata import normalize

import dkim
import idna
from dkim.crypto import UnparsableKeyError, parse_pem_private_key

from winback.channels.base import MessageError, OutgoingMessage
from winback.domain import Channel
from winback.errors import ConfigError
from winback.links import Links

if TYPE_CHECKING:
    from winback.workspace import Workspace

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


def wire_address(address: str) -> tuple[str, bool]:
    """An email address as it goes on the wire, and whether it needs SMTPUTF8: a Unicode
    domain in its IDNA (punycode) form, ``user@bücher.com`` -> ``user@xn--bcher-kva.com``;
    a non-ASCII local part stays as it is and needs a server that offers SMTPUTF8. The
    stored address is not changed (its canonical form is the contacts' rule): this is
    the channel's encoding only. Raises :class:`MessageError` for an address that
    cannot be written."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise MessageError(f"{address!r} is not an email address (no user@domain)")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise MessageError(
                f"the domain of {address!r} cannot be written in IDNA (punycode): {exc}"
            ) from None
    return f"{local}@{domain}", not local.isascii()


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

    @cached_property
    def _fixed_headers(self) -> bytes:
        """The headers every message of this sender shares, encoded once."""
        lines = [f"From: {_address_header(self.from_address)}"]
        if self.reply_to:
            lines.append(f"Reply-To: {_address_header(self.reply_to)}")
        lines += [
            f"List-Id: {self.list_id}",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "MIME-Version: 1.0",
        ]
        return "".join(f"{line}\r\n" for line in lines).encode("ascii")

    def render(self, message: OutgoingMessage, *, now: datetime) -> bytes:
        """The wire bytes of ``message`` dated ``now`` (CRLF line ends): the text and HTML
        parts as ``multipart/alternative``, DKIM-signed when configured. Raises
        :class:`MessageError` when this message cannot be built or addressed."""
        if message.body_text is None and message.body_html is None:
            raise MessageError(
                f"outbox message {message.idempotency_key!r} has neither a text nor an "
                "HTML body: render it again before dispatch"
            )
        headers = [
            f"To: {wire_address(message.to_address)[0]}",
            f"Subject: {_text_header(message.subject or '')}",
            f"Date: {format_datetime(now)}",
            f"Message-ID: {message.message_id or make_message_id(self.from_address)}",
            f"List-Unsubscribe: {self.list_unsubscribe(message.contact_id)}",
        ]
        for name, value in message.headers.items():
            if name.lower() in RESERVED_HEADERS:
                raise MessageError(
                    f"outbox message {message.idempotency_key!r}: header {name!r} is set "
                    "by the email channel and cannot come from the template"
                )
            headers.append(f"{name}: {_text_header(value)}")
        parts = [
            _part(body, subtype)
            for body, subtype in ((message.body_text, "plain"), (message.body_html, "html"))
            if body is not None
        ]
        if len(parts) == 1:
            body = parts[0]
        else:
            # "=_" never occurs in quoted-printable text, so no part can contain the boundary.
            boundary = f"=_winback_{secrets.token_hex(12)}"
            body = (
                f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode()
                + b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts)
                + f"--{boundary}--\r\n".encode()
            )
        data = (
            # UTF-8 only in a To: that needs SMTPUTF8 (RFC 6532); the rest is ASCII.
            "".join(f"{line}\r\n" for line in headers).encode("utf-8") + self._fixed_headers + body
        )
        return self.dkim_key.sign(data) if self.dkim_key else data


def _text_header(value: str) -> str:
    """A header value as ASCII: RFC 2047 encoded words when it is not, folded with CRLF."""
    if value.isascii():
        return " ".join(value.split())
    return Header(value, "utf-8").encode(linesep="\r\n")


def _address_header(value: str) -> str:
    """``Name <user@domain>`` with the name encoded when it is not ASCII."""
    name, address = parseaddr(value)
    return formataddr((name, address)) if name else address


def _part(body: str, subtype: str) -> bytes:
    """One MIME part in UTF-8 and quoted-printable, headers included."""
    text = body.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True)
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode("ascii") + encoded
