"""The command line: a thin Typer layer. Each command parses its input, calls one
function of the library and formats the result; library errors become a message on
standard error and an exit code (see :class:`WinbackGroup`).

The commands' modules are imported when their command runs, not before: they import the
library (SciPy, pyarrow, SQLAlchemy), which costs seconds that ``winback --help`` and
``winback --version`` should not pay. So the top group knows each command by the name of
its module and its one-line help (:data:`COMMANDS`; a test holds that table to the
commands' own help). Within a command's module, each command imports the library in its
body, so that the ``--help`` of any command builds its Typer app from Typer and Rich alone
(``tests/test_cli_start.py`` holds that; ``bench/cli.py`` measures it).
"""

from __future__ import annotations

import os
import signal
import sys
from importlib import import_module
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from winback.errors import WinbackError

#: Each top-level command: the module of ``winback.cli`` that defines it, and its help's
#: first sentence as the list of commands shows it.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": (
        "workspace",
        "Create a workspace: a commented winback.toml for the profile, and the database.",
    ),
    "migrate": ("workspace", "Bring the workspace database to the newest schema."),
    "demo": (
        "workspace",
        "Generate a realistic synthetic base (three years of activity), create a "
        "workspace with it, import it and print a summary.",
    ),
    "import": ("imports", "Load contacts and events from CSV, JSON Lines or Parquet."),
    "contact": ("contacts", "Look at one contact."),
    "events": ("events", "The event history: keep its columnar copy, export it as Parquet."),
    "score": (
        "scoring",
        "Score every contact: inactivity, RFM, stage (incremental after the first run).",
    ),
    "status": (
        "scoring",
        "Base health: stages, channel statuses, inactivity, erosion and wasted sending cost.",
    ),
    "segment": ("scoring", "Save, list, count and export named segments."),
    "journey": ("journeys", "Win-back journeys: add, list, show, enrol."),
    "offers": ("journeys", "Coupon codes of journey offers."),
    "tick": (
        "journeys",
        "Advance every enrollment due now: branch on reactions, exit, queue messages.",
    ),
    "dispatch": ("journeys", "Send the queued messages through the channels, at most once each."),
    "run": ("journeys", "Tick, then dispatch: the command for cron."),
    "simulate": (
        "journeys",
        "Play the journey on a virtual clock: funnel, messages, cost, reactivations.",
    ),
    "outbox": (
        "journeys",
        "The outbox by status, or (--unknown) the messages a crash left undecided.",
    ),
    "serve": (
        "web",
        "Serve the open pixel, click links, one-click unsubscribe, preference centre, "
        "survey and ESP webhooks (stop with Ctrl-C or SIGTERM: queued hits are written "
        "first).",
    ),
    "survey": (
        "web",
        "The answers to the win-back survey: how many gave each reason, and the latest "
        "free-text answers (control characters shown escaped).",
    ),
    "suppress": ("compliance", "The suppression list: addresses never written to again."),
    "purge": (
        "compliance",
        "Erase the contacts with no contact from the person for retention.erase_after "
        "(with retention.ask_before_erase, after a last question).",
    ),
    "gdpr": ("compliance", "The rights of one person: export and erasure."),
    "audit": (
        "compliance",
        "List the audit records: who decided what about which contact, and why.",
    ),
    "report": ("report", "Write the base and journey views as one HTML file that needs no server."),
    "user": ("users", "The people who may log in to the dashboard."),
    "doctor": (
        "doctor",
        "Check the workspace: config, database, public_url, SMTP, DKIM, templates, the "
        "tracking server, the last score and messages in doubt; exit 1 on an error.",
    ),
    "models": ("models", "Fit the purchase and spend models, and check them on a holdout period."),
}


def load_command(name: str) -> Any:
    """The click command ``name`` of the top group, built from its module."""
    module = import_module(f"winback.cli.{COMMANDS[name][0]}")
    sub = getattr(module, "app", None)
    if sub is not None:
        sub.rich_markup_mode = None
        group = typer.main.get_group(sub)
        group.name = name
        return group
    sub = typer.Typer(rich_markup_mode=None)
    module.register(sub)
    command = typer.main.get_group(sub).commands.get(name)
    if command is None:
        raise LookupError(f"winback.cli.{COMMANDS[name][0]} defines no command {name}")
    return command


def walk_commands() -> list[tuple[str, Any]]:
    """Every leaf command as (``winback journey show``, its click command), in the order
    of the list of commands: what the reference documents and the start test runs."""
    found: list[tuple[str, Any]] = []
    top = typer.main.get_command(app)

    def walk(prefix: str, command: Any, ctx: typer.Context) -> None:
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is None:
                    raise LookupError(f"{prefix} {name} cannot be loaded")
                walk(f"{prefix} {name}", sub, typer.Context(sub, info_name=name, parent=ctx))
        else:
            found.append((prefix, command))

    walk("winback", top, typer.Context(top, info_name="winback"))
    return found


class WinbackGroup(TyperGroup):
    """The top group; every command runs inside its ``invoke``, so this is the one place
    where library errors are translated. Commands are loaded on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if cmd_name not in self.commands:
            self.add_command(load_command(cmd_name), cmd_name)
        return self.commands[cmd_name]

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except WinbackError as exc:
            from winback.cli.common import err_console
            from winback.safe_output import plain

            err_console.print(plain(f"error: {exc}", style="bold red"))
            raise typer.Exit(exc.exit_code) from exc
        finally:
            if "winback.cli.common" in sys.modules:
                from winback.cli.common import close_workspaces

                close_workspaces()


app = typer.Typer(
    name="winback",
    cls=WinbackGroup,
    help="Find the quiet contacts of a marketing base, win back who can be won back, "
    "and let go of the rest cleanly.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"winback {version('winback')}")
        raise typer.Exit()


@app.callback()
def _top(
    version: Annotated[
        bool | None,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print winback's version and exit.",
        ),
    ] = None,
) -> None:
    """Find the quiet contacts of a marketing base, win back who can be won back, and let
    go of the rest cleanly."""


def main() -> None:
    """Entry point of the ``winback`` script. SIGTERM (a service stopped, a cron
    timeout) ends a command as an exception would, so its transaction is rolled back
    and its scratch files and helper processes go; then the process ends by the signal
    all the same, as its service manager expects."""
    terminated: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        terminated.append(signum)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        app()
    finally:
        if terminated:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
