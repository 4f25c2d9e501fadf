"""``winback serve``: the tracking and preference server."""

from __future__ import annotations

from typing import Annotated

import typer

from winback.cli.common import WorkspaceOption, err_console, open_workspace


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    workspace: WorkspaceOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8025,
) -> None:
    """Serve the open pixel, click links, one-click unsubscribe, preference centre,
    survey and ESP webhooks (stop with Ctrl-C or SIGTERM: queued hits are written first)."""
    from winback.web import serve as run

    ws = open_workspace(workspace)
    err_console.print(
        f"winback serve: http://{host}:{port} for {ws.config.workspace.public_url}",
        markup=False,
        highlight=False,
    )
    run(ws, host=host, port=port)
