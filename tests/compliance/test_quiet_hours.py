"""Quiet hours at the tick: commercial SMS only Monday to Saturday 8:00-20:00 in the
contact's zone, never on a public holiday of their country; email only when enabled."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.journeys.conftest import add, scored
from winback.clock import from_db
from winback.journeys.engine import tick
from winback.journeys.enrolment import enrol
from winback.store.schema import outbox
from winback.workspace import Workspace

PARIS = ZoneInfo("Europe/Paris")
ONE_STEP = """
    name: nudge
    holdout: 0
    steps:
      - id: hello
        channel: {channel}
        template: miss_you
        wait: 7d
    after_last_step: flag
"""


def _due_at(workspace: Workspace, channel: str, at: datetime, **contact: Any) -> datetime:
    add(workspace, ONE_STEP.format(channel=channel))
    with workspace.engine.begin() as c:
        scored(c, email="lea@example.com", phone="+33612345678", **contact)
    enrol(workspace, "nudge", now=at)
    tick(workspace, now=at)
    with workspace.engine.connect() as c:
        due: datetime = c.execute(select(outbox.c.due_at)).scalar_one()
        return from_db(due).astimezone(PARIS)


def _set_email_quiet_hours(workspace: Workspace) -> Workspace:
    config = workspace.path / "winback.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("email = false", "email = true"), encoding="utf-8")
    return Workspace.open(workspace.path)


PARIS_LEA = {"timezone": "Europe/Paris", "country": "FR"}


@pytest.mark.parametrize(
    ("ticked", "held_to"),
    [
        (datetime(2025, 3, 8, 21, 30), datetime(2025, 3, 10, 8, 0)),  # Saturday night
        (datetime(2025, 3, 9, 11, 0), datetime(2025, 3, 10, 8, 0)),  # Sunday
        (datetime(2025, 4, 30, 20, 30), datetime(2025, 5, 2, 8, 0)),  # before 1 May
        (datetime(2025, 3, 11, 7, 15), datetime(2025, 3, 11, 8, 0)),  # early Tuesday
        (datetime(2025, 3, 11, 14, 0), datetime(2025, 3, 11, 14, 0)),  # allowed: now
    ],
)
def test_an_sms_due_outside_the_allowed_hours_waits_for_the_next_allowed_moment(
    workspace: Workspace, ticked: datetime, held_to: datetime
) -> None:
    due = _due_at(workspace, "sms", ticked.replace(tzinfo=PARIS), **PARIS_LEA)
    assert due == held_to.replace(tzinfo=PARIS)


def test_the_contacts_own_zone_decides(workspace: Workspace) -> None:
    # 21:30 in Paris is 15:30 in Montreal, a working Saturday afternoon there.
    ticked = datetime(2025, 3, 8, 21, 30, tzinfo=PARIS)
    due = _due_at(workspace, "sms", ticked, timezone="America/Montreal", country="CA")
    assert due == ticked


def test_email_ignores_quiet_hours_unless_enabled(workspace: Workspace) -> None:
    sunday = datetime(2025, 3, 9, 11, 0, tzinfo=PARIS)
    assert _due_at(workspace, "email", sunday, **PARIS_LEA) == sunday


def test_email_quiet_hours_when_enabled(workspace: Workspace) -> None:
    quiet = _set_email_quiet_hours(workspace)
    try:
        sunday = datetime(2025, 3, 9, 11, 0, tzinfo=PARIS)
        assert _due_at(quiet, "email", sunday, **PARIS_LEA) == datetime(
            2025, 3, 10, 8, 0, tzinfo=PARIS
        )
    finally:
        quiet.close()
