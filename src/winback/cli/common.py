"""What every command shares: the workspace option, ``--now``, the consoles, the files
behind ``--out`` options, and the translation of library errors into a message and an
exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich import table as rich_table
from rich.console import Console

from winback.clock import parse_now
from winback.json_values import json_document
from winback.safe_output import json_text, output_file, plain
from winback.workspace import ENV_WORKSPACE, Workspace

# A terminal's own width; written to a pipe or a file, wide enough that no table is cut
# (Rich would fall back to 80 columns and end cells with an ellipsis).
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)


class Table(rich_table.Table):
    """A Rich table that fits the terminal: cells wrap at spaces, and a word longer than
    its column folds onto the next line instead of ending in an ellipsis (a narrow
    terminal showed ``unscri…`` for ``unsubscribed``)."""

    def add_column(self, *args: Any, overflow: Any = "fold", **options: Any) -> None:
        super().add_column(*args, overflow=overflow, **options)


WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "-w",
        "--workspace",
        envvar=ENV_WORKSPACE,
        help="Workspace folder (default: the current directory).",
        show_default=False,
    ),
]
NowOption = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Act as if it were this date (YYYY-MM-DD) or ISO datetime; default: now.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead.")]


_opened: list[Workspace] = []


def open_workspace(path: Path | None, *, check: bool = True) -> Workspace:
    """Open the workspace of a command; :func:`close_workspaces` closes it after."""
    workspace = Workspace.open(path, check=check)
    _opened.append(workspace)
    return workspace


def close_workspaces() -> None:
    """Release the database connections of the workspaces the command opened."""
    while _opened:
        _opened.pop().close()


def now_option(text: str | None, workspace: Workspace, *, option: str = "--now") -> datetime:
    """The moment ``--now`` (or another date ``option``) names, in the workspace's time
    zone; now when it is not given."""
    try:
        return parse_now(text, workspace.config.workspace.tz)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def print_json(data: Any) -> None:
    """JSON on standard output, with dates as ISO strings, for scripts to read."""
    typer.echo(json_text(json_document(data)))


@contextmanager
def counted_progress(
    description: str, *, hidden: bool = False
) -> Iterator[Callable[[int, int], None]]:
    """A bar of ``done`` out of ``total`` items for a long library operation: yields the
    ``progress(done, total)`` callback to hand it; ``hidden`` (``--json``, a dry run)
    shows nothing."""
    # Here: Rich's progress module is a tenth of a second that --help need not pay.
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=hidden,
    ) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextmanager
def output_path(out: Path) -> Iterator[Path]:
    """The temporary file to write an ``--out`` file through
    (:func:`winback.safe_output.output_file`): refused when ``out`` is the database,
    secret or config of a workspace the command opened, renamed over ``out`` at the end."""
    protected = [path for workspace in _opened for path in workspace.own_files()]
    with output_file(out, protected) as temporary:
        yield temporary


def print_written(what: str, out: Path) -> None:
    """Say on the terminal what went to the file ``out``."""
    console.print(plain(f"{what} written to {out}."))


def write_csv(out: Path | None, write: Callable[[TextIO], int], what: str) -> None:
    """Run a CSV export (``write`` returns how many rows it wrote) on standard output, or
    on the file ``out`` (:func:`output_path`) and then say how many ``what`` it holds: the
    count never goes into the data a script reads."""
    if out is None:
        write(sys.stdout)
        return
    with output_path(out) as temporary, temporary.open("w", encoding="utf-8", newline="") as f:
        count = write(f)
    print_written(f"{count} {what}", out)
