"""The ``--json`` reference says what the commands print: every command with ``--json``
declares its keys (:mod:`winback.cli.json_keys`, from which the reference is generated),
and on the tutorial's base every key each one prints is declared."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from winback.cli import app, walk_commands
from winback.cli.json_keys import JSON_KEYS, undocumented

TUTORIAL = Path(__file__).parent.parent / "docs" / "tutorial"


def test_every_json_command_declares_its_keys() -> None:
    with_json = {
        name.removeprefix("winback ")
        for name, command in walk_commands()
        if any("--json" in getattr(param, "opts", ()) for param in command.params)
    }
    assert with_json == set(JSON_KEYS)


class Shop:
    """The tutorial's shop, driven by the command line; keeps what ``--json`` printed."""

    def __init__(self, cli: CliRunner) -> None:
        self.cli = cli
        self.printed: dict[str, list[Any]] = {}

    def run(self, *argv: str) -> str:
        result = self.cli.invoke(app, [*argv, "-w", "shop"])
        # doctor exits 1 on this base: no SMTP server, the local public_url.
        assert result.exit_code in (0, 1), f"winback {' '.join(argv)}: {result.output}"
        return result.stdout

    def json(self, command: str, *options: str) -> Any:
        data = json.loads(self.run(*command.split(), *options, "--json"))
        self.printed.setdefault(command, []).append(data)
        return data


def test_every_key_printed_is_in_the_reference(
    tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WINBACK_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    for name in ("contacts.csv", "events.csv"):
        shutil.copy(TUTORIAL / name, tmp_path / name)
    assert cli.invoke(app, ["init", "shop"]).exit_code == 0
    shop = Shop(cli)
    shop.json("import contacts", "contacts.csv")
    shop.json("import events", "events.csv")
    shop.json("score", "--now", "2027-03-01")
    shop.json("status", "--now", "2027-03-01")
    shop.json("events export", "--parquet", str(tmp_path / "history"))
    shop.json("events compact")
    shop.run("segment", "save", "quiet", "--where", "stage in (dormant, at_risk)")
    shop.json("segment list")
    shop.json("segment count", "quiet")
    shop.run("journey", "new")
    shop.run("journey", "add", "shop/journeys/winback.yaml")
    shop.json("journey list")
    shop.json("simulate", "winback", "--days", "60", "--now", "2027-03-01")
    shop.json("journey enroll", "winback", "--now", "2027-03-01")
    shop.json("tick", "--now", "2027-03-01")
    shop.json("dispatch", "--now", "2027-03-01", "--dry-run")
    enrolled = next(row["address"] for row in shop.json("audit") if row["action"] == "enrol")
    shop.json("contact show", enrolled)
    shop.json("journey unenroll", "winback", enrolled, "--now", "2027-03-02")
    shop.json("run", "--now", "2027-04-01", "--dry-run")
    shop.json("outbox")
    shop.json("outbox", "--unknown")
    shop.json("survey")
    shop.json("suppress list")
    (tmp_path / "refusals.csv").write_text("email\nleft@example.com\n", encoding="utf-8")
    shop.json("suppress import", "refusals.csv")
    shop.json("doctor")
    shop.json("models fit", "--now", "2027-04-01")
    shop.json("models report")
    shop.json("purge", "--dry-run")
    shop.json("journey show", "winback")
    for verb in ("pause", "resume", "stop"):
        shop.json(f"journey {verb}", "winback")
    shop.json("gdpr erase", enrolled)
    shop.json("audit")

    assert set(shop.printed) == set(JSON_KEYS), "a --json command was not run"
    missing = {
        command: sorted({key for data in printed for key in undocumented(command, data)})
        for command, printed in shop.printed.items()
    }
    assert not {command: keys for command, keys in missing.items() if keys}, (
        "keys printed but not in winback.cli.json_keys (then run docs/gen_reference.py)"
    )
