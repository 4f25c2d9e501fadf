"""``winback suppress …``, ``winback purge``, ``winback gdpr …`` and ``winback audit``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from winback import compliance
from winback.cli.common import (
    JsonOption,
    NowOption,
    Table,
    WorkspaceOption,
    console,
    counted_progress,
    now_option,
    open_workspace,
    output_path,
    print_json,
    print_written,
    write_csv,
)
from winback.domain import SuppressionReason
from winback.errors import WinbackError
from winback.json_values import json_document
from winback.safe_output import plain

WAL_WARNING = (
    "[bold red]The SQLite write-ahead log could not be emptied[/] (another process is "
    "reading the database): old copies of the erased rows stay in it until it is; stop "
    "that process and run `winback purge` (nothing left to erase) to empty it."
)


class SendingChannel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


AddressArgument = Annotated[str, typer.Argument(help="An email, or a phone number for SMS.")]
ChannelOption = Annotated[
    SendingChannel | None,
    typer.Option(help="email or sms (default: what the address is).", show_default=False),
]

suppress_app = typer.Typer(
    help="The suppression list: addresses never written to again.", no_args_is_help=True
)
gdpr_app = typer.Typer(help="The rights of one person: export and erasure.", no_args_is_help=True)


def _channel(option: SendingChannel | None) -> str | None:
    return None if option is None else option.value


@suppress_app.command("add")
def suppress_add(
    address: AddressArgument,
    reason: Annotated[
        SuppressionReason, typer.Option(help="Why the address is suppressed.")
    ] = SuppressionReason.MANUAL,
    channel: ChannelOption = None,
    workspace: WorkspaceOption = None,
    now: NowOption = None,
) -> None:
    """Suppress an address; a refusal reason also changes the contact's channel status."""
    from winback.compliance import add_suppression

    ws = open_workspace(workspace)
    added = add_suppression(
        ws, address, reason=reason.value, now=now_option(now, ws), channel=_channel(channel)
    )
    console.print("Suppressed." if added else "Already suppressed (its first reason stays).")


@suppress_app.command("remove")
def suppress_remove(
    address: AddressArgument,
    note: Annotated[
        str, typer.Option("--note", help="Why you remove it (kept in the audit log).")
    ] = "removed by the user",
    channel: ChannelOption = None,
    workspace: WorkspaceOption = None,
    now: NowOption = None,
) -> None:
    """Take an address off the list (audited); it subscribes no one again."""
    from winback.compliance import remove_suppression

    ws = open_workspace(workspace)
    was = remove_suppression(
        ws, address, note=note, now=now_option(now, ws), channel=_channel(channel)
    )
    console.print(plain(f"Removed (it was suppressed for {was}). The channel status is unchanged."))


@suppress_app.command("list")
def suppress_list(
    channel: ChannelOption = None,
    reason: Annotated[SuppressionReason | None, typer.Option(help="Only this reason.")] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the suppressed addresses (a hash for those no contact holds any more)."""
    from winback.compliance import list_suppressions

    ws = open_workspace(workspace)
    entries = list(
        list_suppressions(
            ws, channel=_channel(channel), reason=None if reason is None else reason.value
        )
    )
    if as_json:
        print_json([entry.as_dict() for entry in entries])
        return
    table = Table("channel", "address or hash", "reason", "suppressed at")
    for entry in entries:
        table.add_row(
            entry.channel,
            plain(entry.address or entry.hash),
            entry.reason,
            entry.suppressed_at.isoformat(),
        )
    console.print(table)
    console.print(f"{len(entries)} suppressed addresses.")


@suppress_app.command("import")
def suppress_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with an address (or hash) column: winback's export, or an ESP's "
            "suppression or unsubscribed export (Mailchimp, SendGrid, Mailgun, Postmark, "
            "Brevo)."
        ),
    ],
    reason: Annotated[
        SuppressionReason | None,
        typer.Option(
            help="Reason of rows that carry none (default: what the file's columns say, "
            "else manual).",
            show_default=False,
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add the addresses or hashes of a suppression file to the suppression list."""
    from winback.ingest import import_suppressions

    ws = open_workspace(workspace)
    result = import_suppressions(
        ws, file, reason=None if reason is None else reason.value, now=now_option(now, ws)
    )
    if as_json:
        print_json(result.as_dict())
        return
    console.print(
        f"{result.added} added, {result.already} already suppressed, "
        f"{result.skipped} rows not refusals, {len(result.rejected)} rejected."
    )
    for line, problem in result.rejected:
        console.print(plain(f"{file.name} line {line}: {problem}"))


@suppress_app.command("export")
def suppress_export(
    out: Annotated[
        Path | None, typer.Option("--out", help="CSV file to write (default: standard output).")
    ] = None,
    channel: ChannelOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Export the list as CSV: addresses of contacts still present, hashes for the others."""
    from winback.compliance import export_suppressions

    ws = open_workspace(workspace)
    write_csv(
        out, lambda stream: export_suppressions(ws, stream, channel=_channel(channel)), "entries"
    )


def _interactive() -> bool:
    """Whether a person is at the terminal to answer a question."""
    return sys.stdin.isatty()


def purge(
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show who would be erased; erase nothing.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="With --dry-run: CSV of the contacts due, with the day their clock "
            "started, why, and what the purge would do.",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option("--yes", help="Erase without asking (needed when no one is at a terminal)."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Erase the contacts with no contact from the person for retention.erase_after
    (with retention.ask_before_erase, after a last question). Run it with --dry-run
    --out FILE first to see who."""
    from winback.compliance import write_purge_plan

    ws = open_workspace(workspace)
    moment = now_option(now, ws)
    if out is not None and not dry_run:
        raise WinbackError(
            "--out writes who the purge would erase: use it with --dry-run, look at the "
            "file, then run the purge"
        )
    if out is not None:
        with output_path(out) as temporary, temporary.open("w", encoding="utf-8", newline="") as f:
            planned = write_purge_plan(ws, f, now=moment)
        if not as_json:
            print_written(f"{planned} contacts due", out)
    if not dry_run and not yes:
        if not _interactive():
            raise WinbackError(
                "winback purge erases contacts for good: run it with --dry-run --out FILE "
                "to see who, then again with --yes (no one is at a terminal to confirm)"
            )
        plan = compliance.purge(ws, now=moment, dry_run=True)
        typer.confirm(
            f"Erase {plan.due - plan.waiting} contacts with no contact from the person since "
            f"{plan.cutoff.date().isoformat()}?",
            abort=True,
        )
    with counted_progress("erasing", hidden=as_json or dry_run) as progress:
        result = compliance.purge(ws, now=moment, dry_run=dry_run, progress=progress)
    if as_json:
        print_json(result.as_dict())
        return
    since = result.cutoff.date().isoformat()
    console.print(
        f"{result.due} contacts with no contact from the person since {since} "
        f"({result.with_email} with an email, {result.with_phone} with a phone)."
    )
    if ws.config.retention.ask_before_erase:
        console.print(
            f"{result.asked} {'would be asked' if dry_run else 'asked'} whether they want to stay "
            f"(`winback dispatch` sends the question); {result.waiting} of the due contacts "
            "wait for their answer."
        )
    if dry_run:
        console.print("Dry run: nothing was erased.")
    else:
        console.print(f"{result.erased} erased; their addresses stay suppressed as hashes.")
    if not result.log_emptied:
        console.print(WAL_WARNING)


@gdpr_app.command("export")
def gdpr_export(
    email: Annotated[str, typer.Argument(help="Email (or phone) of the person.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="JSON file to write (default: standard output).")
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Everything held on one person, as one JSON document."""
    from winback.compliance import export_person

    ws = open_workspace(workspace)
    document = export_person(ws, email)
    if out is None:
        print_json(document)
        return
    with output_path(out) as temporary:
        temporary.write_text(json_document(document), "utf-8")
    print_written("The person's data", out)


@gdpr_app.command("erase")
def gdpr_erase(
    email: Annotated[str, typer.Argument(help="Email (or phone) of the person.")],
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Erase one person's data everywhere: database, outbox, quarantine, output, logs."""
    from winback.compliance import erase_person

    ws = open_workspace(workspace)
    result = erase_person(ws, email, now=now_option(now, ws))
    if as_json:
        print_json(result.as_dict())
        return
    if result.contact_erased:
        console.print("The contact was erased; the address stays suppressed as a hash.")
    else:
        console.print("No contact had this address; it is suppressed as a hash.")
    files = result.files
    console.print(
        f"Files: {len(files.rewritten)} rewritten without the person, {len(files.deleted)} deleted."
    )
    for path in files.left:
        console.print(
            plain("Not changed", style="bold red"),
            plain(f"(binary file naming the person): {path}"),
        )
    if not result.log_emptied:
        console.print(WAL_WARNING)


def audit(
    contact: Annotated[
        str | None, typer.Option("--contact", help="Only this contact (email or phone).")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            "--since", formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"], help="From this date (UTC)."
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the audit records: who decided what about which contact, and why."""
    from winback.compliance import audit_log

    ws = open_workspace(workspace)
    records = audit_log(
        ws, contact=contact, since=None if since is None else since.replace(tzinfo=UTC)
    )
    if as_json:
        print_json([record.as_dict() for record in records])
        return
    table = Table("at", "actor", "action", "contact", "reason")
    for record in records:
        erased = f"erased {record.contact_key[:12]}…" if record.contact_key else ""
        table.add_row(
            record.at.isoformat(),
            plain(record.actor),
            plain(record.action),
            plain(record.address or erased),
            plain(record.reason or ""),
        )
    console.print(table)
    console.print(f"{len(records)} records.")


def register(app: typer.Typer) -> None:
    app.add_typer(suppress_app, name="suppress")
    app.command()(purge)
    app.add_typer(gdpr_app, name="gdpr")
    app.command()(audit)
