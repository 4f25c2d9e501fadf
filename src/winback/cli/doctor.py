"""``winback doctor``: check a workspace and say what to fix."""

from __future__ import annotations

from dataclasses import asdict
from zoneinfo import ZoneInfo

import typer
from rich.text import Text

from winback.cli.common import JsonOption, NowOption, Table, WorkspaceOption, console, print_json
from winback.clock import parse_now

_STYLES = {"ok": "green", "warning": "yellow", "error": "bold red"}


def doctor(
    workspace: WorkspaceOption = None, now: NowOption = None, json_: JsonOption = False
) -> None:
    """Check the workspace: config, database, public_url, SMTP, DKIM, templates, the
    tracking server, the last score and messages in doubt; exit 1 on an error."""
    from winback.doctor import diagnose

    try:
        moment = parse_now(now, ZoneInfo("UTC"))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--now") from None
    findings = diagnose(workspace, moment)
    if json_:
        print_json({"findings": [asdict(finding) for finding in findings]})
    else:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column()
        for finding in findings:
            text = Text(finding.message)
            if finding.fix:
                text.append(f"\n→ {finding.fix}", style="dim")
            table.add_row(
                Text(finding.level, style=_STYLES[finding.level]), Text(finding.check), text
            )
        console.print(table)
    if any(finding.level == "error" for finding in findings):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
