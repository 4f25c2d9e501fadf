"""``winback purge``: who is erased after three years without a contact from the person."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from tests.builders import add_contact, add_event, day
from tests.compliance.conftest import audit_actions, contact, write
from winback.cli import app
from winback.compliance.suppression import address_hash
from winback.ingest.contacts import import_contacts
from winback.store.schema import audit, events, outbox, suppressions, survey_answers
from winback.workspace import Workspace

NOW = "2025-06-30"
OLD = day(2022, 1, 10)  # more than three years before NOW
RECENT = day(2023, 9, 1)  # less than three years before NOW


def _base(workspace: Workspace) -> dict[str, int]:
    people: dict[str, int] = {}
    with workspace.engine.begin() as c:

        def person(name: str, **fields: object) -> int:
            people[name] = add_contact(
                c,
                email=f"{name}@example.com",
                created_at=OLD,
                **fields,  # type: ignore[arg-type]
            )
            return people[name]

        person("silent")  # created long ago, never a word
        add_event(c, person("opener"), "open", RECENT)  # opens do not count
        add_event(c, people["opener"], "click", OLD, ip="203.0.113.9")
        add_event(c, person("mailed"), "sent", RECENT)  # nor what we sent
        add_event(c, person("scanned"), "click", RECENT, bot=True)  # nor a link scanner
        add_event(c, person("buyer"), "purchase", RECENT, amount=30.0)
        add_event(c, person("clicker"), "click", RECENT)
        add_event(c, person("texter"), "reply", RECENT, channel="sms")
        add_event(c, person("visitor"), "visit", RECENT)
        add_event(c, person("user"), "login", RECENT)
        c.execute(
            insert(survey_answers),
            {"contact_id": person("surveyed"), "reason": "price", "answered_at": RECENT},
        )
        person("subscriber", subscription_active=True)
        people["newcomer"] = add_contact(c, email="newcomer@example.com", created_at=RECENT)
    return people


ERASED = {"silent", "opener", "mailed", "scanned"}


def test_dry_run_counts_and_touches_nothing(workspace: Workspace, cli: CliRunner) -> None:
    people = _base(workspace)
    with workspace.engine.connect() as c:
        audits = c.execute(select(func.count()).select_from(audit)).scalar_one()
    result = cli.invoke(
        app, ["purge", "--dry-run", "--now", NOW, "--json", "-w", str(workspace.path)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["due"] == len(ERASED) and report["erased"] == 0
    assert report["cutoff"].startswith("2022-07-01")  # 3y is 3 × 365 days
    assert all(contact(workspace, cid)["erased_at"] is None for cid in people.values())
    with workspace.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(audit)).scalar_one() == audits
        assert c.execute(select(func.count()).select_from(suppressions)).scalar_one() == 0
    text = cli.invoke(app, ["purge", "--dry-run", "--now", NOW, "-w", str(workspace.path)])
    assert "4 contacts" in text.output and "nothing was erased" in text.output


def test_purge_erases_who_never_got_in_touch_for_three_years(
    workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    people = _base(workspace)
    result = cli.invoke(app, ["purge", "--now", NOW, "--yes", "-w", str(workspace.path)])
    assert result.exit_code == 0, result.output
    assert "4 erased" in result.output
    erased = {name for name, cid in people.items() if contact(workspace, cid)["erased_at"]}
    assert erased == ERASED
    opener = contact(workspace, people["opener"])
    assert opener["email"] is None and opener["first_name"] is None
    assert opener["key_hash"] == address_hash(workspace, "email", "opener@example.com")
    with workspace.engine.connect() as c:
        kept = c.execute(
            select(events.c.type, events.c.ip).where(events.c.contact_id == people["opener"])
        ).all()
        reasons = set(c.execute(select(suppressions.c.reason)).scalars())
    assert sorted(kept) == [("click", None), ("open", None)]  # counts stay, the ip goes
    assert reasons == {"erased"}
    assert audit_actions(workspace, people["silent"])[-1] == (
        "erase",
        "no contact from the person since 2022-07-01",
    )
    # Nothing left to do the second time; a later import of the address stays blocked.
    again = cli.invoke(app, ["purge", "--now", NOW, "--yes", "--json", "-w", str(workspace.path)])
    assert json.loads(again.output)["due"] == 0
    back = write(tmp_path, "back.csv", "email\nsilent@example.com\n")
    import_contacts(workspace, back, now=day(2025, 7, 1))
    shown = cli.invoke(
        app, ["contact", "show", "silent@example.com", "--json", "-w", str(workspace.path)]
    )
    assert json.loads(shown.output)["contact"]["email_status"] == "unsubscribed"


def test_retention_period_comes_from_the_config(workspace: Workspace, cli: CliRunner) -> None:
    people = _base(workspace)
    config = workspace.path / "winback.toml"
    text = config.read_text(encoding="utf-8").replace('erase_after = "3y"', 'erase_after = "1y"')
    config.write_text(text, encoding="utf-8")
    result = cli.invoke(app, ["purge", "--now", NOW, "--yes", "--json", "-w", str(workspace.path)])
    report = json.loads(result.output)
    assert report["erased"] == len(people) - 1  # everyone but the subscriber


def test_ask_before_erase_dry_run_counts_the_questions(
    workspace: Workspace, cli: CliRunner
) -> None:
    people = _base(workspace)
    config = workspace.path / "winback.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("ask_before_erase = false", "ask_before_erase = true"), encoding="utf-8"
    )
    args = ["purge", "--dry-run", "--now", NOW, "-w", str(workspace.path)]
    report = json.loads(cli.invoke(app, [*args, "--json"]).output)
    # Every due contact can still be written to: all are owed the question first.
    assert (report["due"], report["asked"], report["waiting"], report["erased"]) == (4, 4, 4, 0)
    text_report = cli.invoke(app, args).output
    assert "4 would be asked whether they want to stay" in text_report
    assert all(contact(workspace, cid)["erased_at"] is None for cid in people.values())
    with workspace.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(outbox)).scalar_one() == 0
    # The real run asks them (with its progress bar) and erases no one yet.
    real = cli.invoke(app, ["purge", "--now", NOW, "--yes", "-w", str(workspace.path)])
    assert real.exit_code == 0, real.output
    assert "4 asked whether they want to stay" in real.output and "0 erased" in real.output
    with workspace.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(outbox)).scalar_one() == 4


def test_dry_run_out_shows_who_when_their_clock_started_and_why(
    workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    people = _base(workspace)
    plan = tmp_path / "due.csv"
    args = ["purge", "--dry-run", "--now", NOW, "--out", str(plan), "-w", str(workspace.path)]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 contacts due written to" in result.output
    with plan.open(encoding="utf-8", newline="") as stream:
        rows = {row["email"]: row for row in csv.DictReader(stream)}
    assert set(rows) == {f"{name}@example.com" for name in ERASED}
    # The opener clicked in January 2022: their clock started then; the silent one's at
    # their creation. Opens, sends and link scanners start nothing.
    assert rows["opener@example.com"]["clock_started"] == "2022-01-10"
    assert rows["opener@example.com"]["why"].startswith("no contact from the person since")
    assert rows["silent@example.com"]["why"].startswith("created on 2022-01-10, never in touch")
    assert {row["action"] for row in rows.values()} == {"erase"}
    assert int(rows["silent@example.com"]["contact_id"]) == people["silent"]
    assert all(contact(workspace, cid)["erased_at"] is None for cid in people.values())


def test_dry_run_out_marks_who_would_be_asked_first(
    workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    _base(workspace)
    config = workspace.path / "winback.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("ask_before_erase = false", "ask_before_erase = true"), encoding="utf-8"
    )
    plan = tmp_path / "due.csv"
    args = ["purge", "--dry-run", "--now", NOW, "--out", str(plan), "-w", str(workspace.path)]
    assert cli.invoke(app, args).exit_code == 0
    with plan.open(encoding="utf-8", newline="") as stream:
        assert {row["action"] for row in csv.DictReader(stream)} == {"ask"}


def test_a_scripted_purge_needs_yes(workspace: Workspace, cli: CliRunner) -> None:
    people = _base(workspace)
    result = cli.invoke(app, ["purge", "--now", NOW, "-w", str(workspace.path)])
    assert result.exit_code != 0
    assert "--yes" in result.output and "--dry-run --out" in result.output
    assert "Traceback" not in result.output
    assert all(contact(workspace, cid)["erased_at"] is None for cid in people.values())


def test_an_interactive_purge_asks_first(
    workspace: Workspace, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = _base(workspace)
    monkeypatch.setattr("winback.cli.compliance._interactive", lambda: True)
    args = ["purge", "--now", NOW, "-w", str(workspace.path)]
    refused = cli.invoke(app, args, input="n\n")
    assert refused.exit_code != 0
    assert "Erase 4 contacts" in refused.output
    assert all(contact(workspace, cid)["erased_at"] is None for cid in people.values())
    agreed = cli.invoke(app, args, input="y\n")
    assert agreed.exit_code == 0, agreed.output
    assert "4 erased" in agreed.output


def test_out_without_dry_run_is_refused(
    workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    people = _base(workspace)
    out = tmp_path / "due.csv"
    args = ["purge", "--now", NOW, "--yes", "--out", str(out), "-w", str(workspace.path)]
    result = cli.invoke(app, args)
    assert result.exit_code != 0 and "--dry-run" in result.output
    assert not out.exists()
    assert all(contact(workspace, cid)["erased_at"] is None for cid in people.values())
