"""``winback doctor``: each check says ok, warning or error about a real workspace, with
real servers on loopback where a check talks to one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.channels.smtp_server import (
    CountingController,
    RecordingHandler,
    free_port,
    password_checker,
)
from winback.channels import ENV_SMTP_URL
from winback.cli import app
from winback.doctor import Finding
from winback.workspace import Workspace

NOW = "2027-03-01"


def findings(result_output: str) -> dict[str, Finding]:
    data = json.loads(result_output)
    return {item["check"]: Finding(**item) for item in data["findings"]}


def run_doctor(cli: CliRunner, workspace: Workspace, *extra: str) -> tuple[int, dict[str, Finding]]:
    result = cli.invoke(app, ["doctor", "-w", str(workspace.path), "--now", NOW, "--json", *extra])
    return result.exit_code, findings(result.output)


def set_config(workspace: Workspace, old: str, new: str) -> None:
    config = workspace.path / "winback.toml"
    text = config.read_text(encoding="utf-8")
    assert old in text
    config.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_new_workspace_is_told_what_to_set(
    sqlite_workspace: Workspace, cli: CliRunner, smtp: RecordingHandler
) -> None:
    code, found = run_doctor(cli, sqlite_workspace)
    assert found["config"].level == "ok"
    assert found["database"].level == "ok"
    assert found["smtp"].level == "ok"
    # Local SMTP (a test server): the local public_url is a warning, not yet an error.
    assert found["public_url"].level == "warning"
    assert "public_url" in found["public_url"].fix
    assert found["score"].level == "warning"
    assert "winback score" in found["score"].fix
    assert found["outbox"].level == "ok"
    assert found["shop_url"].level == "warning" and "shop_url" in found["shop_url"].fix
    assert code == 0


def test_real_mail_with_a_local_public_url_is_an_error(
    sqlite_workspace: Workspace, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An SMTP relay beyond this machine: the links of real mail would point at loopback.
    monkeypatch.setenv(ENV_SMTP_URL, f"smtp://relay.example.net:{free_port()}")
    code, found = run_doctor(cli, sqlite_workspace)
    assert found["public_url"].level == "error"
    assert found["smtp"].level == "error"
    assert code == 1
    set_config(
        sqlite_workspace,
        'public_url = "http://127.0.0.1:8025"',
        'public_url = "http://t.example.com"',
    )
    _, found = run_doctor(cli, sqlite_workspace)
    assert found["public_url"].level == "error"
    assert "https" in found["public_url"].message
    set_config(
        sqlite_workspace,
        'public_url = "http://t.example.com"',
        'public_url = "https://t.example.com"',
    )
    _, found = run_doctor(cli, sqlite_workspace)
    assert found["public_url"].level == "ok"


def test_smtp_refused_and_wrong_password_are_errors(
    sqlite_workspace: Workspace, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_SMTP_URL, f"smtp://127.0.0.1:{free_port()}")
    code, found = run_doctor(cli, sqlite_workspace)
    assert found["smtp"].level == "error"
    assert (
        "ConnectionRefused" in found["smtp"].message or "connect" in found["smtp"].message.lower()
    )
    assert code == 1

    controller = CountingController(
        RecordingHandler(),
        authenticator=password_checker({"mailer": "s3cret"}),
        auth_require_tls=False,
    )
    controller.start()
    try:
        monkeypatch.setenv(ENV_SMTP_URL, f"smtp://mailer:wrong@127.0.0.1:{controller.port}")
        _, found = run_doctor(cli, sqlite_workspace)
        assert found["smtp"].level == "error"
        assert "password" in found["smtp"].fix
        monkeypatch.setenv(ENV_SMTP_URL, f"smtp://mailer:s3cret@127.0.0.1:{controller.port}")
        _, found = run_doctor(cli, sqlite_workspace)
        assert found["smtp"].level == "ok"
        assert "mailer" in found["smtp"].message
    finally:
        controller.stop()


def test_a_dkim_key_that_cannot_be_read_is_an_error(
    sqlite_workspace: Workspace, cli: CliRunner, smtp: RecordingHandler
) -> None:
    (sqlite_workspace.path / "dkim.pem").write_text("not a key\n", encoding="utf-8")
    config = sqlite_workspace.path / "winback.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace(
        "[email]\n",
        '[email]\ndkim_domain = "example.com"\ndkim_selector = "s1"\ndkim_key_file = "dkim.pem"\n',
        1,
    )
    config.write_text(text, encoding="utf-8")
    code, found = run_doctor(cli, sqlite_workspace)
    assert found["dkim"].level == "error"
    assert "dkim.pem" in found["dkim"].message
    assert code == 1


def test_a_template_broken_after_journey_add_is_found(
    sqlite_workspace: Workspace, cli: CliRunner, smtp: RecordingHandler
) -> None:
    new = cli.invoke(app, ["journey", "new", "-w", str(sqlite_workspace.path)])
    assert new.exit_code == 0, new.output
    journey_file = next((sqlite_workspace.path / "journeys").glob("*.yaml"))
    added = cli.invoke(app, ["journey", "add", str(journey_file), "-w", str(sqlite_workspace.path)])
    assert added.exit_code == 0, added.output
    _, found = run_doctor(cli, sqlite_workspace)
    assert found["templates"].level == "ok"
    broken = sqlite_workspace.path / "templates" / "miss_you.en.mjml"
    text = broken.read_text(encoding="utf-8")
    assert "</mj-text>" in text
    broken.write_text(
        text.replace("</mj-text>", "{{ contact.first_name | nosuchfilter }}</mj-text>", 1),
        encoding="utf-8",
    )
    code, found = run_doctor(cli, sqlite_workspace)
    assert found["templates"].level == "error"
    assert code == 1


def test_no_workspace_is_one_clear_error(tmp_path: Path, cli: CliRunner) -> None:
    result = cli.invoke(app, ["doctor", "-w", str(tmp_path), "--json"])
    assert result.exit_code == 1
    found = findings(result.output)
    assert found["config"].level == "error"
    assert "winback init" in found["config"].message


def test_the_terminal_report_names_each_check(
    sqlite_workspace: Workspace, cli: CliRunner, smtp: RecordingHandler
) -> None:
    result = cli.invoke(app, ["doctor", "-w", str(sqlite_workspace.path), "--now", NOW])
    assert result.exit_code == 0, result.output
    for check in (
        "config",
        "database",
        "public_url",
        "smtp",
        "dkim",
        "templates",
        "tracking",
        "score",
    ):
        assert check in result.output
