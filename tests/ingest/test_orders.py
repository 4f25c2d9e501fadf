"""A Shopify "Export orders" file through ``winback import events``: one purchase per
order, with its total less refunds, currency, payment time and discount code; cancelled,
voided and wholly refunded orders are no purchases. The file is
``tests/corpus/orders/shopify_orders_export.csv`` (every person invented)."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from typer.testing import CliRunner

from tests.builders import add_contact, day
from winback.cli import app
from winback.store.schema import contacts, events
from winback.workspace import Workspace

CORPUS = Path(__file__).parent.parent / "corpus" / "orders"
EXPORT = CORPUS / "shopify_orders_export.csv"
NOW = "2026-04-01"


def _base(ws: Workspace) -> None:
    with ws.engine.begin() as connection:
        for email in (
            "ann@example.com",
            "bruno@example.org",
            "chloe@example.net",
            "david@example.com",
            "fabrice@example.org",
        ):
            add_contact(connection, email=email, created_at=day(2025, 1, 1))
        add_contact(connection, phone="+33612345678", created_at=day(2025, 1, 1))


def _import(cli: CliRunner, ws: Workspace, path: Path) -> dict[str, Any]:
    result = cli.invoke(
        app, ["import", "events", str(path), "--json", "--now", NOW, "-w", str(ws.path)]
    )
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.output)
    return answer


def _purchases(ws: Workspace) -> list[tuple[Any, ...]]:
    query = (
        select(
            contacts.c.email,
            contacts.c.phone,
            events.c.type,
            events.c.channel,
            events.c.occurred_at,
            events.c.amount,
            events.c.currency,
            events.c.discount_code,
        )
        .join(contacts, contacts.c.id == events.c.contact_id)
        .order_by(events.c.occurred_at)
    )
    with ws.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


def test_an_order_export_imports_one_purchase_per_order(workspace: Workspace) -> None:
    cli = CliRunner()
    _base(workspace)
    report = _import(cli, workspace, EXPORT)
    assert report["kind"] == "orders"
    # 12 rows: 8 orders, 4 more line items; every row counted with its order.
    assert report["read"] == 12
    assert report["imported"] == 7  # #1001 (2 rows), #1002 (3 rows), #1005, #1007
    assert report["by_reason"] == {
        "cancelled order": 2,  # #1003 and its second line item
        "voided order": 1,  # #1004
        "refunded order": 1,  # #1006, refunded in full
        "unknown contact": 1,  # #1008, gaspard@example.net is not in the base
    }
    assert report["read"] == report["imported"] + report["merged"] + report["rejected"]
    assert _purchases(workspace) == [
        # Paid at 10:22:05 +0100; 52.90 with the discount code WINBACK-7Q2K
        (
            "ann@example.com",
            None,
            "purchase",
            "web",
            datetime(2026, 3, 14, 9, 22, 5),
            52.90,
            "EUR",
            "WINBACK-7Q2K",
        ),
        # 120.00 less 45.00 refunded
        (
            "bruno@example.org",
            None,
            "purchase",
            "web",
            datetime(2026, 3, 14, 20, 47, 36),
            75.00,
            "EUR",
            None,
        ),
        # pending (bank transfer): not paid yet, dated by Created at
        (
            "ann@example.com",
            None,
            "purchase",
            "web",
            datetime(2026, 3, 17, 15, 5, 27),
            36.00,
            "EUR",
            None,
        ),
        # a shop counter sale with a phone and no email
        (
            None,
            "+33612345678",
            "purchase",
            "web",
            datetime(2026, 3, 19, 10, 40, 12),
            15.00,
            "EUR",
            None,
        ),
    ]
    with Path(report["quarantine"]).open(encoding="utf-8", newline="") as handle:
        quarantined = list(csv.DictReader(handle))
    assert [(row["line"], row["Name"]) for row in quarantined] == [
        ("2", "#1008"),
        ("4", "#1006"),
        ("6", "#1004"),
        ("7", "#1003"),
        ("8", "#1003"),
    ]
    assert quarantined[3]["reason"].startswith("cancelled order: #1003 was cancelled")


def test_importing_a_newer_export_adds_only_the_new_orders(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    cli = CliRunner()
    _base(sqlite_workspace)
    _import(cli, sqlite_workspace, EXPORT)
    # The newer export: #1005 was paid since (Paid at filled), the rest is as it was.
    newer = tmp_path / "orders_export_1.csv"
    text = EXPORT.read_text(encoding="utf-8").replace(
        "#1005,ann@example.com,pending,,", "#1005,ann@example.com,paid,2026-03-18 09:00:00 +0100,"
    )
    newer.write_text(text, encoding="utf-8")
    again = _import(cli, sqlite_workspace, newer)
    assert (again["imported"], again["merged"], again["rejected"]) == (0, 7, 5)
    assert len(_purchases(sqlite_workspace)) == 4


def test_a_line_item_without_its_order_row_is_quarantined(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    cli = CliRunner()
    _base(sqlite_workspace)
    lines = EXPORT.read_text(encoding="utf-8").splitlines(keepends=True)
    cut = tmp_path / "orders_export.csv"
    cut.write_text(lines[0] + "".join(lines[11:13]), encoding="utf-8")
    report = _import(cli, sqlite_workspace, cut)
    assert (report["imported"], report["rejected"]) == (2, 0)  # #1001's two rows
    orphan = lines[0] + lines[10]  # #1002's third line item, its order row cut off
    cut.write_text(orphan, encoding="utf-8")
    report = _import(cli, sqlite_workspace, cut)
    assert report["by_reason"] == {"line item without its order": 1}


def test_a_plain_events_file_is_not_taken_for_orders(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    cli = CliRunner()
    _base(sqlite_workspace)
    plain = tmp_path / "events.csv"
    plain.write_text(
        "email,type,date,amount,name,total\nann@example.com,purchase,2026-03-01,20,x,20\n",
        encoding="utf-8",
    )
    report = _import(cli, sqlite_workspace, plain)
    assert (report["kind"], report["imported"]) == ("events", 1)


def test_an_order_with_an_issued_code_redeems_it_and_ends_the_journey(
    workspace: Workspace, cli: CliRunner
) -> None:
    """Ann's order #1001 carries WINBACK-7Q2K, the code the spring journey's offer step
    gave her (written here in another case, as shops accept it): the code is redeemed at
    the order's payment, her journey ends as a conversion, and the step is credited."""
    from winback.clock import to_db
    from winback.journeys.catalog import add_journey
    from winback.reports.results import journey_results
    from winback.store.schema import enrollments, journeys, offers

    _base(workspace)
    journey_file = workspace.path / "spring.yaml"
    journey_file.write_text(
        "name: spring\nholdout: 0\nsteps:\n"
        "  - {id: offer, template: offer, offer: {percent: 20}, wait: 30d}\n",
        encoding="utf-8",
    )
    add_journey(workspace, journey_file, now=day(2026, 3, 1))
    with workspace.engine.begin() as connection:
        ann = connection.execute(
            select(contacts.c.id).where(contacts.c.email == "ann@example.com")
        ).scalar_one()
        journey_id = connection.execute(select(journeys.c.id)).scalar_one()
        enrollment = connection.execute(
            enrollments.insert().returning(enrollments.c.id),
            {"journey_id": journey_id, "contact_id": ann, "holdout": False,
             "status": "active", "step_id": "offer", "enrolled_at": to_db(day(2026, 3, 1))},
        ).scalar_one()  # fmt: skip
        connection.execute(
            offers.insert(),
            {"code": "winback-7q2k", "contact_id": ann, "enrollment_id": enrollment,
             "journey": "spring", "step_id": "offer", "percent": 20.0,
             "created_at": to_db(day(2026, 3, 2))},
        )  # fmt: skip
    _import(cli, workspace, EXPORT)
    with workspace.engine.connect() as connection:
        redeemed = connection.execute(select(offers.c.redeemed_at)).scalar_one()
        status, outcome = connection.execute(
            select(enrollments.c.status, enrollments.c.outcome)
        ).one()
    assert redeemed == datetime(2026, 3, 14, 9, 22, 5)  # its payment, in UTC
    assert (status, outcome) == ("reactivated", "redeemed winback-7q2k")
    result = journey_results(workspace, "spring", day(2026, 4, 1))
    assert result["redeemed"] == 1 and result["steps"][0]["redeemed"] == 1
    # A second import of the same export redeems nothing more.
    _import(cli, workspace, EXPORT)
    with workspace.engine.connect() as connection:
        assert connection.execute(select(offers.c.redeemed_at)).scalar_one() == redeemed
