"""The file channel: what a dry run writes instead of sending."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from email import message_from_bytes, policy

from sqlalchemy import insert, select

from tests.builders import add_contact, day
from tests.channels.conftest import email_to, sms_to
from winback.channels import OUTBOX_FILES_DIR, FileSender, OutgoingMessage, Sent, sender_for
from winback.domain import Channel
from winback.links import Links
from winback.store.schema import outbox
from winback.workspace import Workspace

TOML = (
    '[workspace]\nname = "Eole"\npublic_url = "https://t.eole.example"\n'
    '[email]\nhost = "192.0.2.1"\nfrom = "Eole <news@eole.example>"\n'
    'unsubscribe_mailto = "unsub@eole.example"\n'
    '[sms]\nprovider = "file"\nsender = "EOLE"\nstop_mention = "STOP au 36111"\n'
)


def test_a_dry_run_writes_each_email_as_eml_with_an_index(
    configure: Callable[[str], Workspace],
) -> None:
    workspace = configure(TOML)
    sender = sender_for(workspace, Channel.EMAIL, dry_run=True)
    assert isinstance(sender, FileSender)  # nothing goes near 192.0.2.1
    results = [sender.send(email_to(f"c{n}@example.org", n)) for n in (1, 2)]
    sender.close()

    assert results == [Sent(provider_id="file:00000001.eml"), Sent("file:00000002.eml")]
    folder = workspace.path / OUTBOX_FILES_DIR
    email = message_from_bytes((folder / "00000001.eml").read_bytes(), policy=policy.default)
    assert email["To"] == "c1@example.org"
    assert email["Subject"] == "Vous nous manquez, Éloïse"
    assert email["List-Unsubscribe"].startswith("<mailto:unsub@eole.example?subject=")
    assert "<https://t.eole.example/u/" in email["List-Unsubscribe"]
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    index = [json.loads(line) for line in (folder / "email.jsonl").read_text().splitlines()]
    assert [(row["outbox_id"], row["to"], row["file"]) for row in index] == [
        (1, "c1@example.org", "00000001.eml"),
        (2, "c2@example.org", "00000002.eml"),
    ]
    assert index[0]["message_id"] == "<m1.winback@shop.example>"


def test_sms_provider_file_logs_the_final_text_and_its_parts(
    configure: Callable[[str], Workspace],
) -> None:
    workspace = configure(TOML)
    sender = sender_for(workspace, Channel.SMS)
    result = sender.send(sms_to("+33612345678", 7, body_text="Êtes-vous là ? " + "x" * 60))
    sender.close()

    assert result == Sent(provider_id="file:sms.jsonl", parts=2)
    [line] = (workspace.path / OUTBOX_FILES_DIR / "sms.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["to"] == "+33612345678" and record["sender"] == "EOLE"
    assert record["text"].endswith("\nSTOP au 36111")
    # 15 + 60 characters of body, a line break, 13 of mention: 89 UCS-2 units in 2 parts.
    assert (record["encoding"], record["units"], record["parts"]) == ("UCS-2", 89, 2)


def test_a_stored_outbox_row_becomes_the_message_that_is_written(
    configure: Callable[[str], Workspace],
) -> None:
    workspace = configure(TOML)
    created = datetime(2026, 3, 2, 9, 0)
    with workspace.engine.begin() as connection:
        contact = add_contact(connection, email="lea@example.org", created_at=day(2025, 1, 5))
        connection.execute(
            insert(outbox),
            {
                "idempotency_key": "enrollment:1:step:miss_you",
                "contact_id": contact,
                "channel": "email",
                "status": "sending",
                "to_address": "lea@example.org",
                "subject": "Léa, on vous garde une place",
                "body_text": "Bonjour Léa",
                "body_html": None,
                "headers": {"X-Journey": "winback"},
                "message_id": "<o1.winback@eole.example>",
                "created_at": created,
                "due_at": created,
            },
        )
        row = connection.execute(select(outbox)).mappings().one()

    message = OutgoingMessage.from_outbox(dict(row))
    sender = sender_for(workspace, Channel.EMAIL, dry_run=True)
    assert sender.send(message) == Sent(provider_id=f"file:{row['id']:08d}.eml")
    sender.close()

    data = (workspace.path / OUTBOX_FILES_DIR / f"{row['id']:08d}.eml").read_bytes()
    email = message_from_bytes(data, policy=policy.default)
    assert email["Message-ID"] == "<o1.winback@eole.example>"
    assert email["X-Journey"] == "winback"
    assert email.get_content_type() == "text/plain"
    unsubscribe = email["List-Unsubscribe"].split("<https://t.eole.example/u/", 1)[1]
    token = unsubscribe.split(">", 1)[0]
    assert Links.of(workspace).verify_unsubscribe(token, now=day(2030, 1, 1)).contact_id == contact
