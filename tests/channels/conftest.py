"""Fixtures of the channel tests: a real SMTP server and an SMSFactor stand-in on
loopback, TLS and DKIM keys made with openssl, and workspaces configured for them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.channels.smsfactor_stand_in import SmsFactorStandIn
from tests.channels.smtp_server import CountingController, RecordingHandler
from winback.channels import EmailComposer, OutgoingMessage
from winback.domain import Channel
from winback.links import Links
from winback.workspace import Workspace

PUBLIC_URL = "https://news.shop.example"
FROM = "Boutique Éole <news@shop.example>"


@pytest.fixture
def links() -> Links:
    return Links(secret=b"k" * 32, public_url=PUBLIC_URL)


@pytest.fixture
def composer(links: Links) -> EmailComposer:
    return EmailComposer(
        from_address=FROM,
        links=links,
        list_name="Boutique Éole",
        unsubscribe_mailto="unsubscribe@shop.example",
    )


def email_to(address: str, number: int = 1, **fields: Any) -> OutgoingMessage:
    """An email of the outbox, as the journey engine would queue it; ``fields`` override."""
    message = OutgoingMessage(
        channel=Channel.EMAIL,
        contact_id=100 + number,
        to_address=address,
        idempotency_key=f"enrollment:{number}:step:miss_you",
        outbox_id=number,
        subject="Vous nous manquez, Éloïse",
        body_text="Bonjour Éloïse,\nRevenez voir nos nouveautés : https://shop.example/new\n",
        body_html='<html><body><p>Bonjour Éloïse,</p><a href="https://shop.example/new">'
        "Nouveautés</a></body></html>",
        message_id=f"<m{number}.winback@shop.example>",
    )
    return replace(message, **fields)


def sms_to(number: str, outbox_id: int = 1, **fields: Any) -> OutgoingMessage:
    """An SMS of the outbox; ``fields`` override."""
    message = OutgoingMessage(
        channel=Channel.SMS,
        contact_id=200 + outbox_id,
        to_address=number,
        idempotency_key=f"enrollment:{outbox_id}:step:sms",
        outbox_id=outbox_id,
        body_text="Boutique Eole : -20% sur tout ce week-end avec le code RETOUR20",
        message_id=f"<s{outbox_id}.winback@shop.example>",
    )
    return replace(message, **fields)


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., tuple[CountingController, RecordingHandler]]]:
    """Start an SMTP server on loopback with aiosmtpd options; stopped after the test."""
    started: list[CountingController] = []

    def start(**options: Any) -> tuple[CountingController, RecordingHandler]:
        handler = RecordingHandler()
        controller = CountingController(handler, **options)
        controller.start()
        started.append(controller)
        return controller, handler

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def smsfactor() -> Iterator[SmsFactorStandIn]:
    server = SmsFactorStandIn(token="test-token-123")
    server.start()
    yield server
    server.stop()


def openssl(*args: str) -> bytes:
    return subprocess.run(["openssl", *args], check=True, capture_output=True).stdout


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    )  # fmt: skip
    return str(cert), str(key)


@pytest.fixture(scope="session")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """An RSA private key file for DKIM and the TXT record publishing its public key."""
    folder = tmp_path_factory.mktemp("dkim")
    private = folder / "dkim.pem"
    openssl("genrsa", "-traditional", "-out", str(private), "2048")
    public = openssl("rsa", "-in", str(private), "-pubout", "-outform", "PEM").decode()
    body = "".join(line for line in public.splitlines() if not line.startswith("-----"))
    return private, f"v=DKIM1; k=rsa; p={body}".encode()


@pytest.fixture
def configure(sqlite_workspace: Workspace) -> Iterator[Callable[[str], Workspace]]:
    """Rewrite the workspace's winback.toml with the given sections and reopen it."""
    opened: list[Workspace] = []

    def write(toml: str) -> Workspace:
        (sqlite_workspace.path / "winback.toml").write_text(toml, encoding="utf-8")
        opened.append(Workspace.open(sqlite_workspace.path))
        return opened[-1]

    yield write
    for workspace in opened:
        workspace.close()
