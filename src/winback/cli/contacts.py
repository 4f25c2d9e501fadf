"""``winback contact show``."""

from __future__ import annotations

from typing import Annotated

import typer

from winback.cli.common import (
    JsonOption,
    Table,
    WorkspaceOption,
    console,
    open_workspace,
    print_json,
)
from winback.safe_output import plain

app = typer.Typer(help="Look at one contact.", no_args_is_help=True)


@app.command("show")
def show(
    address: Annotated[str, typer.Argument(help="Email or phone of the contact.")],
    workspace: WorkspaceOption = None,
    events: Annotated[int, typer.Option(help="How many recent events to show.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Show one contact: attributes, channel statuses, stage and latest events."""
    from winback.contacts import contact_profile

    ws = open_workspace(workspace)
    profile = contact_profile(ws, address, events=events)
    if as_json:
        print_json(profile)
        return
    contact = profile["contact"]
    table = Table(show_header=False, title=plain(contact.get("email") or contact.get("phone")))
    table.add_column(style="bold")
    table.add_column()
    for name, value in contact.items():
        if value not in (None, [], {}):
            table.add_row(name, plain(value))
    table.add_row("stage", str(profile["stage"]))
    for name in ("p_alive", "expected_purchases_90d", "expected_value_12m"):
        value = profile["scores"].get(name)
        if value is not None:
            table.add_row(name, f"{value:.3g}" if name == "p_alive" else f"{value:.2f}")
    console.print(table)
    recent = Table("when", "type", "channel", "amount", "campaign", title="Latest events")
    for event in profile["events"]:
        recent.add_row(
            str(event["occurred_at"]),
            event["type"],
            event["channel"],
            "" if event["amount"] is None else f"{event['amount']:.2f}",
            plain(event["campaign"] or ""),
        )
    console.print(recent)
