"""Every refusal lands on the suppression list, from every path, with an audit record and
the time the person refused: an import's status column or ``--status``, a webhook for an
address that is no contact, a contact whose refusal an older version left off the list."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.builders import add_contact, day
from tests.compliance.conftest import suppression_reasons, write
from tests.web.conftest import NOW as WEB_NOW
from tests.web.conftest import open_site
from winback.cli import app
from winback.compliance.suppression import address_hash, is_suppressed
from winback.domain import ChannelStatus
from winback.ingest.contacts import import_contacts
from winback.store.schema import audit, suppressions
from winback.workspace import Workspace

NOW = day(2025, 6, 30)
POSTMARK_TOKEN = "pm-webhook-secret"


def listed(cli: CliRunner, workspace: Workspace) -> list[dict[str, Any]]:
    result = cli.invoke(app, ["suppress", "list", "--json", "-w", str(workspace.path)])
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output))


def suppress_audit(workspace: Workspace) -> list[dict[str, Any]]:
    with workspace.engine.connect() as connection:
        rows = connection.execute(
            select(audit).where(audit.c.action == "suppress").order_by(audit.c.id)
        )
        return [dict(row) for row in rows.mappings()]


def test_status_option_puts_an_unsubscribed_export_on_the_list(
    workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    base = write(tmp_path, "base.csv", "email\nann@example.com\nbob@example.com\n")
    import_contacts(workspace, base, now=NOW)
    unsubscribed = write(
        tmp_path,
        "unsubscribed_members_export_4c1b9f.csv",
        """
        Email Address,First Name,Last Name
        ann@example.com,Ann,Martin
        carl@example.org,Carl,Petit
        """,
    )
    import_contacts(workspace, unsubscribed, now=NOW, status=ChannelStatus.UNSUBSCRIBED)
    entries = listed(cli, workspace)
    assert sorted((e["address"], e["reason"]) for e in entries) == [
        ("ann@example.com", "unsubscribe"),
        ("carl@example.org", "unsubscribe"),
    ]
    records = suppress_audit(workspace)
    assert len(records) == 2 and {r["actor"] for r in records} == {"import"}
    assert {r["details"]["file"] for r in records} == {"unsubscribed_members_export_4c1b9f.csv"}
    exported = cli.invoke(app, ["suppress", "export", "-w", str(workspace.path)])
    assert len(list(csv.DictReader(io.StringIO(exported.output)))) == 2


def test_a_cleaned_export_is_a_hard_bounce_on_the_list(
    workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    cleaned = write(tmp_path, "cleaned.csv", "Email Address\ndan@example.net\n")
    import_contacts(workspace, cleaned, now=NOW, status=ChannelStatus.BOUNCED)
    assert [(e["address"], e["reason"]) for e in listed(cli, workspace)] == [
        ("dan@example.net", "bounce_hard")
    ]


def test_brevo_blacklisted_columns_put_each_channel_on_its_list(
    workspace: Workspace, tmp_path: Path
) -> None:
    brevo = write(
        tmp_path,
        "brevo_contacts.csv",
        """
        EMAIL;SMS;EMAIL_BLACKLISTED;SMS_BLACKLISTED
        ann@example.com;+33612345678;true;false
        bob@example.com;+33612345679;false;true
        """,
    )
    import_contacts(workspace, brevo, now=NOW)
    assert suppression_reasons(workspace) == {"email": ["unsubscribe"], "sms": ["unsubscribe"]}
    with workspace.engine.connect() as connection:
        assert is_suppressed(connection, workspace, "email", "ann@example.com")
        assert is_suppressed(connection, workspace, "sms", "+33612345679")
        assert not is_suppressed(connection, workspace, "email", "bob@example.com")


def test_a_refusal_an_older_version_left_off_the_list_is_caught_up_on_reimport(
    workspace: Workspace, tmp_path: Path
) -> None:
    with workspace.engine.begin() as connection:
        add_contact(
            connection,
            email="eve@example.com",
            email_status="unsubscribed",
            email_status_at=day(2023, 2, 1),
            created_at=day(2022, 1, 1),
        )
    import_contacts(workspace, write(tmp_path, "again.csv", "email\neve@example.com\n"), now=NOW)
    with workspace.engine.connect() as connection:
        [entry] = connection.execute(select(suppressions)).mappings().all()
    assert entry["reason"] == "unsubscribe"
    # When the person refused, not when we noticed.
    assert entry["refused_at"] == day(2023, 2, 1).replace(tzinfo=None)


def test_an_import_of_subscribed_contacts_suppresses_no_one(
    workspace: Workspace, tmp_path: Path
) -> None:
    plain = write(tmp_path, "plain.csv", "email,phone\nann@example.com,0612345678\n")
    import_contacts(workspace, plain, now=NOW)
    assert suppression_reasons(workspace) == {"email": [], "sms": []}


@pytest.fixture
def postmark_workspace(workspace: Workspace) -> Any:
    config = workspace.path / "winback.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("[web]\n", f'[web]\npostmark_token = "{POSTMARK_TOKEN}"\n'), encoding="utf-8"
    )
    opened = Workspace.open(workspace.path)
    yield opened
    opened.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_hard_bounce_for_an_unknown_address_suppresses_it(
    postmark_workspace: Workspace, tmp_path: Path
) -> None:
    workspace = postmark_workspace
    bounced_at = WEB_NOW - timedelta(hours=1)
    record = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Email": "Gone.Away@Example.org",
        "BouncedAt": bounced_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Inactive": True,
    }
    async for site in open_site(workspace):
        answer = await site.client.post(
            "/webhooks/postmark",
            json=record,
            headers={"Authorization": f"Bearer {POSTMARK_TOKEN}"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["unmatched"] == 1
        await site.settled()
    with workspace.engine.connect() as connection:
        [entry] = connection.execute(select(suppressions)).mappings().all()
    assert entry["address_hash"] == address_hash(workspace, "email", "gone.away@example.org")
    assert entry["reason"] == "bounce_hard"
    assert entry["refused_at"] == bounced_at.replace(tzinfo=None)
    [record_] = suppress_audit(workspace)
    assert record_["actor"] == "webhook:postmark" and record_["contact_id"] is None
    # The address comes in later as a contact: bounced, not subscribed.
    later = write(tmp_path, "later.csv", "email\ngone.away@example.org\n")
    import_contacts(workspace, later, now=NOW)
    shown = CliRunner().invoke(
        app, ["contact", "show", "gone.away@example.org", "--json", "-w", str(workspace.path)]
    )
    assert json.loads(shown.output)["contact"]["email_status"] == "bounced"


def test_status_option_from_the_cli(workspace: Workspace, cli: CliRunner, tmp_path: Path) -> None:
    unsubscribed = write(tmp_path, "unsub.csv", "email\nfay@example.com\n")
    result = cli.invoke(
        app,
        [
            "import",
            "contacts",
            str(unsubscribed),
            "--status",
            "unsubscribed",
            "-w",
            str(workspace.path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert [e["address"] for e in listed(cli, workspace)] == ["fay@example.com"]
