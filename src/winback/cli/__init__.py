"""The command line: a thin Typer layer. Each command parses its input, calls one
function of the library and formats the result; library errors become a message on
standard error and an exit code (see :class:`WinbackGroup`)."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from winback.cli import compliance, contacts, imports, journeys, models, scoring, web, workspace
from winback.cli.common import close_workspaces, err_console
from winback.errors import WinbackError
from winback.safe_output import plain


class WinbackGroup(TyperGroup):
    """The top group; every command runs inside its ``invoke``, so this is the one place
    where library errors are translated."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except WinbackError as exc:
            err_console.print(plain(f"error: {exc}", style="bold red"))
            raise typer.Exit(exc.exit_code) from exc
        finally:
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
workspace.register(app)
app.add_typer(imports.app, name="import")
app.add_typer(contacts.app, name="contact")
scoring.register(app)
journeys.register(app)
web.register(app)
compliance.register(app)
app.add_typer(models.app, name="models")


def main() -> None:
    """Entry point of the ``winback`` script."""
    app()
