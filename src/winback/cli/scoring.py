"""``winback score``, ``winback segment …`` and ``winback status``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from winback.cli.common import (
    JsonOption,
    NowOption,
    Table,
    WorkspaceOption,
    console,
    err_console,
    now_option,
    open_workspace,
    print_json,
    write_csv,
)
from winback.safe_output import plain


class Engine(StrEnum):
    EMBEDDED = "embedded"
    DUCKDB = "duckdb"
    SPARK = "spark"


SegmentArgument = Annotated[str, typer.Argument(help="Name of the segment.")]

WhereOption = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        help="An expression in the segment language, e.g. 'stage in (dormant, at_risk) and "
        "not tags contains vip and last_purchase_at < 180 days ago' (repeatable: all must "
        "hold; FIELD=V1,V2 and FIELD=MIN..MAX still work). See the README.",
        show_default=False,
    ),
]
OptionalSegment = Annotated[
    str | None, typer.Argument(help="Saved segment (or use --where).", show_default=False)
]

segment_app = typer.Typer(help="Save, list, count and export named segments.", no_args_is_help=True)


def score(
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    full: Annotated[
        bool, typer.Option("--full", help="Rescore every contact from all events.")
    ] = False,
    engine: Annotated[
        Engine | None,
        typer.Option(
            "--engine",
            help="Where to compute the facts: embedded (the store), duckdb (full runs over "
            "the workspace's columnar history, brought up to date first) or spark (over the "
            "Parquet export of `winback events export`; always a full run). Default: "
            "[engine] kind.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Score every contact: inactivity, RFM, stage (incremental after the first run)."""
    # Here, not at the top: Arrow's dataset module would slow every command's --help.
    from winback.scoring.spark import score_workspace

    ws = open_workspace(workspace)
    result = score_workspace(
        ws,
        now=now_option(now, ws),
        full=full,
        engine=engine.value if engine else None,
        waiting=lambda text: err_console.print(plain(text)),
    )
    if as_json:
        print_json(result.as_dict())
        return
    console.print(
        f"{result.mode} score at {result.now:%Y-%m-%d}: {result.contacts} contacts, "
        f"{result.rewritten} rows written, {result.stage_changes} stage changes ({result.reason})."
    )
    if result.models:
        console.print(f"Models: {result.models}.", markup=False, highlight=False)
    table = Table("stage", "contacts")
    for stage, count in result.stages.items():
        table.add_row(stage, str(count))
    console.print(table)


def status(
    workspace: WorkspaceOption = None, now: NowOption = None, as_json: JsonOption = False
) -> None:
    """Base health: stages, channel statuses, inactivity, erosion and wasted sending cost."""
    from winback.reports import base_health

    ws = open_workspace(workspace)
    report = base_health(ws, now=now_option(now, ws))
    if as_json:
        print_json(report)
        return
    console.print(f"{report['contacts']} contacts at {report['now'][:10]}")
    unscored = report["stages"]["unscored"]["count"]
    if unscored:
        console.print(
            f"{unscored:,} contacts are not scored yet: run `winback score` to give them a stage.",
            markup=False,
            style="yellow",
        )
    for title, section in (
        ("stage", report["stages"]),
        ("inactivity", report["inactivity_buckets"]),
    ):
        table = Table(title, "contacts", "share")
        for key, value in section.items():
            table.add_row(key, str(value["count"]), f"{value['share']:.1%}")
        console.print(table)
    table = Table("channel", *report["channels"]["email"]["statuses"], "reachable")
    for channel in ("email", "sms"):
        statuses = report["channels"][channel]["statuses"]
        table.add_row(
            channel,
            *(str(v["count"]) for v in statuses.values()),
            str(report["channels"][channel]["reachable"]),
        )
    console.print(table)
    erosion, cost = report["erosion"], report["cost"]
    console.print(
        f"Erosion over 12 months: {erosion['eroded']} of {erosion['base_12_months_ago']} "
        f"({erosion['rate']:.1%}): {erosion['became_lost']} became lost, "
        f"{erosion['became_unreachable']} unreachable."
    )
    console.print(
        f"Sending to dormant and lost contacts over the last {cost['period_days']} days: "
        f"{cost['total']:.2f} {cost['currency']} (dormant {cost['dormant']['cost']:.2f}, "
        f"lost {cost['lost']['cost']:.2f})."
    )


@segment_app.command("save")
def segment_save(
    name: SegmentArgument,
    where: WhereOption = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite a segment of that name.")
    ] = False,
    workspace: WorkspaceOption = None,
    now: NowOption = None,
) -> None:
    """Save a named segment from a --where expression."""
    from winback.scoring.segments import parse_conditions, save_segment

    ws = open_workspace(workspace)
    expression = parse_conditions(where or [])
    with ws.engine.begin() as connection:
        text = save_segment(connection, name, expression, now_option(now, ws), replace=replace)
    console.print(plain(f"Segment {name} saved: {text}"))


@segment_app.command("list")
def segment_list(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List the saved segments and their expressions."""
    from winback.scoring.segments import list_segments

    ws = open_workspace(workspace)
    with ws.engine.connect() as connection:
        rows = list_segments(connection)
    if as_json:
        print_json(rows)
        return
    table = Table("segment", "where")
    for row in rows:
        table.add_row(plain(row["name"]), plain(row["where"]))
    console.print(table)


@segment_app.command("show")
def segment_show(
    name: SegmentArgument,
    workspace: WorkspaceOption = None,
) -> None:
    """Print a segment's expression as JSON."""
    from winback.scoring.segment_conditions import render
    from winback.scoring.segments import load_segment

    ws = open_workspace(workspace)
    with ws.engine.connect() as connection:
        print_json({"name": name, "where": render(load_segment(connection, name))})


@segment_app.command("count")
def segment_count(
    name: OptionalSegment = None,
    where: WhereOption = None,
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Count the contacts of a saved segment, narrowed by any --where expression."""
    from winback.scoring.segment_conditions import render
    from winback.scoring.segments import count_segment, segment_expression

    ws = open_workspace(workspace)
    with ws.engine.connect() as connection:
        expression = segment_expression(connection, name, where or [])
        count = count_segment(
            connection, expression, now_option(now, ws), ws.config.workspace.timezone
        )
    if as_json:
        print_json({"segment": name, "where": render(expression), "count": count})
    else:
        console.print(str(count))


@segment_app.command("export")
def segment_export(
    name: OptionalSegment = None,
    where: WhereOption = None,
    csv_file: Annotated[
        Path | None,
        typer.Option("--csv", help="CSV file to write (default: standard output)."),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            help="More fields to export, comma-separated (e.g. city,created_at,"
            "attributes.plan,survey_reason).",
            show_default=False,
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    now: NowOption = None,
) -> None:
    """Export a segment's contacts with their channel statuses and scores to CSV."""
    from winback.scoring.segments import export_columns, export_segment, segment_expression

    ws = open_workspace(workspace)
    names = export_columns(c.strip() for c in (columns or "").split(",") if c.strip())
    moment, timezone = now_option(now, ws), ws.config.workspace.timezone
    with ws.engine.connect() as connection:
        expression = segment_expression(connection, name, where or [])
        write_csv(
            csv_file,
            lambda out: export_segment(connection, expression, moment, timezone, out, names),
            "contacts",
        )


@segment_app.command("delete")
def segment_delete(
    name: SegmentArgument,
    workspace: WorkspaceOption = None,
) -> None:
    """Delete a saved segment."""
    from winback.scoring.segments import delete_segment

    ws = open_workspace(workspace)
    with ws.engine.begin() as connection:
        delete_segment(connection, name)
    console.print(plain(f"Segment {name} deleted."))


def register(app: typer.Typer) -> None:
    app.command()(score)
    app.command()(status)
    app.add_typer(segment_app, name="segment")
