"""``winback report``: the base and the journeys as one self-contained HTML file."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from winback.cli.common import (
    NowOption,
    WorkspaceOption,
    now_option,
    open_workspace,
    output_path,
    print_written,
)


def report(
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")],
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Start of the period of moves between stages (YYYY-MM-DD)."),
    ] = None,
) -> None:
    """Write the base and journey views as one HTML file that needs no server."""
    from winback.reports.html import render_report

    ws = open_workspace(workspace)
    start = None
    if since is not None:
        try:
            start = date.fromisoformat(since)
        except ValueError:
            raise typer.BadParameter(
                f"{since!r} is not a date YYYY-MM-DD", param_hint="--since"
            ) from None
    html = render_report(ws, now_option(now, ws), start)
    with output_path(out) as temporary:
        temporary.write_text(html, encoding="utf-8")
    print_written(f"Report ({len(html) // 1024:,} KiB)", out)


def register(app: typer.Typer) -> None:
    app.command()(report)
