"""``winback user add``: who may log in to the dashboard."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from winback.cli.common import WorkspaceOption, console, now_option, open_workspace

user_app = typer.Typer(help="The people who may log in to the dashboard.", no_args_is_help=True)


@user_app.command("add")
def user_add(
    email: Annotated[str, typer.Argument(help="The user's email (their login).")],
    workspace: WorkspaceOption = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a dashboard user, or change their password (asked twice, never shown)."""
    from winback.web.auth import add_user

    ws = open_workspace(workspace)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    new = add_user(ws, email, password, now_option(None, ws))
    verb = "added" if new else "updated: new password"
    console.print(f"Dashboard user {email.strip().lower()} {verb}.", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
