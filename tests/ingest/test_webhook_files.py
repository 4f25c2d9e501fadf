"""``winback import events FILE`` of webhook payloads (issue 14): each provider's file,
in the shape its webhook posts (tests/corpus/webhooks), is recognised and read by the
webhooks' own code; what carries nothing to record or names nobody is quarantined with
its line; a payload received live and imported again is stored once."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.builders import add_contact, day
from winback.cli import app
from winback.clock import utcnow
from winback.compliance.suppression import is_suppressed
from winback.ingest.webhook_files import import_event_file
from winback.store.schema import contacts, events
from winback.web.webhooks import PROVIDERS, record_webhook
from winback.workspace import Workspace

CORPUS = Path(__file__).parent.parent / "corpus" / "webhooks"
PEOPLE = ("dave@example.com", "erin@example.com", "fay@example.net", "gus@example.org")


@pytest.fixture
def base(workspace: Workspace) -> Iterator[Workspace]:
    """Four subscribed contacts; SendGrid's group 4821 is the "news" topic."""
    config = workspace.path / "winback.toml"
    text = config.read_text(encoding="utf-8").replace(
        "\ntopics = []", '\ntopics = ["news", "offers"]\nsendgrid_groups = {"4821" = "news"}'
    )
    config.write_text(text, encoding="utf-8")
    opened = Workspace.open(workspace.path)
    with opened.engine.begin() as c:
        for address in PEOPLE:
            add_contact(c, email=address, created_at=day(2024, 1, 5))
    yield opened
    opened.close()


def imported(cli: CliRunner, base: Workspace, path: Path, *options: str) -> dict[str, Any]:
    args = ["import", "events", str(path), "-w", str(base.path), "--json", *options]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def statuses(base: Workspace) -> dict[str, str]:
    with base.engine.connect() as c:
        return dict(c.execute(select(contacts.c.email, contacts.c.email_status)).all())


def event_types(base: Workspace, address: str) -> list[str]:
    query = (
        select(events.c.type)
        .join(contacts, contacts.c.id == events.c.contact_id)
        .where(contacts.c.email == address)
        .order_by(events.c.occurred_at)
    )
    with base.engine.connect() as c:
        return list(c.execute(query).scalars())


def quarantined(report: dict[str, Any]) -> list[dict[str, str]]:
    with open(report["quarantine"], encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def counts(report: dict[str, Any]) -> tuple[int, int, int, int]:
    return report["read"], report["imported"], report["merged"], report["rejected"]


def test_a_sendgrid_delivery(base: Workspace, cli: CliRunner) -> None:
    report = imported(cli, base, CORPUS / "sendgrid_delivery.json")
    assert counts(report) == (11, 6, 0, 5)
    assert report["by_reason"] == {"nothing to record": 4, "unknown contact": 1}
    assert statuses(base) == {
        "dave@example.com": "subscribed",  # left the "news" group only
        "erin@example.com": "bounced",
        "fay@example.net": "subscribed",  # SendGrid dropped a message: no bounce
        "gus@example.org": "complained",
    }
    with base.engine.connect() as c:
        topics = c.execute(select(contacts.c.topics).where(contacts.c.email == PEOPLE[0]))
        assert topics.scalar_one() == ["offers"]
    reasons = {row["reason"] for row in quarantined(report)}
    assert any("group '999'" in reason for reason in reasons)
    assert event_types(base, "dave@example.com") == ["delivered", "open", "click"]
    # The same events as one body a line: all stored already.
    again = imported(cli, base, CORPUS / "sendgrid_bodies.jsonl")
    assert counts(again) == (11, 0, 6, 5)


def test_mailgun_postmark_ses_and_brevo_files(base: Workspace, cli: CliRunner) -> None:
    mailgun = imported(cli, base, CORPUS / "mailgun_webhooks.jsonl")
    assert counts(mailgun) == (7, 7, 0, 0)
    assert event_types(base, "fay@example.net") == ["bounce_soft"]
    assert statuses(base)["dave@example.com"] == "unsubscribed"

    postmark = imported(cli, base, CORPUS / "postmark_webhooks.jsonl")
    assert counts(postmark) == (8, 8, 0, 0)
    # Erin bounced, and the sender reactivated her address in Postmark afterwards.
    assert statuses(base)["erin@example.com"] == "subscribed"
    with base.engine.connect() as c:
        assert not is_suppressed(c, base, "email", "erin@example.com")

    ses = imported(cli, base, CORPUS / "ses_sns.jsonl")
    assert counts(ses) == (6, 5, 0, 1)
    [confirmation] = quarantined(ses)
    assert confirmation["line"] == "1"
    assert statuses(base)["erin@example.com"] == "bounced"
    assert statuses(base)["fay@example.net"] == "complained"

    transactional = imported(cli, base, CORPUS / "brevo_transactional.jsonl")
    assert counts(transactional) == (8, 6, 0, 2)
    marketing = imported(cli, base, CORPUS / "brevo_marketing.jsonl", "--format", "brevo")
    assert counts(marketing) == (5, 5, 0, 0)
    assert set(statuses(base).values()) == {"unsubscribed", "bounced", "complained"}


def test_bad_records_are_quarantined_with_their_line(base: Workspace, tmp_path: Path) -> None:
    good = {"event": "delivered", "email": "dave@example.com", "ts_event": 1748854800,
            "message-id": "<a@example.com>"}  # fmt: skip
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "ts_event": 1e300}),
        json.dumps({"email": "dave@example.com", "what": "no provider"}),
        "",
        json.dumps({**good, "email": "nobody@example.com"}),
    ]
    path = tmp_path / "brevo.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_event_file(base, path, now=utcnow()).as_dict()
    assert counts(report) == (5, 1, 0, 4)
    rejected = {row["line"]: row["reason"] for row in quarantined(report)}
    assert sorted(rejected) == ["2", "3", "4", "6"]
    assert rejected["2"].startswith("not JSON")
    assert "ts_event 1e+300 is out of range" in rejected["3"]
    assert "--format" in rejected["4"]
    assert rejected["6"].startswith("unknown contact")
    # Nothing is lost: each record is kept as the file had it.
    assert quarantined(report)[0]["record"] == "{not json\n"
    assert json.loads(quarantined(report)[3]["record"])["email"] == "nobody@example.com"


def test_format_names_the_provider(base: Workspace, cli: CliRunner, tmp_path: Path) -> None:
    # Mailgun's event-data alone, without the keys that tell it apart.
    record = {"event": "opened", "id": "Ase7i2zsRYeDXztHGENqRA", "timestamp": 1748854800.5,
              "recipient": "dave@example.com", "ip": "203.0.113.24"}  # fmt: skip
    path = tmp_path / "opens.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    report = imported(cli, base, path, "--format", "mailgun")
    assert counts(report) == (1, 1, 0, 0)
    unknown = cli.invoke(
        app, ["import", "events", str(path), "-w", str(base.path), "--format", "x"]
    )
    assert unknown.exit_code != 0
    assert "sendgrid, mailgun, postmark, ses, brevo" in unknown.output


def test_a_payload_received_live_is_stored_once(base: Workspace, cli: CliRunner) -> None:
    body = (CORPUS / "brevo_marketing.jsonl").read_bytes().splitlines()[3]
    delivery = PROVIDERS["brevo"].deliver(base, json.loads(body))
    with base.engine.begin() as c:
        assert record_webhook(c, base, "brevo", delivery, utcnow()).recorded == 1
    report = imported(cli, base, CORPUS / "brevo_marketing.jsonl")
    assert counts(report) == (5, 4, 1, 0)
    assert event_types(base, "fay@example.net") == ["unsubscribe"]
