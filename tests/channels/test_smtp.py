"""Email over SMTP against a real aiosmtpd server on loopback: what arrives, how the
server's answers become results, connection reuse, TLS, login and DKIM."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest

from tests.channels.conftest import FROM, PUBLIC_URL, email_to
from tests.channels.smtp_server import (
    CountingController,
    RecordingHandler,
    free_port,
    password_checker,
    server_tls_context,
)
from winback.channels import (
    ENV_SMTP_URL,
    ChannelError,
    EmailComposer,
    PermanentFailure,
    Sent,
    SmtpSender,
    SmtpSettings,
    TemporaryFailure,
    Throttled,
    UnknownOutcome,
    sender_for,
)
from winback.config import EmailSection
from winback.domain import Channel, EventType
from winback.errors import ConfigError
from winback.links import Links
from winback.workspace import Workspace

StartServer = Callable[..., tuple[CountingController, RecordingHandler]]
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def plain(controller: CountingController, **fields: object) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=controller.port, **fields)  # type: ignore[arg-type]


def test_the_email_arrives_with_its_headers_parts_and_signed_links(
    smtp_server: StartServer, composer: EmailComposer, links: Links
) -> None:
    controller, handler = smtp_server()
    # The renderer's part: the links of both bodies go through the tracker.
    draft = email_to("eloise@example.org", headers={"X-Campaign": "winback-2026"})
    message = replace(
        draft,
        body_html=links.track_html(draft.body_html or "", "<m1.winback@shop.example>"),
        body_text=links.track_text(draft.body_text or "", "<m1.winback@shop.example>"),
    )
    with SmtpSender(plain(controller), composer) as sender:
        result = sender.send(message)

    assert result == Sent(provider_id="2.0.0 Ok: queued as Q1")
    [received] = handler.received
    assert received.mail_from == "news@shop.example"
    assert received.rcpt_tos == ["eloise@example.org"]
    email = received.message
    assert email["From"] == FROM
    assert email["To"] == "eloise@example.org"
    assert email["Subject"] == "Vous nous manquez, Éloïse"
    assert email["Message-ID"] == "<m1.winback@shop.example>"
    assert email["Date"] is not None
    assert email["List-Id"] == "Boutique Éole <boutique-eole.shop.example>"
    assert email["X-Campaign"] == "winback-2026"
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # List-Unsubscribe: a mailto and an https link, both naming this contact and channel.
    mailto, https = (part.strip().strip("<>") for part in email["List-Unsubscribe"].split(","))
    assert mailto.startswith("mailto:unsubscribe@shop.example?subject=unsubscribe%20")
    assert https.startswith(f"{PUBLIC_URL}/u/")
    for token in (mailto.rsplit("%20", 1)[1], https.rsplit("/", 1)[1]):
        unsubscribe = links.verify_unsubscribe(token, now=NOW)
        assert (unsubscribe.contact_id, unsubscribe.channel) == (101, Channel.EMAIL)

    assert email.get_content_type() == "multipart/alternative"
    text_part, html_part = email.iter_parts()
    text, html = text_part.get_content(), html_part.get_content()
    assert text_part.get_content_type() == "text/plain"
    assert html_part.get_content_type() == "text/html"
    assert "Bonjour Éloïse" in text and "Bonjour Éloïse" in html
    # The links the reader clicks go through the tracker, to the page the template named.
    assert "https://shop.example/new" not in text
    click_token = text.split(f"{PUBLIC_URL}/c/", 1)[1].split()[0]
    assert links.verify_click(click_token, now=NOW).url == "https://shop.example/new"
    assert f'href="{PUBLIC_URL}/c/' in html
    pixel = html.split(f'src="{PUBLIC_URL}/o/', 1)[1].split('"', 1)[0]
    assert links.verify_open(pixel, now=NOW).message_id == "<m1.winback@shop.example>"


def test_fifty_messages_share_one_connection(
    smtp_server: StartServer, composer: EmailComposer
) -> None:
    controller, handler = smtp_server()
    with SmtpSender(plain(controller), composer) as sender:
        results = [sender.send(email_to(f"c{n}@example.org", n)) for n in range(1, 51)]
        assert sender.connections == 1

    assert all(isinstance(result, Sent) for result in results)
    assert len(handler.received) == 50
    assert [r.rcpt_tos[0] for r in handler.received] == [f"c{n}@example.org" for n in range(1, 51)]
    assert controller.connections == 1


def test_a_connection_the_server_dropped_is_opened_again(
    smtp_server: StartServer, composer: EmailComposer
) -> None:
    controller, handler = smtp_server(timeout=1.0)  # the server hangs up idle sessions
    with SmtpSender(plain(controller), composer) as sender:
        first = sender.send(email_to("a@example.org", 1))
        time.sleep(1.6)
        second = sender.send(email_to("b@example.org", 2))

    assert isinstance(first, Sent) and isinstance(second, Sent)
    assert [r.rcpt_tos for r in handler.received] == [["a@example.org"], ["b@example.org"]]
    assert controller.connections == 2


def test_a_4xx_answer_is_a_temporary_failure_and_the_retry_goes_through(
    smtp_server: StartServer, composer: EmailComposer
) -> None:
    controller, handler = smtp_server()
    handler.rcpt_answers["busy@example.org"].append("451 4.7.1 Greylisted, try again later")
    with SmtpSender(plain(controller), composer) as sender:
        first = sender.send(email_to("busy@example.org", 1))
        other = sender.send(email_to("other@example.org", 2))
        retry = sender.send(email_to("busy@example.org", 1))

    assert isinstance(first, TemporaryFailure)
    assert first.code == "451" and "Greylisted" in first.reason
    assert isinstance(other, Sent) and isinstance(retry, Sent)
    assert [r.rcpt_tos for r in handler.received] == [["other@example.org"], ["busy@example.org"]]
    assert controller.connections == 1


def test_a_5xx_answer_to_the_recipient_is_a_hard_bounce(
    smtp_server: StartServer, composer: EmailComposer
) -> None:
    controller, handler = smtp_server()
    handler.rcpt_answers["gone@example.org"].append("550 5.1.1 No such user")
    with SmtpSender(plain(controller), composer) as sender:
        bounced = sender.send(email_to("gone@example.org", 1))
        after = sender.send(email_to("here@example.org", 2))

    assert bounced == PermanentFailure(
        "550 5.1.1 No such user", code="550", event=EventType.BOUNCE_HARD
    )
    assert isinstance(after, Sent)
    assert [r.rcpt_tos for r in handler.received] == [["here@example.org"]]


def test_a_5xx_answer_to_the_data_is_permanent_and_a_4xx_temporary(
    smtp_server: StartServer, composer: EmailComposer
) -> None:
    controller, handler = smtp_server()
    handler.data_answers.extend(["554 5.7.1 Message rejected as spam", "452 4.3.1 Disk full"])
    with SmtpSender(plain(controller), composer) as sender:
        rejected = sender.send(email_to("a@example.org", 1))
        full = sender.send(email_to("b@example.org", 2))
        fine = sender.send(email_to("c@example.org", 3))

    assert isinstance(rejected, PermanentFailure) and rejected.code == "554"
    assert rejected.event == EventType.BOUNCE_HARD
    assert isinstance(full, TemporaryFailure) and full.code == "452"
    assert isinstance(fine, Sent)
    assert len(handler.received) == 1


def test_a_connection_cut_during_data_is_an_unknown_outcome_never_a_failure(
    smtp_server: StartServer, composer: EmailComposer
) -> None:
    controller, handler = smtp_server()
    handler.cut_during_data = 1
    with SmtpSender(plain(controller), composer) as sender:
        cut = sender.send(email_to("a@example.org", 1))
        next_one = sender.send(email_to("b@example.org", 2))

    assert isinstance(cut, UnknownOutcome)
    assert "may have been delivered" in cut.reason
    assert isinstance(next_one, Sent)
    assert controller.connections == 2


def test_a_refused_sender_address_stops_the_channel(
    smtp_server: StartServer, composer: EmailComposer
) -> None:
    controller, handler = smtp_server()
    handler.mail_answers.append("553 5.7.1 Sender address not allowed")
    with (
        SmtpSender(plain(controller), composer) as sender,
        pytest.raises(ChannelError, match=r"news@shop.example.*\[email\] from"),
    ):
        sender.send(email_to("a@example.org", 1))
    assert handler.received == []


def test_an_unreachable_server_raises_a_channel_error_naming_it(composer: EmailComposer) -> None:
    port = free_port()
    with (
        SmtpSender(SmtpSettings(host="127.0.0.1", port=port), composer, timeout=5) as sender,
        pytest.raises(ChannelError, match=rf"127\.0\.0\.1:{port}.*\[email\] host, port"),
    ):
        sender.send(email_to("a@example.org", 1))


def test_login_with_the_configured_user(smtp_server: StartServer, composer: EmailComposer) -> None:
    controller, handler = smtp_server(
        authenticator=password_checker({"mailer": "s3cret"}), auth_require_tls=False
    )
    good = plain(controller, username="mailer", password="s3cret")
    with SmtpSender(good, composer) as sender:
        assert isinstance(sender.send(email_to("a@example.org", 1)), Sent)
    assert handler.received[0].login == "mailer"

    bad = plain(controller, username="mailer", password="wrong")
    with (
        SmtpSender(bad, composer) as sender,
        pytest.raises(ChannelError, match=r"refused the login of 'mailer'.*password"),
    ):
        sender.send(email_to("b@example.org", 2))
    assert len(handler.received) == 1


def test_starttls_then_login(
    smtp_server: StartServer,
    composer: EmailComposer,
    tls_files: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The client trusts the test certificate the way an operator trusts a private CA.
    monkeypatch.setenv("SSL_CERT_FILE", tls_files[0])
    controller, handler = smtp_server(
        tls_context=server_tls_context(*tls_files),
        require_starttls=True,
        authenticator=password_checker({"mailer": "s3cret"}),
    )
    settings = plain(controller, tls="starttls", username="mailer", password="s3cret")
    with SmtpSender(settings, composer) as sender:
        assert isinstance(sender.send(email_to("a@example.org", 1)), Sent)
    [received] = handler.received
    assert received.tls and received.login == "mailer"


def test_implicit_tls(
    smtp_server: StartServer,
    composer: EmailComposer,
    tls_files: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", tls_files[0])
    controller, handler = smtp_server(ssl_context=server_tls_context(*tls_files))
    with SmtpSender(plain(controller, tls="tls"), composer) as sender:
        assert isinstance(sender.send(email_to("a@example.org", 1)), Sent)
    assert handler.received[0].tls


# The server side of a refused handshake leaves its SSL transport for the garbage
# collector (aiosmtpd), which pytest reports as unraisable warnings at random moments.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_untrusted_certificate_is_refused(
    smtp_server: StartServer, composer: EmailComposer, tls_files: tuple[str, str]
) -> None:
    controller, handler = smtp_server(ssl_context=server_tls_context(*tls_files))
    with (
        SmtpSender(plain(controller, tls="tls"), composer) as sender,
        pytest.raises(ChannelError, match="tls=tls"),
    ):
        sender.send(email_to("a@example.org", 1))
    assert handler.received == []


def test_winback_smtp_url_overrides_the_email_section() -> None:
    email = EmailSection.model_validate(
        {"host": "mail.internal", "port": 2525, "username": "u", "password": "p"}
    )
    assert SmtpSettings.resolve(email, {}) == SmtpSettings(
        host="mail.internal", port=2525, tls="none", username="u", password="p"
    )
    resolved = SmtpSettings.resolve(
        email, {ENV_SMTP_URL: "smtp+starttls://news%40shop.example:p%3Ass@relay.example"}
    )
    assert resolved == SmtpSettings(
        host="relay.example",
        port=587,
        tls="starttls",
        username="news@shop.example",
        password="p:ss",
    )
    assert SmtpSettings.resolve(email, {ENV_SMTP_URL: "smtps://relay.example"}).port == 465
    assert SmtpSettings.resolve(email, {ENV_SMTP_URL: "smtp://relay.example:26"}) == SmtpSettings(
        host="relay.example", port=26
    )
    with pytest.raises(ConfigError, match="WINBACK_SMTP_URL: unknown scheme 'http://'"):
        SmtpSettings.resolve(email, {ENV_SMTP_URL: "http://relay.example"})
    assert "p:ss" not in repr(resolved)


def test_sender_for_reads_the_workspace_and_the_url_override(
    smtp_server: StartServer, configure: Callable[[str], Workspace]
) -> None:
    controller, handler = smtp_server()
    workspace = configure(
        '[workspace]\nname = "Boutique"\npublic_url = "https://t.shop.example"\n'
        '[email]\nhost = "192.0.2.1"\nport = 25\nfrom = "Boutique <hello@shop.example>"\n'
        "rate_per_second = 1000\n"
    )
    sender = sender_for(
        workspace, Channel.EMAIL, environ={ENV_SMTP_URL: f"smtp://127.0.0.1:{controller.port}"}
    )
    try:
        assert isinstance(sender, Throttled) and sender.limiter.rate == 1000
        assert isinstance(sender.send(email_to("a@example.org", 1)), Sent)
    finally:
        sender.close()
    email = handler.received[0].message
    assert email["From"] == "Boutique <hello@shop.example>"
    # No mailto configured: the https link alone, under the workspace's public URL.
    assert email["List-Unsubscribe"].startswith("<https://t.shop.example/u/")
    assert "mailto:" not in email["List-Unsubscribe"]


def test_dkim_signature_verifies_and_covers_the_unsubscribe_headers(
    smtp_server: StartServer,
    configure: Callable[[str], Workspace],
    dkim_key: tuple[Path, bytes],
) -> None:
    key_file, txt_record = dkim_key
    controller, handler = smtp_server()
    workspace = configure(
        f'[email]\nhost = "127.0.0.1"\nport = {controller.port}\n'
        'from = "Boutique <news@shop.example>"\nunsubscribe_mailto = "unsub@shop.example"\n'
        f'dkim_domain = "shop.example"\ndkim_selector = "wb2026"\ndkim_key_file = "{key_file}"\n'
    )
    sender = sender_for(workspace, Channel.EMAIL, environ={})
    try:
        assert isinstance(sender.send(email_to("a@example.org", 1)), Sent)
    finally:
        sender.close()
    data = handler.received[0].data
    looked_up: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        looked_up.append(name)
        return txt_record

    assert dkim.verify(data, dnsfunc=dns)
    assert looked_up == [b"wb2026._domainkey.shop.example."]
    signature = handler.received[0].message["DKIM-Signature"].replace(" ", "").lower()
    signed = signature.split("h=", 1)[1].split(";", 1)[0].split(":")
    assert {"from", "subject", "list-unsubscribe", "list-unsubscribe-post"} <= set(signed)
    # A relay that rewrites the unsubscribe link breaks the signature.
    forged = data.replace(b"/u/", b"/x/", 1)
    assert not dkim.verify(forged, dnsfunc=dns)


def test_half_a_dkim_configuration_is_a_config_error(
    configure: Callable[[str], Workspace],
) -> None:
    with pytest.raises(ConfigError, match=r"email\.dkim_selector: DKIM signing needs"):
        configure('[email]\ndkim_domain = "shop.example"\n')
    workspace = configure(
        '[email]\ndkim_domain = "shop.example"\ndkim_selector = "s"\n'
        'dkim_key_file = "missing.pem"\n'
    )
    with pytest.raises(ConfigError, match=r"email\.dkim_key_file: cannot read .*missing\.pem"):
        EmailComposer.of(workspace)
