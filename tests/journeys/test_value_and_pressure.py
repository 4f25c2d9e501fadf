"""The preference centre's pause and monthly rhythm, audiences chosen by expected value,
and a sunset that spares valuable customers (issues 6 and 7)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from tests.journeys.conftest import (
    SIMPLE,
    START,
    add,
    delivered,
    journey_file,
    outbox_rows,
    scored,
)
from winback.clock import to_db
from winback.journeys.catalog import parse_journey_file
from winback.journeys.definition import JourneyError
from winback.journeys.engine import tick
from winback.journeys.enrolment import enrol
from winback.journeys.simulator import simulate
from winback.store.schema import audit, contacts, enrollments, outbox, suppressions
from winback.workspace import Workspace

DAY = timedelta(days=1)

WEEKLY = """
    name: weekly
    holdout: 0
    steps:
      - {id: one, template: miss_you, wait: 7d}
      - {id: two, template: offer, offer: {percent: 20}, wait: 7d}
      - {id: three, template: goodbye, wait: 7d}
    after_last_step: sunset
"""

SPARING = """
    name: sparing
    holdout: 0
    steps:
      - {id: goodbye, template: goodbye, wait: 7d}
    after_last_step: sunset
    sunset:
      spare_above_value: 200
      spare_step: {id: last-chance, template: offer, offer: {percent: 50}, wait: 14d}
"""


def enrolled_ids(workspace: Workspace) -> list[int]:
    with workspace.engine.connect() as c:
        query = select(enrollments.c.contact_id).order_by(enrollments.c.contact_id)
        return list(c.execute(query).scalars())


def test_a_paused_contact_is_enrolled_only_when_the_pause_is_over(workspace: Workspace) -> None:
    add(workspace, SIMPLE)
    with workspace.engine.begin() as c:
        paused = scored(c, email="pause@example.com", paused_until=to_db(START + 10 * DAY))
        other = scored(c, email="other@example.com")
    result = enrol(workspace, "spring", now=START)
    assert result.enrolled == 1 and result.skipped["paused"] == 1
    assert enrolled_ids(workspace) == [other]
    assert enrol(workspace, "spring", now=START + 11 * DAY).enrolled == 1
    assert enrolled_ids(workspace) == [paused, other]


def test_a_monthly_contact_gets_one_message_in_30_days(workspace: Workspace) -> None:
    add(workspace, WEEKLY)
    with workspace.engine.begin() as c:
        monthly = scored(c, email="monthly@example.com", frequency="monthly")
        usual = scored(c, email="usual@example.com")
    enrol(workspace, "weekly", now=START)
    assert tick(workspace, now=START).queued == 2
    delivered(workspace, START)
    week = tick(workspace, now=START + 7 * DAY)
    assert (week.queued, week.postponed) == (1, 1)
    delivered(workspace, START + 7 * DAY)
    with workspace.engine.connect() as c:
        due = c.execute(
            select(enrollments.c.next_due_at).where(enrollments.c.contact_id == monthly)
        ).scalar_one()
    assert due == to_db(START + 30 * DAY)
    assert tick(workspace, now=START + 29 * DAY).queued == 1  # the usual contact's third step
    delivered(workspace, START + 29 * DAY)
    assert tick(workspace, now=START + 30 * DAY).queued == 1
    sent = [(row["contact_id"], row["step_id"], row["due_at"]) for row in outbox_rows(workspace)]
    assert [(step, due) for contact, step, due in sent if contact == monthly] == [
        ("one", to_db(START)),
        ("two", to_db(START + 30 * DAY)),
    ]
    assert [step for contact, step, _ in sent if contact == usual] == ["one", "two", "three"]


def test_a_message_still_to_go_counts_for_a_monthly_contact(workspace: Workspace) -> None:
    add(workspace, WEEKLY)
    with workspace.engine.begin() as c:
        monthly = scored(c, email="held@example.com", frequency="monthly")
        c.execute(  # queued elsewhere, held until the day after tomorrow
            insert(outbox),
            {"idempotency_key": "other:1", "contact_id": monthly, "channel": "email",
             "status": "queued", "created_at": to_db(START), "due_at": to_db(START + 2 * DAY)},
        )  # fmt: skip
    enrol(workspace, "weekly", now=START)
    result = tick(workspace, now=START)
    assert (result.queued, result.postponed) == (0, 1)
    with workspace.engine.connect() as c:
        due = c.execute(select(enrollments.c.next_due_at)).scalar_one()
    assert due == to_db(START + 32 * DAY)


def test_min_expected_value_leaves_out_the_low_and_the_unknown(workspace: Workspace) -> None:
    audience = "    audience: {stages: [dormant], min_expected_value: 50}\n"
    add(workspace, SIMPLE.replace("    holdout: 0\n", "    holdout: 0\n" + audience))
    with workspace.engine.begin() as c:
        scored(c, email="low@example.com", scores={"expected_value_12m": 10.0})
        worth = scored(c, email="worth@example.com", scores={"expected_value_12m": 120.0})
        just = scored(c, email="just@example.com", scores={"expected_value_12m": 50.0})
        scored(c, email="unknown@example.com")  # no model fitted for this one
    assert enrol(workspace, "spring", now=START).enrolled == 2
    assert enrolled_ids(workspace) == [worth, just]


@pytest.mark.parametrize("order", ["order_by: expected_value, ", ""])
def test_a_limit_takes_the_most_valuable_first(workspace: Workspace, order: str) -> None:
    audience = f"    audience: {{stages: [dormant], {order}limit: 2}}\n"
    add(workspace, SIMPLE.replace("    holdout: 0\n", "    holdout: 0\n" + audience))
    with workspace.engine.begin() as c:
        values = [10.0, None, 300.0, 200.0]
        ids = [
            scored(c, email=f"c{n}@example.com", scores={"expected_value_12m": value})
            for n, value in enumerate(values)
        ]
        scored(c, email="gone@example.com", email_status="unsubscribed")
    simulated = simulate(workspace, "spring", 30, now=START)  # the audience enrol will take
    assert simulated.audience == 5 and simulated.skipped["over the limit"] == 2
    result = enrol(workspace, "spring", now=START)
    assert result.enrolled == 2
    assert dict(result.skipped) == {"no consent": 1, "over the limit": 2}
    assert enrolled_ids(workspace) == ([ids[2], ids[3]] if order else ids[:2])


def test_the_sunset_spares_customers_above_the_value(workspace: Workspace) -> None:
    add(workspace, SPARING)
    with workspace.engine.begin() as c:
        rich = scored(c, email="rich@example.com", scores={"expected_value_12m": 500.0})
        poor = scored(c, email="poor@example.com", scores={"expected_value_12m": 50.0})
        unknown = scored(c, email="unknown@example.com")
    enrol(workspace, "sparing", now=START)
    assert tick(workspace, now=START).queued == 3
    delivered(workspace, START)
    end = tick(workspace, now=START + 7 * DAY)
    delivered(workspace, START + 7 * DAY)
    assert (end.queued, end.sunset) == (1, 2)
    [spare] = outbox_rows(workspace, step_id="last-chance")
    assert spare["contact_id"] == rich
    with workspace.engine.connect() as c:
        spared = c.execute(
            select(audit.c.contact_id, audit.c.reason).where(audit.c.action == "spare")
        ).all()
        lost = set(
            c.execute(select(contacts.c.id).where(contacts.c.lost_by_journey_at.is_not(None)))
            .scalars()
            .all()
        )
    assert [tuple(row) for row in spared] == [(rich, "expected value 500.00 above 200")]
    assert lost == {poor, unknown}
    assert tick(workspace, now=START + 20 * DAY).sunset == 0  # the spare step's wait is 14 days
    assert tick(workspace, now=START + 21 * DAY).sunset == 1
    with workspace.engine.connect() as c:
        assert len(c.execute(select(suppressions.c.id)).all()) == 3
        statuses = dict(c.execute(select(enrollments.c.contact_id, enrollments.c.status)).all())
    assert statuses == {rich: "sunset", poor: "sunset", unknown: "sunset"}


def test_a_flag_journey_spares_too_and_the_holdout_only_waits(workspace: Workspace) -> None:
    add(workspace, SPARING.replace("sunset\n", "flag\n", 1).replace("holdout: 0", "holdout: 0.5"))
    with workspace.engine.begin() as c:
        for n in range(20):
            scored(c, email=f"r{n}@example.com", scores={"expected_value_12m": 900.0})
    enrolled = enrol(workspace, "sparing", now=START)
    assert 0 < enrolled.holdout < 20
    tick(workspace, now=START)
    delivered(workspace, START)
    tick(workspace, now=START + 7 * DAY)
    delivered(workspace, START + 7 * DAY)
    spares = outbox_rows(workspace, step_id="last-chance")
    assert len(spares) == 20 - enrolled.holdout
    tick(workspace, now=START + 21 * DAY)
    with workspace.engine.connect() as c:
        outcomes = c.execute(select(enrollments.c.outcome, enrollments.c.status)).all()
        assert c.execute(select(suppressions.c.id)).first() is None
    assert sorted(set(map(tuple, outcomes))) == [("flag", "completed"), ("holdout", "completed")]


def test_the_spare_step_is_checked_like_the_others(ws: Workspace) -> None:
    def error_of(text: str) -> str:
        with pytest.raises(JourneyError) as caught:
            parse_journey_file(ws, journey_file(ws, text))
        return str(caught.value)

    clash = error_of(SPARING.replace("id: last-chance", "id: goodbye"))
    assert "sunset.spare_step.id: step id 'goodbye' is used by step 1 already" in clash
    assert "after_last_step: sunset or flag" in error_of(
        SPARING.replace("sunset\n", "nothing\n", 1)
    )
    missing = error_of(SPARING.replace("template: offer", "template: farewell"))
    assert f"{ws.path / 'journey.yaml'}:9: sunset.spare_step.template: unknown" in missing
    branches = error_of(SPARING.replace("wait: 14d}", "wait: 14d, on: {clicked: goodbye}}"))
    assert "cannot branch" in branches
    journey, _ = parse_journey_file(ws, journey_file(ws, SPARING))
    assert journey.step("last-chance").offer is not None
    assert journey.audience.min_expected_value is None
