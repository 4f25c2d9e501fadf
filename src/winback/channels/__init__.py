"""The sending channels: email over SMTP, SMS through SMSFactor, and a file channel for
dry runs, all behind one small interface (:class:`Sender`: ``send`` and ``close``).

    with closing(sender_for(workspace, Channel.EMAIL)) as sender:
        result = sender.send(OutgoingMessage.from_outbox(row))

``sender_for`` picks the implementation from ``winback.toml`` (``WINBACK_SMTP_URL``
overrides ``[email]``) and applies the channel's ``rate_per_second``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from winback.channels.base import (
    BatchResult,
    ChannelError,
    MessageError,
    OutgoingMessage,
    PermanentFailure,
    Progress,
    Sender,
    SendResult,
    Sent,
    TemporaryFailure,
    UnknownOutcome,
    send_batch,
)
from winback.channels.email_message import EmailComposer, make_message_id
from winback.channels.file import FileSender
from winback.channels.rate import RateLimiter, Throttled
from winback.channels.sms import SmsFactorSender
from winback.channels.sms_encoding import SmsLength, sms_length, split_parts, with_stop_mention
from winback.channels.smtp import ENV_SMTP_URL, SmtpSender, SmtpSettings
from winback.domain import SENDING_CHANNELS, Channel

if TYPE_CHECKING:
    from winback.workspace import Workspace

OUTBOX_FILES_DIR = "outbox-files"


def sender_for(
    workspace: Workspace,
    channel: Channel,
    *,
    dry_run: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Sender:
    """The sender of ``channel`` for a workspace: the file channel (into
    ``outbox-files/``) for a dry run or ``[sms] provider = "file"``, else SMTP or
    SMSFactor, throttled to the channel's ``rate_per_second``."""
    if channel not in SENDING_CHANNELS:
        raise ChannelError(f"winback does not send on the {channel.value} channel")
    config = workspace.config
    if channel == Channel.SMS and config.sms.provider == "smsfactor" and not dry_run:
        sms = config.sms
        return Throttled(
            SmsFactorSender(
                api_url=sms.api_url,
                api_token=sms.api_token,
                sender=sms.sender,
                stop_mention=sms.stop_mention,
            ),
            RateLimiter(sms.rate_per_second),
        )
    composer = EmailComposer.of(workspace)
    if dry_run or channel == Channel.SMS:
        return FileSender(
            workspace.path / OUTBOX_FILES_DIR,
            composer,
            sms_sender=config.sms.sender,
            stop_mention=config.sms.stop_mention,
        )
    settings = SmtpSettings.resolve(config.email, os.environ if environ is None else environ)
    return Throttled(SmtpSender(settings, composer), RateLimiter(config.email.rate_per_second))


__all__ = [
    "ENV_SMTP_URL",
    "OUTBOX_FILES_DIR",
    "BatchResult",
    "ChannelError",
    "EmailComposer",
    "FileSender",
    "MessageError",
    "OutgoingMessage",
    "PermanentFailure",
    "Progress",
    "RateLimiter",
    "SendResult",
    "Sender",
    "Sent",
    "SmsFactorSender",
    "SmsLength",
    "SmtpSender",
    "SmtpSettings",
    "TemporaryFailure",
    "Throttled",
    "UnknownOutcome",
    "make_message_id",
    "send_batch",
    "sender_for",
    "sms_length",
    "split_parts",
    "with_stop_mention",
]
