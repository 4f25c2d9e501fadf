"""Each row of a file acts as if it came alone, in file order, whatever the batch it is
written in: what the block-boundary property tests found, as a user would see it."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.ingest.conftest import NOW
from winback.ingest import import_contacts, import_events
from winback.store.schema import audit, contacts, suppressions
from winback.workspace import Workspace

# A hard bounce, then an older unsubscribe further down.
BOUNCE_THEN_UNSUBSCRIBE = (
    "email,type,timestamp\n"
    "ann@example.com,hard_bounce,2024-05-01 14:30\n"
    "ann@example.com,unsubscribe,2024-01-01 09:00\n"
)


def _statuses(workspace: Workspace) -> list[tuple[Any, ...]]:
    """The import's status changes and suppressions, in the order they were recorded."""
    with workspace.engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                select(contacts.c.email, audit.c.action, audit.c.reason)
                .join(contacts, contacts.c.id == audit.c.contact_id)
                .where(audit.c.action.in_(["status_change", "suppress"]))
                .order_by(audit.c.id)
            )
        ]


def _contact(workspace: Workspace, email: str) -> dict[str, Any]:
    with workspace.engine.connect() as connection:
        row = connection.execute(select(contacts).where(contacts.c.email == email)).mappings()
        return dict(row.one())


def test_refusals_of_one_contact_act_in_file_order(base: Workspace, tmp_path: Path) -> None:
    """A hard bounce, then an older unsubscribe further down: the status follows both in
    turn, the suppression keeps the first refusal's reason."""
    path = tmp_path / "events.csv"
    path.write_text(BOUNCE_THEN_UNSUBSCRIBE)
    import_events(base, path, now=NOW)
    assert _statuses(base) == [
        ("ann@example.com", "status_change", "email bounced"),
        ("ann@example.com", "status_change", "email unsubscribed"),
        ("ann@example.com", "suppress", "bounce_hard"),
    ]
    assert _contact(base, "ann@example.com")["email_status"] == "unsubscribed"


def test_a_file_of_refusals_imported_twice_records_nothing_new(
    base: Workspace, tmp_path: Path
) -> None:
    """The second import's events are all stored already: their refusals acted the
    first time, and acting again would flip the status back and forth."""
    path = tmp_path / "events.csv"
    path.write_text(BOUNCE_THEN_UNSUBSCRIBE)
    import_events(base, path, now=NOW)
    first = _statuses(base)
    again = import_events(base, path, now=NOW)
    assert (again.imported, again.merged) == (0, 2)
    assert _statuses(base) == first
    with base.engine.connect() as connection:
        assert connection.execute(select(suppressions.c.reason)).scalars().all() == ["bounce_hard"]


def test_a_phone_a_contact_lets_go_is_free_for_a_later_row(base: Workspace, tmp_path: Path) -> None:
    """ann changes her phone; bob, further down the same file, takes her old one: no
    warning, both stored (the old number stayed ann's for the rest of the batch)."""
    path = tmp_path / "contacts.csv"
    path.write_text("email,phone\nann@example.com,06 99 99 99 99\nbob@example.com,06 12 34 56 78\n")
    report = import_contacts(base, path, now=NOW)
    assert report.warnings == 0
    assert _contact(base, "ann@example.com")["phone"] == "+33699999999"
    assert _contact(base, "bob@example.com")["phone"] == "+33612345678"


def test_a_contact_the_file_creates_then_refuses_has_its_status_change_audited(
    base: Workspace, tmp_path: Path
) -> None:
    """Created subscribed, unsubscribed three lines further: the change is recorded as
    it would be had the two lines come in two files."""
    path = tmp_path / "contacts.csv"
    path.write_text(
        "email,email_status\n"
        "carol@example.com,subscribed\n"
        "ann@example.com,\n"
        "carol@example.com,unsubscribed\n"
    )
    import_contacts(base, path, now=NOW)
    assert _statuses(base) == [
        ("carol@example.com", "status_change", "email unsubscribed"),
        ("carol@example.com", "suppress", "unsubscribe"),
    ]


def test_the_warnings_file_follows_the_lines(base: Workspace, tmp_path: Path) -> None:
    """A phone that belongs to another contact is found when the batch is written, after
    the next line's bad country was found: the file still lists line 2, then line 3."""
    path = tmp_path / "contacts.csv"
    path.write_text(
        "email,phone,country\nbob@example.com,06 12 34 56 78,FR\ncarol@example.com,,Atlantis\n"
    )
    report = import_contacts(base, path, now=NOW)
    assert report.warnings_file is not None
    with open(report.warnings_file, encoding="utf-8", newline="") as stream:
        lines = [row[0] for row in csv.reader(stream)][1:]
    assert lines == ["2", "3"]
