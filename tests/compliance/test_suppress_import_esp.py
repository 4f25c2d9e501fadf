"""``winback suppress import`` of the suppression and unsubscribed exports of the ESPs, in
the shapes their documentation and export screens give (people invented, domains
example.com/.org/.net): the address column under each ESP's name, the reason when the file
carries one, and when the person refused."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.builders import add_contact, day
from tests.compliance.conftest import contact, write
from winback.cli import app
from winback.compliance.suppression import address_hash
from winback.store.schema import suppressions
from winback.workspace import Workspace

NOW = "2025-06-30"

MAILCHIMP_HEADER = (
    '"Email Address","First Name","Last Name","MEMBER_RATING","OPTIN_TIME","OPTIN_IP",'
    '"CONFIRM_TIME","CONFIRM_IP","LATITUDE","LONGITUDE","GMTOFF","DSTOFF","TIMEZONE","CC",'
    '"REGION","{time}","{time_prefix}_CAMPAIGN_TITLE","{time_prefix}_CAMPAIGN_ID",{extra}'
    '"LEID","EUID","NOTES","TAGS"'
)


def mailchimp(kind: str) -> str:
    if kind == "unsubscribed":
        header = MAILCHIMP_HEADER.format(
            time="UNSUB_TIME", time_prefix="UNSUB", extra='"UNSUB_REASON","UNSUB_REASON_OTHER",'
        )
        row = (
            '"ann.martin@example.com","Ann","Martin","2","2021-04-02 09:12:44","",'
            '"2021-04-02 09:13:10","203.0.113.4","48.8566","2.3522","1","2","Europe/Paris",'
            '"FR","IDF","2024-03-05 14:22:10","Spring sale","a1b2c3d4e5",'
            '"I no longer want to receive these emails","","118273645","b7c1e5a9f0","",""'
        )
    else:
        header = MAILCHIMP_HEADER.format(time="CLEAN_TIME", time_prefix="CLEAN", extra="")
        row = (
            '"ann.martin@example.com","Ann","Martin","1","2021-04-02 09:12:44","",'
            '"2021-04-02 09:13:10","","","","","","","","","2024-03-05 14:22:10",'
            '"Spring sale","a1b2c3d4e5","118273645","b7c1e5a9f0","",""'
        )
    return f"{header}\n{row}\n"


# (file name, content, expected reason, expected refusal time, expected skipped rows)
CASES: dict[str, tuple[str, str, str, datetime, int]] = {
    "mailchimp unsubscribed": (
        "unsubscribed_members_export_4c1b9f.csv",
        mailchimp("unsubscribed"),
        "unsubscribe",
        datetime(2024, 3, 5, 14, 22, 10),
        0,
    ),
    "mailchimp cleaned": (
        "cleaned_members_export_4c1b9f.csv",
        mailchimp("cleaned"),
        "bounce_hard",
        datetime(2024, 3, 5, 14, 22, 10),
        0,
    ),
    "sendgrid bounces": (
        "suppression_bounces.csv",
        "email,created,reason,status\n"
        'ann.martin@example.com,1709648530,"550 5.1.1 The email account that you tried to '
        'reach does not exist.",5.1.1\n',
        "bounce_hard",
        datetime(2024, 3, 5, 14, 22, 10),
        0,
    ),
    "sendgrid spam reports": (
        "spam_reports.csv",
        "email,created,ip\nann.martin@example.com,1709648530,203.0.113.19\n",
        "complaint",
        datetime(2024, 3, 5, 14, 22, 10),
        0,
    ),
    "mailgun bounces": (
        "bounces.csv",
        "address,code,error,created_at\n"
        'ann.martin@example.com,550,"No such mailbox",'
        '"Tue, 05 Mar 2024 14:22:10 UTC"\n',
        "bounce_hard",
        datetime(2024, 3, 5, 14, 22, 10),
        0,
    ),
    "mailgun unsubscribes": (
        "unsubscribes.csv",
        'address,tags,created_at\nann.martin@example.com,*,"Tue, 05 Mar 2024 14:22:10 UTC"\n',
        "unsubscribe",
        datetime(2024, 3, 5, 14, 22, 10),
        0,
    ),
    "postmark": (
        "suppressions-outbound.csv",
        "EmailAddress,SuppressionReason,Origin,CreatedAt\n"
        "ann.martin@example.com,ManualSuppression,Recipient,2024-03-05T14:22:10-00:00\n",
        "unsubscribe",
        datetime(2024, 3, 5, 14, 22, 10),
        0,
    ),
    "brevo": (
        "contacts_export.csv",
        "EMAIL;FIRSTNAME;LASTNAME;EMAIL_BLACKLISTED;BLOCKEDAT\n"
        "ann.martin@example.com;Ann;Martin;Yes;2024-03-05T14:22:10Z\n"
        "bob.durand@example.org;Bob;Durand;No;\n",
        "unsubscribe",
        datetime(2024, 3, 5, 14, 22, 10),
        1,
    ),
}


def run(cli: CliRunner, workspace: Workspace, *args: str) -> dict[str, Any]:
    result = cli.invoke(app, [*args, "--json", "-w", str(workspace.path)])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_esp_export_lands_on_the_list(
    case: str, workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    name, text, reason, refused_at, skipped = CASES[case]
    with workspace.engine.begin() as connection:
        ann = add_contact(connection, email="ann.martin@example.com", created_at=day(2021, 4, 2))
        bob = add_contact(connection, email="bob.durand@example.org", created_at=day(2021, 4, 2))
    path = write(tmp_path, name, text)
    report = run(cli, workspace, "suppress", "import", str(path), "--now", NOW)
    assert (report["added"], report["skipped"], report["rejected"]) == (1, skipped, [])
    with workspace.engine.connect() as connection:
        [entry] = connection.execute(select(suppressions)).mappings().all()
    assert entry["address_hash"] == address_hash(workspace, "email", "ann.martin@example.com")
    assert entry["reason"] == reason
    assert entry["refused_at"] == refused_at
    # A refusal changes the contact's status too; a plain suppression only lists it.
    status = {"unsubscribe": "unsubscribed", "bounce_hard": "bounced", "complaint": "complained"}
    assert contact(workspace, ann)["email_status"] == status[reason]
    assert contact(workspace, bob)["email_status"] == "subscribed"


@pytest.mark.parametrize(
    ("given", "reason"), [((), "manual"), (("--reason", "unsubscribe"), "unsubscribe")]
)
def test_a_file_that_says_no_reason_takes_the_users_else_manual(
    given: tuple[str, ...], reason: str, workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    # SendGrid's global unsubscribes: nothing in the columns says why (its name is not read).
    path = write(
        tmp_path, "global_unsubscribes.csv", "email,created\nann.martin@example.com,1709648530\n"
    )
    run(cli, workspace, "suppress", "import", str(path), *given)
    with workspace.engine.connect() as connection:
        entry = connection.execute(select(suppressions)).mappings().one()
    assert entry["reason"] == reason
    assert entry["refused_at"] == datetime(2024, 3, 5, 14, 22, 10)


def test_bad_rows_are_named_by_line_and_lose_nothing(
    workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "suppressions-outbound.csv",
        """
        EmailAddress,SuppressionReason,Origin,CreatedAt
        ann.martin@example.com,HardBounce,Recipient,2024-03-05T14:22:10Z
        not-an-address,HardBounce,Recipient,2024-03-05T14:22:10Z
        bob.durand@example.org,Abducted,Customer,2024-03-05T14:22:10Z
        carl.petit@example.net,SpamComplaint,Recipient,the fifth of March
        """,
    )
    result = cli.invoke(app, ["suppress", "import", str(path), "-w", str(workspace.path)])
    assert result.exit_code == 0, result.output
    assert "1 added" in result.output and "3 rejected" in result.output
    assert "suppressions-outbound.csv line 3" in result.output
    assert "unknown reason 'Abducted'" in result.output
    assert "unreadable date 'the fifth of March'" in result.output
