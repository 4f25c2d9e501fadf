"""``winback import contacts|events FILE``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from winback.cli.common import (
    JsonOption,
    NowOption,
    Table,
    WorkspaceOption,
    console,
    now_option,
    open_workspace,
    print_json,
)
from winback.domain import ChannelStatus
from winback.safe_output import plain

if TYPE_CHECKING:
    from winback.ingest import ImportReport

app = typer.Typer(
    help="Load contacts and events from CSV, JSON Lines or Parquet.", no_args_is_help=True
)

FileArgument = Annotated[
    Path, typer.Argument(help="CSV (, ; tab |), JSON Lines (.jsonl) or Parquet file.")
]
ContactsFileArgument = Annotated[
    Path,
    typer.Argument(
        help="CSV (, ; tab |), JSON Lines (.jsonl) or Parquet file, or a ZIP of CSV files "
        "(a Mailchimp audience export)."
    ),
]
MapOption = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        help="Map a source column to a field, as SOURCE=FIELD (repeatable); SOURCE= ignores "
        "the column.",
        show_default=False,
    ),
]


def _mapping(pairs: list[str] | None) -> dict[str, str]:
    mapping = {}
    for pair in pairs or []:
        source, sep, field = pair.rpartition("=")
        if not sep or not source.strip():
            raise typer.BadParameter(f"{pair!r} is not SOURCE=FIELD or SOURCE=", param_hint="--map")
        mapping[source.strip()] = field.strip()
    return mapping


@contextmanager
def import_progress(enabled: bool) -> Iterator[Callable[[int, int, int], None] | None]:
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:>12,} rows"),
        TextColumn("{task.fields[speed]:>9,.0f} rows/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("importing", total=None, rows=0, speed=0.0)

        def update(rows: int, done: int, total: int) -> None:
            elapsed = progress.tasks[0].elapsed or 0.0
            speed = rows / elapsed if elapsed else 0.0
            progress.update(task, completed=done, total=total, rows=rows, speed=speed)

        yield update


def print_import_summary(report: ImportReport) -> None:
    table = Table(title=plain(f"Import of {report.kind} from {report.file}"), show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    if report.recognised:
        table.add_row("recognised as", report.recognised)
    table.add_row("read", f"{report.read:,}")
    table.add_row("imported", f"{report.imported:,}")
    table.add_row("merged" if report.kind == "contacts" else "already stored", f"{report.merged:,}")
    table.add_row("rejected", f"{report.rejected:,}")
    for reason, count in report.by_reason.most_common():
        table.add_row(plain(f"  {reason}"), f"{count:,}")
    table.add_row("warnings (rows kept)", f"{report.warnings:,}")
    for reason, count in report.warnings_by_reason.most_common():
        table.add_row(plain(f"  {reason}"), f"{count:,}")
    table.add_row("time", f"{report.seconds:.1f} s ({report.rows_per_second:,.0f} rows/s)")
    console.print(table)
    if report.quarantine:
        console.print(plain(f"Rejected rows, with their line and reason: {report.quarantine}"))
    if report.warnings_file:
        console.print(
            plain(f"Fields left empty, with their line, column and value: {report.warnings_file}")
        )


@app.command("contacts")
def contacts(
    file: ContactsFileArgument,
    workspace: WorkspaceOption = None,
    mapping: MapOption = None,
    status: Annotated[
        ChannelStatus | None,
        typer.Option(
            help="Mark every address of the file (an ESP's unsubscribed or cleaned export).",
            show_default=False,
        ),
    ] = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import contacts: de-duplicated on the email (or phone), merged with what is stored.

    The kind of file (Mailchimp, Brevo, Klaviyo, Shopify, a suppression export...) is
    recognised from its columns and says the consent; a plain list's emails take
    import.default_consent, and a phone number alone is never SMS consent."""
    from winback.ingest import import_contact_files

    ws = open_workspace(workspace)
    with import_progress(not as_json) as progress:
        reports = import_contact_files(
            ws,
            file,
            now=now_option(now, ws),
            mapping=_mapping(mapping),
            status=status,
            progress=progress,
        )
    if as_json:
        found = [report.as_dict() for report in reports]
        print_json(found[0] if len(found) == 1 else found)
    else:
        for report in reports:
            print_import_summary(report)


@app.command("events")
def events(
    file: FileArgument,
    workspace: WorkspaceOption = None,
    mapping: MapOption = None,
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="The file holds this ESP's webhook payloads: sendgrid, mailgun, postmark, "
            "ses or brevo (recognised by itself when not given).",
            show_default=False,
        ),
    ] = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import events (opens, clicks, purchases, visits...) for known contacts, from an
    events file, a shop's order export (Shopify's "Export orders": one purchase per
    order) or ESP webhook payloads (a JSON array, or one body a line)."""
    from winback.ingest.webhook_files import import_event_file

    ws = open_workspace(workspace)
    with import_progress(not as_json) as progress:
        report = import_event_file(
            ws,
            file,
            now=now_option(now, ws),
            format=format,
            mapping=_mapping(mapping),
            progress=progress,
        )
    if as_json:
        print_json(report.as_dict())
    else:
        print_import_summary(report)
