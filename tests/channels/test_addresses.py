"""Internationalised addresses on the wire, against a real aiosmtpd server: a Unicode
domain goes out in IDNA (punycode) in the envelope and in To:, a non-ASCII user part
needs SMTPUTF8, and an address that cannot be written fails alone, never the batch."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.channels.conftest import email_to
from tests.channels.smtp_server import CountingController, RecordingHandler
from winback.channels import (
    EmailComposer,
    FileSender,
    PermanentFailure,
    Sent,
    SmtpSender,
    SmtpSettings,
    send_batch,
)

StartServer = Callable[..., tuple[CountingController, RecordingHandler]]
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def settings(controller: CountingController) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=controller.port)


def test_a_unicode_domain_goes_out_as_punycode_and_the_batch_goes_on(
    smtp_server: StartServer, composer: EmailComposer
) -> None:
    controller, handler = smtp_server()
    batch = [
        email_to("lena@bücher.example", 1),
        email_to("anne@example.org", 2),
        email_to("theo@bü☃cher.example", 3),  # a snowman: not a label IDNA can write
        email_to("marc@example.org", 4),
    ]
    with SmtpSender(settings(controller), composer) as sender:
        results = send_batch(sender, batch)

    assert isinstance(results[0], Sent) and isinstance(results[1], Sent)
    assert isinstance(results[2], PermanentFailure) and results[2].event is None
    assert "theo@bü☃cher.example" in results[2].reason and "IDNA" in results[2].reason
    assert isinstance(results[3], Sent)
    assert [r.rcpt_tos for r in handler.received] == [
        ["lena@xn--bcher-kva.example"],
        ["anne@example.org"],
        ["marc@example.org"],
    ]
    assert handler.received[0].message["To"] == "lena@xn--bcher-kva.example"


def test_a_non_ascii_user_part_goes_out_with_smtputf8_when_the_server_offers_it(
    smtp_server: StartServer, composer: EmailComposer
) -> None:
    controller, handler = smtp_server()  # aiosmtpd's Controller offers SMTPUTF8
    with SmtpSender(settings(controller), composer) as sender:
        result = sender.send(email_to("josé@bücher.example", 1))

    assert isinstance(result, Sent)
    assert [r.rcpt_tos for r in handler.received] == [["josé@xn--bcher-kva.example"]]
    assert handler.received[0].message["To"] == "josé@xn--bcher-kva.example"


def test_without_smtputf8_that_message_alone_fails_and_says_why(
    smtp_server: StartServer, composer: EmailComposer
) -> None:
    controller, handler = smtp_server(enable_SMTPUTF8=False)
    batch = [email_to("josé@example.org", 1), email_to("anne@example.org", 2)]
    with SmtpSender(settings(controller), composer) as sender:
        first, second = send_batch(sender, batch)

    assert isinstance(first, PermanentFailure) and first.event is None
    assert "SMTPUTF8" in first.reason and "josé@example.org" in first.reason
    assert isinstance(second, Sent)
    assert [r.rcpt_tos for r in handler.received] == [["anne@example.org"]]


def test_the_file_channel_writes_the_punycode_address_too(
    tmp_path: Path, composer: EmailComposer
) -> None:
    directory = tmp_path / "out"
    sender = FileSender(directory, composer)
    results = send_batch(sender, [email_to("lena@bücher.example", 7), email_to("x@", 8)])
    assert isinstance(results[0], Sent) and isinstance(results[1], PermanentFailure)
    assert b"To: lena@xn--bcher-kva.example\r\n" in (directory / "00000007.eml").read_bytes()
