"""A coupon redeemed by a plain events file: a purchase row of ``winback import events``
that carries the code winback issued (a ``code`` / ``discount_code`` / ``Discount Code``
column) redeems it, credits the step that sent it and ends the journey as a conversion,
as a shop's order export does. Both cleaning paths: the block path reads the ISO dates
of the first file, the row path the French dates of the second."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select
from typer.testing import CliRunner

from tests.journeys.conftest import SIMPLE, START, add, scored
from winback.cli import app
from winback.journeys import enrol, tick
from winback.store.schema import contacts, enrollments, events, offers
from winback.workspace import Workspace

OFFER_FIRST = SIMPLE.replace(
    "template: miss_you", "template: offer\n        offer: {percent: 20, valid_days: 30}"
)


def _played(ws: Workspace, cli: CliRunner) -> dict[str, str]:
    """Ann and Bob enrolled in spring, whose first step sent each a coupon code."""
    add(ws, OFFER_FIRST)
    with ws.engine.begin() as connection:
        for email in ("ann@example.com", "bob@example.com", "cy@example.com"):
            scored(connection, email=email)
    enrol(ws, "spring", now=START)
    tick(ws, now=START)
    sent = cli.invoke(
        app, ["dispatch", "-w", str(ws.path), "--now", START.isoformat(), "--dry-run"]
    )
    assert sent.exit_code == 0, sent.output
    with ws.engine.connect() as connection:
        rows = connection.execute(
            select(contacts.c.email, offers.c.code).join(
                offers, offers.c.contact_id == contacts.c.id
            )
        ).all()
    return {email: code for email, code in rows}


def _import(cli: CliRunner, ws: Workspace, text: str, name: str) -> dict[str, object]:
    path = ws.path / name
    path.write_text(text, encoding="utf-8")
    result = cli.invoke(
        app,
        ["import", "events", str(path), "--json", "--now", "2025-04-01", "-w", str(ws.path)],
    )
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.output)
    return report


def _state(ws: Workspace) -> dict[str, tuple[object, ...]]:
    with ws.engine.connect() as connection:
        rows = connection.execute(
            select(contacts.c.email, offers.c.redeemed_at, enrollments.c.status,
                   enrollments.c.outcome)
            .join(offers, offers.c.contact_id == contacts.c.id)
            .join(enrollments, enrollments.c.id == offers.c.enrollment_id)
        ).all()  # fmt: skip
    return {email: (redeemed, status, outcome) for email, redeemed, status, outcome in rows}


def test_a_plain_purchase_row_with_the_issued_code_redeems_it(
    sqlite_workspace: Workspace, cli: CliRunner
) -> None:
    ws = sqlite_workspace
    codes = _played(ws, cli)
    assert len(codes) == 3
    ann, bob = codes["ann@example.com"], codes["bob@example.com"]
    # Ann pays with her code (in lower case, as shops accept it) through the block path;
    # Cy buys without a code; a visit with a code column redeems nothing.
    _import(
        cli, ws,
        "email,type,occurred_at,amount,Discount Code\n"
        f"ann@example.com,purchase,2025-03-05T14:00:00Z,42.50,{ann.lower()}\n"
        "cy@example.com,purchase,2025-03-06T10:00:00Z,12.00,\n"
        f"bob@example.com,visit,2025-03-06T11:00:00Z,,{bob}\n",
        "plain.csv",
    )  # fmt: skip
    state = _state(ws)
    assert state["ann@example.com"] == (
        datetime(2025, 3, 5, 14, 0), "reactivated", f"redeemed {ann}"
    )  # fmt: skip
    assert state["bob@example.com"][:2] == (None, "active")
    assert state["cy@example.com"][:2] == (None, "active")
    with ws.engine.connect() as connection:
        kept = connection.execute(
            select(events.c.type, events.c.amount, events.c.discount_code)
            .where(events.c.type != "sent")
            .order_by(events.c.occurred_at)
        ).all()
    assert [tuple(row) for row in kept] == [
        ("purchase", 42.5, ann.lower()), ("purchase", 12.0, None), ("visit", None, None),
    ]  # fmt: skip

    # Bob's purchase comes in a file of French dates (the row path) under ``code``.
    french = f"email;type;date;montant;code\nbob@example.com;purchase;07/03/2025 09:30;30;{bob}\n"
    _import(cli, ws, french, "achats.csv")
    assert _state(ws)["bob@example.com"] == (
        datetime(2025, 3, 7, 9, 30), "reactivated", f"redeemed {bob}"
    )  # fmt: skip

    shown = cli.invoke(
        app, ["journey", "show", "spring", "--json", "--now", "2025-04-01", "-w", str(ws.path)]
    )
    assert shown.exit_code == 0, shown.output
    result = json.loads(shown.output)
    first = result["steps"][0]
    assert (result["redeemed"], first["redeemed"]) == (2, 2)
    # Every purchase within the week after the message is its conversion, code or not.
    assert (first["conversions"], first["revenue"]) == (3, 84.5)
    # A second import of the same file redeems nothing more and keeps the first date.
    again = f"email,type,occurred_at,amount,code\nann@example.com,purchase,2025-03-08,9,{ann}\n"
    _import(cli, ws, again, "again.csv")
    assert _state(ws)["ann@example.com"][0] == datetime(2025, 3, 5, 14, 0)
