"""``winback serve`` (the tracking and preference server) and ``winback survey`` (its
survey's answers).

The web part is imported inside the commands: FastAPI, uvicorn and the ESP signature
code take a noticeable share of a second to load, which no other command should pay."""

from __future__ import annotations

from typing import Annotated

import typer

from winback.cli.common import (
    JsonOption,
    Table,
    WorkspaceOption,
    console,
    err_console,
    open_workspace,
    print_json,
)
from winback.safe_output import plain


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("survey")(survey)


def serve(
    workspace: WorkspaceOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8025,
) -> None:
    """Serve the open pixel, click links, one-click unsubscribe, preference centre,
    survey and ESP webhooks (stop with Ctrl-C or SIGTERM: queued hits are written first)."""
    from winback.web.serve import serve as run

    ws = open_workspace(workspace)
    err_console.print(
        plain(f"winback serve: http://{host}:{port} for {ws.config.workspace.public_url}")
    )
    run(ws, host=host, port=port)


def survey(
    workspace: WorkspaceOption = None,
    latest: Annotated[int, typer.Option("--latest", help="Free-text answers to show.")] = 20,
    json_: JsonOption = False,
) -> None:
    """The answers to the win-back survey: how many gave each reason, and the latest
    free-text answers (control characters shown escaped)."""
    from winback.web.choices import survey_report

    report = survey_report(open_workspace(workspace), latest=latest)
    if json_:
        print_json(report)
        return
    reasons = Table("reason", "answers", title=f"Survey: {report['answers']} answers")
    for reason, count in report["reasons"].items():
        reasons.add_row(plain(reason), f"{count:,}")
    console.print(reasons)
    texts = Table("answered", "contact", "text", title="Latest free-text answers")
    for row in report["texts"]:
        texts.add_row(
            row["answered_at"].strftime("%Y-%m-%d %H:%M"),
            str(row["contact_id"]),
            plain(row["text"]),
        )
    if report["texts"]:
        console.print(texts)
