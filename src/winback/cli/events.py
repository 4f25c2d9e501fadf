"""``winback events export|compact``: the event history as Parquet, for DuckDB or Spark."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from winback.cli.common import (
    JsonOption,
    WorkspaceOption,
    console,
    counted_progress,
    err_console,
    open_workspace,
    print_json,
)
from winback.safe_output import plain

app = typer.Typer(
    help="The event history: keep its columnar copy, export it as Parquet.",
    no_args_is_help=True,
)


def _since(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date: write YYYY-MM-DD") from None


@app.command("export")
def export(
    parquet: Annotated[
        str | None,
        typer.Option(
            "--parquet",
            metavar="DIR",
            help="Folder (or s3://... URL) to write to, as month=YYYY-MM/part-N.parquet "
            "(default: [engine] events_path, the workspace's history/).",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="YYYY-MM-DD",
            help="Write again only the months from this date's month on; the others stay.",
            show_default=False,
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the event history as Parquet, partitioned by month, with no personal column
    (no ip, user agent, URL, body or source) and the machine-open flag resolved: what
    `winback score --engine spark` reads."""
    from winback.scoring.history_export import export_history

    first = _since(since)
    ws = open_workspace(workspace)
    with counted_progress("exporting events", hidden=as_json) as progress:
        result = export_history(ws, parquet, since=first, progress=progress)
    if as_json:
        print_json(result.as_dict())
        return
    months = result.months
    span = f"{months[0]} to {months[-1]}" if months else "no month"
    console.print(
        plain(
            f"{result.events:,} events exported to {result.path} ({len(months)} months, "
            f"{span}; machine opens resolved with scoring.machine_open_seconds = "
            f"{result.machine_open_seconds}; up to event {result.high_water})."
        )
    )


@app.command("compact")
def compact(
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Bring the workspace's columnar event history ([engine] events_path) up to date:
    move in the events landed since (imports, tracking hits, webhooks) and merge each
    month's files into one. `winback score` on the duckdb engine does the first part
    itself."""
    from winback.scoring.history_update import update_history

    ws = open_workspace(workspace)
    with counted_progress("moving events into the history", hidden=as_json) as progress:
        result = update_history(
            ws, compact=True, progress=progress, waiting=lambda text: err_console.print(plain(text))
        )
    if as_json:
        print_json(result.as_dict())
        return
    moved = f"{result.added:,} event{'' if result.added == 1 else 's'}"
    how = (
        f"written again whole: {result.reason}"
        if result.mode == "full"
        else f"{len(result.months_rewritten)} months written again as one file each"
    )
    console.print(
        plain(
            f"{moved} moved into {result.path} ({how}); it holds "
            f"{result.events:,} events, up to event {result.high_water}."
        )
    )
