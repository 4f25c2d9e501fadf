"""Scenarios for the journey tests: dormant contacts, journey files, an SMTP server on
loopback that keeps what it receives."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, insert, select, update

from tests.builders import add_contact
from winback.clock import to_db
from winback.journeys.catalog import add_journey
from winback.journeys.definition import Journey
from winback.store.schema import contact_scores, outbox
from winback.workspace import Workspace

START = datetime.fromisoformat("2025-03-03T09:00:00+00:00")  # a Monday morning


def scored(
    connection: Connection,
    *,
    stage: str = "dormant",
    created_at: datetime = datetime.fromisoformat("2023-01-01T12:00:00+00:00"),
    scores: dict[str, Any] | None = None,
    **contact: Any,
) -> int:
    """A contact with a stage in contact_scores, as the scoring part leaves it."""
    contact_id = add_contact(connection, created_at=created_at, **contact)
    connection.execute(
        insert(contact_scores),
        {
            "contact_id": contact_id,
            "scored_at": to_db(START),
            "stage": stage,
            "stage_since": date(2025, 1, 1),
            **(scores or {}),
        },
    )
    return contact_id


def journey_file(workspace: Workspace, text: str, name: str = "journey.yaml") -> Any:
    path = workspace.path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def add(workspace: Workspace, text: str) -> Journey:
    journey = add_journey(workspace, journey_file(workspace, text), now=START).journey
    return journey


SIMPLE = """
    name: spring
    holdout: 0
    exit_on: [click, purchase, visit, login, reply]
    steps:
      - id: miss-you
        template: miss_you
        wait: 30d
        on: {opened_not_clicked: bigger-offer}
      - id: offer
        template: offer
        offer: {percent: 20, valid_days: 30}
        wait: 30d
      - id: bigger-offer
        template: offer
        offer: {percent: 40, valid_days: 30}
        wait: 30d
      - id: goodbye
        template: goodbye
        wait: 14d
    after_last_step: sunset
"""

# The simple journey whose first step already carries an offer.
OFFER_FIRST = SIMPLE.replace(
    "template: miss_you", "template: offer\n        offer: {percent: 20, valid_days: 30}"
)


def outbox_rows(workspace: Workspace, **where: Any) -> list[dict[str, Any]]:
    query = select(outbox).order_by(outbox.c.id)
    for column, value in where.items():
        query = query.where(outbox.c[column] == value)
    with workspace.engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def delivered(workspace: Workspace, now: datetime) -> int:
    """Mark the messages due at ``now`` sent, as a dispatcher run leaves them (for the
    tick's tests, which do not need the bytes); returns how many."""
    with workspace.engine.begin() as connection:
        return int(
            connection.execute(
                update(outbox)
                .where(outbox.c.status == "queued", outbox.c.due_at <= to_db(now))
                .values(status="sent", sent_at=to_db(now))
            ).rowcount
        )


@pytest.fixture
def ws(sqlite_workspace: Workspace) -> Iterator[Workspace]:
    """A SQLite workspace whose email channel may send fast (the tests send hundreds)."""
    config = sqlite_workspace.path / "winback.toml"
    text = config.read_text(encoding="utf-8").replace(
        "rate_per_second = 50", "rate_per_second = 5000"
    )
    text = text.replace('brand_name = "ws"', 'brand_name = "Boutique Éole"')
    config.write_text(text, encoding="utf-8")
    workspace = Workspace.open(sqlite_workspace.path)
    yield workspace
    workspace.close()
