"""``winback init``, ``winback migrate`` and ``winback demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from winback.cli.common import WorkspaceOption, console, open_workspace
from winback.cli.imports import import_progress, print_import_summary
from winback.domain import Profile
from winback.safe_output import plain


def init(
    directory: Annotated[Path, typer.Argument(help="Folder of the new workspace.")],
    profile: Annotated[
        Profile, typer.Option("--profile", "-p", help="Business profile: sets the policy.")
    ] = "ecommerce",
    force: Annotated[bool, typer.Option(help="Overwrite an existing winback.toml.")] = False,
) -> None:
    """Create a workspace: a commented winback.toml for the profile, and the database."""
    from winback.workspace import Workspace

    workspace = Workspace.init(directory, profile, force=force)
    workspace.close()
    console.print(
        plain(
            f"Workspace ready in {directory} (profile {profile}, database "
            f"{workspace.engine.url.render_as_string(hide_password=True)})."
        )
    )
    console.print(plain(f"Next: winback import contacts FILE -w {directory}"))
    console.print(
        "Before the first real send, set in winback.toml: workspace.public_url (the https "
        "address of `winback serve`), workspace.shop_url (your shop), [email] host, port, "
        "tls, username and password (or WINBACK_SMTP_URL), and [email] from. "
        "`winback doctor` checks them.",
        markup=False,
        highlight=False,
    )


def migrate(workspace: WorkspaceOption = None) -> None:
    """Bring the workspace database to the newest schema."""
    from winback.store import migrate as migrate_store

    ws = open_workspace(workspace, check=False)
    migrate_store(ws.engine)
    console.print("Database schema is up to date.")


def demo(
    directory: Annotated[Path, typer.Argument(help="Folder of the demo workspace.")] = Path(
        "demo-workspace"
    ),
    contacts: Annotated[int, typer.Option(help="How many synthetic contacts.")] = 50_000,
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic base.")] = 7,
) -> None:
    """Generate a realistic synthetic base (three years of activity), create a workspace
    with it, import it and print a summary."""
    from winback.demo import build_demo, demo_now

    with import_progress(True) as progress:
        built = build_demo(
            directory, contacts=contacts, now=demo_now(), seed=seed, progress=progress
        )
    console.print(
        plain(
            f"Generated {built.files.contact_rows:,} contacts and {built.files.event_rows:,} "
            f"events in {built.files.contacts.parent}"
        )
    )
    for report in built.reports:
        print_import_summary(report)
    console.print(plain(f"Try: winback contact show {built.first_address} -w {directory}"))


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(migrate)
    app.command()(demo)
