"""``winback gdpr export`` and ``winback gdpr erase``: one person's data, everywhere."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from tests.builders import add_event
from tests.compliance.conftest import write
from tests.journeys.conftest import START, add, scored
from winback.cli import app
from winback.compliance.files import scrub_files
from winback.compliance.suppression import address_hash
from winback.ingest.events import import_events
from winback.journeys.dispatcher import dispatch
from winback.journeys.engine import tick
from winback.journeys.enrolment import enrol
from winback.store.schema import contacts, events, outbox, suppressions, survey_answers
from winback.workspace import Workspace

TWO_CHANNELS = """
    name: spring
    holdout: 0
    exit_on: [purchase]
    steps:
      - id: miss-you
        channel: email
        template: miss_you
        wait: 1d
      - id: by-sms
        channel: sms
        template: offer
        offer: {percent: 20, valid_days: 30}
        wait: 1d
    after_last_step: flag
"""
EMAIL, PHONE = "zoe.quenneville@example.com", "+33612345678"


def _base(workspace: Workspace, tmp_path: Path) -> tuple[int, int]:
    """Zoé and Bob, two messages each (an email, an SMS with a code) written by the file
    channel, Zoé's click, reply and survey answer, a rejected import row for each of them
    and a log line for each of them."""
    add(workspace, TWO_CHANNELS)
    with workspace.engine.begin() as c:
        zoe = scored(c, email=EMAIL, phone=PHONE, first_name="Zoé", last_name="Quenneville")
        bob = scored(c, email="bob@example.com", phone="+33698765432", first_name="Bob")
        before = START - timedelta(days=3)
        add_event(c, zoe, "click", before, ip="203.0.113.7", user_agent="Firefox/128",
                  url="https://shop.example/?u=zoe.quenneville@example.com")  # fmt: skip
        add_event(c, zoe, "reply", before, body="Zoé Quenneville ici, rappelez-moi")
        c.execute(
            insert(survey_answers),
            {"contact_id": zoe, "reason": "too_many", "text": "Trop de mails pour Zoé",
             "answered_at": before.replace(tzinfo=None)},
        )  # fmt: skip
    rejected = write(
        tmp_path,
        "clicks.csv",
        f"""
        email,phone,type,date
        {EMAIL.upper()},,click,not a date
        bob@example.com,,click,not a date
        ,06 12 34 56 78,reply,yesterday-ish
        """,
    )
    import_events(workspace, rejected, now=START)
    logs = workspace.path / "logs"
    logs.mkdir()
    (logs / "web.log").write_text(
        f"GET /c/abc {EMAIL} 203.0.113.7\nGET /c/def bob@example.com 198.51.100.2\n",
        encoding="utf-8",
    )
    enrol(workspace, "spring", now=START)
    tick(workspace, now=START)
    dispatch(workspace, now=START, dry_run=True)
    tick(workspace, now=START + timedelta(days=1))
    dispatch(workspace, now=START + timedelta(days=1), dry_run=True)
    return zoe, bob


def _every_file(workspace: Workspace) -> dict[str, bytes]:
    found = {}
    for folder, _, names in os.walk(workspace.path):
        for name in names:
            path = Path(folder) / name
            found[str(path.relative_to(workspace.path))] = path.read_bytes()
    return found


def test_export_gives_everything_held_on_the_person(
    workspace: Workspace, tmp_path: Path, cli: CliRunner
) -> None:
    zoe, _ = _base(workspace, tmp_path)
    out = tmp_path / "zoe.json"
    result = cli.invoke(
        app, ["gdpr", "export", "Zoe.Quenneville@example.com", "--out", str(out),
              "-w", str(workspace.path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["contact"]["email"] == EMAIL and document["contact"]["phone"] == PHONE
    assert document["contact"]["first_name"] == "Zoé"
    assert document["stage"] == "dormant"
    assert {e["type"] for e in document["events"]} == {"click", "reply", "sent"}
    assert {e["ip"] for e in document["events"]} >= {"203.0.113.7"}
    [enrollment] = document["enrollments"]
    assert enrollment["journey"] == "spring"
    messages = {m["step_id"]: m for m in document["messages"]}
    assert set(messages) == {"miss-you", "by-sms"}
    assert "Zoé" in messages["miss-you"]["subject"]
    [code] = document["codes"]
    assert code["step_id"] == "by-sms" and code["code"] in messages["by-sms"]["body_text"]
    assert document["survey_answers"][0]["text"] == "Trop de mails pour Zoé"
    assert {a["action"] for a in document["audit"]} >= {"enrol", "send"}
    assert all(a["contact_id"] == zoe for a in document["audit"])
    to_stdout = cli.invoke(app, ["gdpr", "export", PHONE, "-w", str(workspace.path)])
    assert json.loads(to_stdout.output)["contact"]["id"] == zoe


def test_erase_leaves_no_trace_of_the_email_or_phone_in_any_file(
    sqlite_workspace: Workspace, tmp_path: Path, cli: CliRunner
) -> None:
    workspace = sqlite_workspace
    zoe, bob = _base(workspace, tmp_path)
    files = _every_file(workspace)
    assert any(EMAIL.encode() in data.lower() for data in files.values())
    assert any(name.endswith(".eml") for name in files)

    result = cli.invoke(app, ["gdpr", "erase", EMAIL, "-w", str(workspace.path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["contact_erased"] and report["files_left"] == []
    assert any(path.startswith("quarantine") for path in report["files_rewritten"])

    traces = [b"zoe.quenneville@example.com", b"+33612345678", b"0612345678",
              b"06 12 34 56 78", b"quenneville"]  # fmt: skip
    for name, data in _every_file(workspace).items():
        for trace in traces:
            assert trace not in data.lower(), f"{trace!r} is still in {name}"

    # Bob is untouched, and Zoé's counts are kept.
    after = _every_file(workspace)
    assert b"bob@example.com" in after["logs/web.log"]
    quarantine = [data for name, data in after.items() if name.startswith("quarantine")]
    assert len(quarantine) == 1 and b"bob@example.com" in quarantine[0]
    assert sum(name.endswith(".eml") for name in after) == 1
    with workspace.engine.connect() as c:
        erased = c.execute(select(contacts).where(contacts.c.id == zoe)).mappings().one()
        assert erased["erased_at"] is not None and erased["email"] is None
        assert erased["key_hash"] == address_hash(workspace, "email", EMAIL)
        assert (
            c.execute(
                select(func.count()).select_from(events).where(events.c.contact_id == zoe)
            ).scalar_one()
            == 4
        )  # click, reply, two sends
        assert c.execute(
            select(outbox.c.to_address).where(outbox.c.contact_id == zoe)
        ).scalars().all() == [None, None]
        assert set(c.execute(select(suppressions.c.reason)).scalars()) == {"erased"}
        assert (
            c.execute(select(contacts.c.email).where(contacts.c.id == bob)).scalar_one()
            == "bob@example.com"
        )
    audit = cli.invoke(app, ["audit", "--contact", EMAIL, "--json", "-w", str(workspace.path)])
    records = json.loads(audit.output)
    assert records[-1]["action"] == "erase"
    assert {r["contact_key"] for r in records if r["action"] != "suppress"} == {
        address_hash(workspace, "email", EMAIL)
    }


def test_erasing_an_unknown_address_still_suppresses_it(
    workspace: Workspace, cli: CliRunner
) -> None:
    result = cli.invoke(app, ["gdpr", "erase", "nobody@example.com", "-w", str(workspace.path)])
    assert result.exit_code == 0 and "No contact had this address" in result.output
    listed = json.loads(
        cli.invoke(app, ["suppress", "list", "--json", "-w", str(workspace.path)]).output
    )
    assert [(e["hash"], e["reason"]) for e in listed] == [
        (address_hash(workspace, "email", "nobody@example.com"), "erased")
    ]
    bad = cli.invoke(app, ["gdpr", "export", "nobody@example.com", "-w", str(workspace.path)])
    assert bad.exit_code == 4 and "no contact" in bad.output


def test_only_the_persons_own_lines_go(sqlite_workspace: Workspace) -> None:
    logs = sqlite_workspace.path / "logs"
    logs.mkdir()
    log = logs / "web.log"
    log.write_text(
        "click ann@example.com\n"
        "click joann@example.com\n"
        "click ann@example.com.au\n"
        "sms 06 11 22 33 44\n"
        "order 2025061122334455\n",
        encoding="utf-8",
    )
    result = scrub_files(sqlite_workspace, "ann@example.com", "+33611223344")
    assert result.rewritten == ["logs/web.log"]
    assert log.read_text(encoding="utf-8") == (
        "click joann@example.com\nclick ann@example.com.au\norder 2025061122334455\n"
    )
