"""``winback journey ...``, ``tick``, ``dispatch``, ``run``, ``simulate``, ``outbox`` and
``offers ...``: win-back journeys from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from winback import journeys
from winback.cli.common import (
    JsonOption,
    NowOption,
    Table,
    WorkspaceOption,
    console,
    err_console,
    now_option,
    open_workspace,
    output_path,
    print_json,
    print_written,
    write_csv,
)
from winback.clock import utcnow
from winback.safe_output import plain

if TYPE_CHECKING:
    from winback.journeys import ControlResult, DispatchResult, TickResult

journey_app = typer.Typer(help="Win-back journeys: add, list, show, enrol.", no_args_is_help=True)
offers_app = typer.Typer(help="Coupon codes of journey offers.", no_args_is_help=True)

DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Write messages to outbox-files/ instead of sending.")
]


@journey_app.command("add")
def journey_add(
    file: Annotated[Path, typer.Argument(help="The journey's YAML file.")],
    workspace: WorkspaceOption = None,
) -> None:
    """Validate a journey file (steps, branches, waits, templates) and store it."""
    from winback.journeys import add_journey

    ws = open_workspace(workspace)
    added = add_journey(ws, file, now=utcnow())
    verb = "Added" if added.new else "Updated"
    name, steps = added.journey.name, len(added.journey.steps)
    console.print(plain(f"{verb} journey {name} ({steps} steps)."))


@journey_app.command("list")
def journey_list(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """The stored journeys and their enrollments by status."""
    from winback.journeys import list_journeys

    journeys = list_journeys(open_workspace(workspace))
    if as_json:
        print_json([item.as_dict() for item in journeys])
        return
    table = Table("journey", "status", "steps", "channels", "enrollments")
    for item in journeys:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(item.enrollments.items())) or "none"
        table.add_row(
            plain(item.name),
            item.status,
            plain(" → ".join(item.steps)),
            ", ".join(item.channels),
            plain(counts),
        )
    console.print(table)


@journey_app.command("show")
def journey_show(
    name: Annotated[str, typer.Argument(help="Journey name.")],
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Did it work? Per step: sent, delivered, bounced, opened, clicked, unsubscribed,
    conversions, revenue, codes used; for the journey: cost, ROI and the lift against the
    holdout with its 95 % confidence interval."""
    from winback.reports.results import journey_results

    ws = open_workspace(workspace)
    result = journey_results(ws, name, now_option(now, ws))
    if as_json:
        print_json(result)
        return
    columns = ("waiting", "sent", "delivered", "bounced", "opened", "clicked", "unsubscribed")
    table = Table(
        "step", "channel", *columns, "conversions", "revenue", "redeemed",
        title=plain(f"journey {name}"),
    )  # fmt: skip
    for step in result["steps"]:
        table.add_row(
            plain(step["id"]),
            step["channel"],
            *(str(step[key]) for key in columns),
            str(step["conversions"]),
            f"{step['revenue']:,.2f}",
            str(step["redeemed"]),
        )
    console.print(table)
    currency = result["currency"]
    roi = "n/a" if result["roi"] is None else f"{result['roi']:.1f}"
    console.print(
        plain(
            f"enrolled {result['enrolled']} (holdout {result['holdout']}); "
            f"{result['conversions']} conversions within {result['attribution_days']} days, "
            f"revenue {result['revenue']:,.2f} {currency}, cost {result['cost']:,.2f} "
            f"{currency}, discounts {result['discounts']:,.2f} {currency}, ROI {roi}"
        )
    )
    console.print(plain(f"reactivation, lift against the holdout: {result['verdict']['lift']}"))
    console.print(plain(f"revenue per contact: {result['verdict']['revenue_lift']}"))


def _control(result: ControlResult, as_json: bool) -> None:
    if as_json:
        print_json(result.__dict__)
        return
    console.print(
        plain(
            f"journey {result.journey}: {result.status}"
            + (
                f"; {result.enrollments_ended} enrollments ended, "
                f"{result.messages_cancelled} queued messages cancelled"
                if result.enrollments_ended
                else ""
            )
        )
    )


def _state_command(command: str, change: str, doc: str) -> None:
    """Register ``winback journey COMMAND NAME``: one state change of a journey, made by
    the function ``change`` of :mod:`winback.journeys` (loaded when the command runs)."""

    def run(
        name: Annotated[str, typer.Argument(help="Journey name.")],
        workspace: WorkspaceOption = None,
        now: NowOption = None,
        as_json: JsonOption = False,
    ) -> None:
        ws = open_workspace(workspace)
        _control(getattr(journeys, change)(ws, name, now=now_option(now, ws)), as_json)

    run.__doc__ = doc
    journey_app.command(command)(run)


_state_command(
    "pause",
    "pause_journey",
    "Hold a running journey: nothing moves and nothing of it goes out until resumed.",
)
_state_command(
    "resume", "resume_journey", "Let a paused journey run again from where each contact was."
)
_state_command(
    "stop",
    "stop_journey",
    "End a journey for good: every enrollment ends, its queued messages are cancelled.",
)


@journey_app.command("unenroll")
def journey_unenroll(
    name: Annotated[str, typer.Argument(help="Journey name.")],
    address: Annotated[str, typer.Argument(help="The contact's email or phone.")],
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take one contact out of a journey, cancelling their queued messages."""
    from winback.journeys import unenroll

    ws = open_workspace(workspace)
    _control(unenroll(ws, name, address, now=now_option(now, ws)), as_json)


@journey_app.command("preview")
def journey_preview(
    name: Annotated[str, typer.Argument(help="Journey name.")],
    step: Annotated[str, typer.Argument(help="Step id.")],
    contact: Annotated[
        str, typer.Option("--contact", help="Render it as this contact (email or phone) gets it.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML (or text, for an SMS) file to write.")
    ] = None,
    workspace: WorkspaceOption = None,
    now: NowOption = None,
) -> None:
    """Render one message of a journey as a contact would get it; nothing is sent."""
    from winback.journeys import preview_message

    ws = open_workspace(workspace)
    shown = preview_message(ws, name, step, contact, now=now_option(now, ws))
    if out is None:
        if shown.subject:
            console.print(plain(f"Subject: {shown.subject}"))
        console.print(plain(shown.text))
        return
    with output_path(out) as temporary:
        temporary.write_text(shown.html or shown.text, encoding="utf-8")
    print_written(f"The {shown.channel} message for {shown.to_address}", out)


@journey_app.command("send-test")
def journey_send_test(
    name: Annotated[str, typer.Argument(help="Journey name.")],
    step: Annotated[str, typer.Argument(help="Step id.")],
    to: Annotated[str, typer.Option("--to", help="Where the test goes (email or phone).")],
    contact: Annotated[
        str | None,
        typer.Option("--contact", help="Render it as this contact gets it (default: --to)."),
    ] = None,
    workspace: WorkspaceOption = None,
    now: NowOption = None,
) -> None:
    """Send one message of a journey to yourself through its channel, marked [TEST];
    it is never recorded nor counted in the results."""
    from winback.journeys import send_test

    ws = open_workspace(workspace)
    shown, result = send_test(ws, name, step, to, now=now_option(now, ws), as_contact=contact)
    console.print(plain(f"Test {shown.channel} message sent to {to}: {type(result).__name__}."))


@journey_app.command("enroll")
def journey_enroll(
    name: Annotated[str, typer.Argument(help="Journey name.")],
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Enrol the journey's audience as it is now, with its holdout group."""
    from winback.journeys import enrol

    ws = open_workspace(workspace)
    result = enrol(ws, name, now=now_option(now, ws))
    if as_json:
        print_json({**result.__dict__, "skipped": dict(result.skipped)})
        return
    console.print(
        plain(
            f"Enrolled {result.enrolled} of {result.audience} contacts in {name} "
            f"({result.holdout} in the holdout, who will receive nothing)."
        )
    )
    for reason, count in sorted(result.skipped.items()):
        console.print(plain(f"  skipped, {reason}: {count}"))


@journey_app.command("new")
def journey_new(
    source: Annotated[
        str, typer.Option("--from", help="Where to copy from: starter (the shipped set).")
    ] = "starter",
    force: Annotated[bool, typer.Option(help="Overwrite files you already have.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Copy the starter templates and example journey into the workspace to edit."""
    from winback.journeys import copy_starter

    if source != "starter":
        raise typer.BadParameter("only `--from starter` exists", param_hint="--from")
    ws = open_workspace(workspace)
    written = copy_starter(ws, force=force)
    for path in written:
        console.print(plain(f"wrote {path}"))
    console.print(
        plain(
            f"{len(written)} files copied. Edit them, then: winback journey add "
            f"{ws.journeys_dir / 'winback.yaml'}"
        )
    )


def _print_tick(result: TickResult) -> None:
    console.print(
        f"tick: {result.due} due, {result.queued} messages queued, "
        f"{result.holdout_steps} holdout steps, {result.passed_over} passed over (no "
        f"channel for them), {result.postponed} postponed (frequency), {result.waiting} "
        "waiting for their last message, "
        f"{result.reactivated} reactivated, {result.exited} exited, "
        f"{result.sunset} sunset, {result.completed} completed"
    )


def _print_dispatch(result: DispatchResult) -> None:
    console.print(
        f"dispatch: {result.sent} sent, {result.failed} failed, {result.retry} to retry, "
        f"{result.unknown} unknown, {result.cancelled} cancelled"
    )
    if result.recovered:
        console.print(
            f"{result.recovered} messages a stopped dispatcher had claimed were settled "
            "from its flight log (sent, failed, or queued again when never handed over)"
        )
    if result.recovered_unknown:
        err_console.print(
            f"{result.recovered_unknown} messages were being sent when a dispatcher stopped: "
            "their fate is unknown, they will not be resent (see `winback outbox --unknown`)"
        )


def _stop_if_channel_failed(result: DispatchResult) -> None:
    if result.stopped:
        err_console.print(plain(f"error: {result.stopped}", style="bold red"))
        raise typer.Exit(7)


def tick(
    workspace: WorkspaceOption = None, now: NowOption = None, as_json: JsonOption = False
) -> None:
    """Advance every enrollment due now: branch on reactions, exit, queue messages."""
    ws = open_workspace(workspace)
    result = journeys.tick(ws, now=now_option(now, ws))
    if as_json:
        print_json(result.as_dict())
    else:
        _print_tick(result)


def dispatch(
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Send the queued messages through the channels, at most once each."""
    ws = open_workspace(workspace)
    result = journeys.dispatch(ws, now=now_option(now, ws), dry_run=dry_run)
    if as_json:
        print_json(result.as_dict())
    else:
        _print_dispatch(result)
    _stop_if_channel_failed(result)


def run(
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Tick, then dispatch: the command for cron."""
    from winback.journeys import tick_and_dispatch

    ws = open_workspace(workspace)
    ticked, sent = tick_and_dispatch(ws, now=now_option(now, ws), dry_run=dry_run)
    if as_json:
        print_json({"tick": ticked.as_dict(), "dispatch": sent.as_dict()})
    else:
        _print_tick(ticked)
        _print_dispatch(sent)
    _stop_if_channel_failed(sent)


def simulate(
    name: Annotated[str, typer.Argument(help="Journey name.")],
    days: Annotated[int, typer.Option("--days", min=1, help="How long to play it.")] = 120,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same figures.")] = 0,
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Play the journey on a virtual clock: funnel, messages, cost, reactivations.
    Nothing is written or sent."""
    ws = open_workspace(workspace)
    result = journeys.simulate(ws, name, days, now=now_option(now, ws), seed=seed).as_dict()
    if as_json:
        print_json(result)
        return
    table = Table(
        "step", "sent", "opened", "clicked", title=plain(f"{name}, {days} days (simulated)")
    )
    for step, funnel in result["steps"].items():
        sent = ", ".join(f"{n} {ch}" for ch, n in funnel["sent"].items())
        table.add_row(plain(step), sent, str(funnel["opened"]), str(funnel["clicked"]))
    console.print(table)
    console.print(f"audience: {result['audience']} ({sum(result['skipped'].values())} skipped)")
    for group, counts in result["outcomes"].items():
        console.print(
            plain(
                f"{group}: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
            )
        )
    messages = ", ".join(f"{n} {ch}" for ch, n in result["messages"].items()) or "none"
    console.print(f"messages: {messages}; cost {result['cost']:.2f} {result['currency']}")
    console.print(f"reactivations: {result['reactivations']}")
    if result["lift"] is not None:
        console.print(f"lift against the holdout: {result['lift']:+.1%}")


def outbox(
    unknown: Annotated[
        bool, typer.Option("--unknown", help="List the messages whose fate is unknown.")
    ] = False,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """The outbox by status, or (--unknown) the messages a crash left undecided."""
    from winback.journeys import outbox_counts, unknown_messages

    ws = open_workspace(workspace)
    if not unknown:
        counts = outbox_counts(ws)
        if as_json:
            print_json(counts.as_dict())
            return
        for status, count in sorted(counts.by_status.items()):
            console.print(f"{status}: {count}")
        return
    messages = unknown_messages(ws)
    if as_json:
        print_json([message.as_dict() for message in messages])
        return
    table = Table("id", "journey", "step", "channel", "to", "message id", "due", "why")
    for message in messages:
        table.add_row(
            str(message.id),
            plain(message.journey or ""),
            plain(message.step_id or ""),
            message.channel,
            plain(message.to_address or ""),
            plain(message.message_id or ""),
            str(message.due_at),
            plain(message.error or ""),
        )
    console.print(table)
    console.print(
        f"{len(messages)} messages may or may not have gone out; check with the provider "
        "(by message id) before sending anything again."
    )


@offers_app.command("export")
def offers_export(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="CSV file to write (default: stdout).")
    ] = None,
    journey: Annotated[str | None, typer.Option(help="Only this journey's codes.")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """The coupon codes given to contacts, as CSV for the shop."""
    from winback.journeys import export_offers_csv

    ws = open_workspace(workspace)
    write_csv(out, lambda stream: export_offers_csv(ws, stream, journey), "codes")


@offers_app.command("import")
def offers_import(
    file: Annotated[Path, typer.Argument(help="CSV with code and percent or amount columns.")],
    workspace: WorkspaceOption = None,
) -> None:
    """Import a pool of codes made by the shop, for steps with `pool: true`."""
    from winback.journeys import import_pool_file

    ws = open_workspace(workspace)
    pool = import_pool_file(ws, file, now=utcnow())
    console.print(f"{pool.added} codes added to the pool ({pool.read - pool.added} already known).")


def register(app: typer.Typer) -> None:
    app.add_typer(journey_app, name="journey")
    app.add_typer(offers_app, name="offers")
    app.command()(tick)
    app.command()(dispatch)
    app.command()(run)
    app.command()(simulate)
    app.command()(outbox)
