"""The file channel, for dry runs: every email is written as an ``.eml`` file (the very
bytes SMTP would have carried, unsubscribe headers and DKIM included) and indexed in
``email.jsonl``; every SMS is a line of ``sms.jsonl`` with its final text (opt-out
mention included), encoding and parts. Open the ``.eml`` files in any mail client."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from winback.channels.base import OutgoingMessage, SendResult, Sent
from winback.channels.email_message import EmailComposer
from winback.channels.sms_encoding import sms_length, with_stop_mention
from winback.clock import utcnow
from winback.domain import Channel

EMAIL_INDEX = "email.jsonl"
SMS_LOG = "sms.jsonl"


def _file_stem(message: OutgoingMessage) -> str:
    if message.outbox_id is not None:
        return f"{message.outbox_id:08d}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", message.idempotency_key)


class FileSender:
    """Writes messages into ``directory`` instead of sending them."""

    def __init__(
        self,
        directory: Path,
        composer: EmailComposer,
        *,
        sms_sender: str = "",
        stop_mention: str = "",
    ) -> None:
        self.directory = directory
        self.composer = composer
        self.sms_sender = sms_sender
        self.stop_mention = stop_mention
        directory.mkdir(parents=True, exist_ok=True)

    def send(self, message: OutgoingMessage) -> SendResult:
        now = utcnow()
        if message.channel == Channel.SMS:
            text = with_stop_mention(message.body_text or "", self.stop_mention)
            length = sms_length(text)
            self._append(
                SMS_LOG,
                {
                    **self._common(message, now.isoformat()),
                    "sender": self.sms_sender,
                    "text": text,
                    "encoding": length.encoding,
                    "units": length.units,
                    "parts": length.parts,
                },
            )
            return Sent(provider_id=f"file:{SMS_LOG}", parts=length.parts)
        name = f"{_file_stem(message)}.eml"
        (self.directory / name).write_bytes(self.composer.render(message, now=now))
        self._append(
            EMAIL_INDEX,
            {**self._common(message, now.isoformat()), "subject": message.subject, "file": name},
        )
        return Sent(provider_id=f"file:{name}")

    @staticmethod
    def _common(message: OutgoingMessage, written_at: str) -> dict[str, Any]:
        return {
            "outbox_id": message.outbox_id,
            "idempotency_key": message.idempotency_key,
            "contact_id": message.contact_id,
            "to": message.to_address,
            "message_id": message.message_id,
            "written_at": written_at,
        }

    def _append(self, name: str, record: dict[str, Any]) -> None:
        with (self.directory / name).open("a", encoding="utf-8") as log:
            log.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        """Nothing to release: every write is complete when ``send`` returns."""
