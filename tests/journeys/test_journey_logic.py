"""Journey logic found with issue 15, against a real store (SQLite and PostgreSQL): a
branch tests only what the step's channel can show, a step waits for the previous
message to go out, and a passed-over step keeps its wait."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.journeys.conftest import SIMPLE, START, add, delivered, journey_file, outbox_rows, scored
from winback.clock import to_db
from winback.journeys.catalog import add_journey
from winback.journeys.definition import JourneyError
from winback.journeys.engine import tick
from winback.journeys.enrolment import enrol
from winback.store.schema import enrollments, outbox
from winback.workspace import Workspace

DAY = timedelta(days=1)

SMS_BRANCH = """
    name: texts
    holdout: 0
    steps:
      - id: hello
        channel: sms
        template: miss_you
        wait: 7d
        on: {not_opened: goodbye}
      - id: offer
        channel: sms
        template: offer
        offer: {percent: 20}
        wait: 7d
      - id: goodbye
        channel: sms
        template: goodbye
        wait: 7d
"""

BEST_BRANCH = """
    name: either
    holdout: 0
    steps:
      - id: hello
        channel: best
        template: miss_you
        wait: 7d
        on: {not_opened: goodbye}
      - id: offer
        channel: best
        template: offer
        offer: {percent: 20}
        wait: 7d
      - id: goodbye
        channel: best
        template: goodbye
        wait: 7d
"""

EMAIL_THEN_SMS = """
    name: mixed
    holdout: 0
    steps:
      - id: miss-you
        template: miss_you
        wait: 30d
      - id: sms-offer
        channel: sms
        template: offer
        offer: {percent: 20}
        wait: 14d
"""


def test_journey_add_refuses_a_branch_an_sms_cannot_take(ws: Workspace) -> None:
    path = journey_file(ws, SMS_BRANCH)
    with pytest.raises(JourneyError) as error:
        add_journey(ws, path, now=START)
    assert str(error.value) == (
        f"{path}:9: steps[0].on.not_opened: an sms message has no 'not_opened' reaction "
        "(an SMS is never opened, an email never replied to); an sms step may branch on "
        "clicked, no_reaction, replied"
    )
    # A branch on what an SMS can show is fine.
    add_journey(ws, journey_file(ws, SMS_BRANCH.replace("not_opened", "no_reaction")), now=START)


def test_a_best_step_sent_by_sms_never_takes_the_not_opened_branch(workspace: Workspace) -> None:
    add(workspace, BEST_BRANCH)
    texter = {"last_sms_at": to_db(START - 9 * DAY), "last_email_at": to_db(START - 90 * DAY)}
    with workspace.engine.begin() as c:
        by_sms = scored(c, email="t@example.com", phone="+33612345678", scores=texter)
        by_email = scored(c, email="e@example.com")
    enrol(workspace, "either", now=START)
    assert tick(workspace, now=START).queued == 2
    delivered(workspace, START)
    assert tick(workspace, now=START + 7 * DAY).queued == 2
    second = {row["contact_id"]: row for row in outbox_rows(workspace) if row["step_id"] != "hello"}
    assert (second[by_sms]["step_id"], second[by_sms]["channel"]) == ("offer", "sms")
    assert (second[by_email]["step_id"], second[by_email]["channel"]) == ("goodbye", "email")


def test_the_next_step_waits_for_an_sms_held_by_the_quiet_hours(workspace: Workspace) -> None:
    add(workspace, SMS_BRANCH.replace("{not_opened: goodbye}", "{}").replace("7d", "1d"))
    with workspace.engine.begin() as c:
        scored(c, phone="+33612345678", timezone="Europe/Paris", country="FR")
    enrol(workspace, "texts", now=START)
    saturday_night = START + 5 * DAY + timedelta(hours=12)  # Sat 8 March, 22:00 in Paris
    monday_8am = START + 7 * DAY - timedelta(hours=2)
    assert tick(workspace, now=saturday_night).queued == 1
    # Sunday night: a day has passed, but the first SMS has not gone out yet.
    sunday_night = saturday_night + DAY
    held = tick(workspace, now=sunday_night)
    assert held.queued == 0
    assert [row["step_id"] for row in outbox_rows(workspace)] == ["hello"]
    assert held.waiting == 1
    with workspace.engine.connect() as c:
        due = c.execute(select(enrollments.c.next_due_at)).scalar_one()
    assert due == to_db(monday_8am + DAY)  # a whole wait after it may go out
    delivered(workspace, monday_8am)
    assert tick(workspace, now=monday_8am + DAY).queued == 1


def test_the_sunset_waits_for_the_last_message(workspace: Workspace) -> None:
    add(workspace, SIMPLE)
    with workspace.engine.begin() as c:
        scored(c, email="slow@example.com")
    enrol(workspace, "spring", now=START)
    moment = START
    for _ in range(4):  # the four steps, each delivered
        tick(workspace, now=moment)
        delivered(workspace, moment)
        moment += 30 * DAY
    # The goodbye (14 days) went out; then a retry is pending for some other reason.
    with workspace.engine.begin() as c:
        c.execute(
            outbox.update()
            .where(outbox.c.step_id == "goodbye")
            .values(status="queued", due_at=to_db(moment))
        )
    result = tick(workspace, now=moment)
    assert result.sunset == 0
    assert result.waiting == 1
    delivered(workspace, moment)
    assert tick(workspace, now=moment + 14 * DAY).sunset == 1


def test_a_contact_without_email_gets_the_first_sms_on_day_30(workspace: Workspace) -> None:
    add(workspace, EMAIL_THEN_SMS)
    with workspace.engine.begin() as c:
        scored(c, phone="+33612345678", timezone="Europe/Paris", country="FR")
    enrol(workspace, "mixed", now=START)
    first = tick(workspace, now=START)
    assert first.queued == 0
    assert first.passed_over == 1
    assert tick(workspace, now=START + 29 * DAY).queued == 0
    day_30 = tick(workspace, now=START + 30 * DAY)
    assert day_30.queued == 1
    [sms] = outbox_rows(workspace)
    assert (sms["step_id"], sms["channel"]) == ("sms-offer", "sms")
    assert sms["due_at"] == to_db(START + 30 * DAY)  # a Wednesday, 10:00 in Paris
