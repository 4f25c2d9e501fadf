"""Enrolment and the tick against a real store (SQLite and PostgreSQL): who is enrolled,
which step each contact gets, exits, sunset, the frequency cap and quiet hours."""

from __future__ import annotations

from datetime import timedelta

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select, update

from tests.builders import add_event
from tests.journeys.conftest import SIMPLE, START, add, delivered, outbox_rows, scored
from winback.clock import to_db
from winback.compliance.suppression import address_hash, suppress
from winback.journeys.engine import tick
from winback.journeys.enrolment import enrol, in_holdout
from winback.scoring.segments import parse_conditions, save_segment
from winback.store import metadata
from winback.store.schema import audit, contacts, enrollments, outbox, suppressions
from winback.workspace import Workspace

DAY = timedelta(days=1)


def test_enrolment_skips_who_must_not_be_enrolled(workspace: Workspace) -> None:
    add(workspace, SIMPLE)
    add(workspace, SIMPLE.replace("name: spring", "name: other"))
    with workspace.engine.begin() as c:
        ok = scored(c, email="ok@example.com")
        scored(c, email="active@example.com", stage="active")
        scored(c, email="gone@example.com", email_status="unsubscribed")
        scored(c, phone="+33612345678")  # the journey only uses email
        blocked = scored(c, email="blocked@example.com")
        scored(c, email="paying@example.com", scores={"dormant_subscriber": True})
        busy = scored(c, email="busy@example.com")
        suppress(c, workspace, channel="email", reason="manual", now=START, actor="user",
                 contact_id=blocked)  # fmt: skip
        c.execute(  # busy is in the other journey already
            insert(enrollments),
            {"journey_id": 2, "contact_id": busy, "holdout": False, "status": "active",
             "enrolled_at": to_db(START), "next_due_at": to_db(START + 30 * DAY)},
        )  # fmt: skip
    result = enrol(workspace, "spring", now=START)
    assert result.enrolled == 1
    assert dict(result.skipped) == {
        "no consent": 2,
        "suppressed": 1,
        "protected subscriber": 1,
        "already in a journey": 1,
    }
    with workspace.engine.connect() as c:
        enrolled = (
            c.execute(select(enrollments.c.contact_id).where(enrollments.c.journey_id == 1))
            .scalars()
            .all()
        )
        actions = c.execute(select(audit.c.action, audit.c.contact_id)).all()
    assert enrolled == [ok]
    assert ("enrol", ok) in actions
    # Enrolling again the next day adds nobody: ok is in a journey now.
    assert enrol(workspace, "spring", now=START + DAY).enrolled == 0


def test_the_holdout_is_a_stable_share_that_receives_nothing(workspace: Workspace) -> None:
    add(workspace, SIMPLE.replace("holdout: 0", "holdout: 0.25"))
    with workspace.engine.begin() as c:
        ids = [scored(c, email=f"p{n}@example.com") for n in range(400)]
    result = enrol(workspace, "spring", now=START)
    expected = [i for i in ids if in_holdout(i, "spring", 0.25)]
    assert result.holdout == len(expected)
    assert 70 <= result.holdout <= 130
    ticked = tick(workspace, now=START)
    assert ticked.queued == 400 - len(expected) and ticked.holdout_steps == len(expected)
    sent_to = {row["contact_id"] for row in outbox_rows(workspace)}
    assert sent_to.isdisjoint(expected)


def test_enrolment_draws_the_holdout_in_sql_as_python_draws_it(workspace: Workspace) -> None:
    # Enrolment draws the holdout inside its INSERT ... SELECT; the simulator draws it in
    # Python. The same contacts either way, ids past 2**31 and 2**40 included.
    add(workspace, SIMPLE.replace("holdout: 0", "holdout: 0.3"))
    wanted = [*range(1, 150), 2**31 - 2, 2**31 - 1, 2**31, 2**31 + 1, 2**40 + 7, 10**12 + 3]
    with workspace.engine.begin() as c:
        ids = [scored(c, id=n, email=f"p{n}@example.com") for n in wanted]
    enrol(workspace, "spring", now=START)
    with workspace.engine.connect() as c:
        drawn = dict(c.execute(select(enrollments.c.contact_id, enrollments.c.holdout)).all())
    assert drawn == {i: in_holdout(i, "spring", 0.3) for i in ids}
    assert 25 <= sum(drawn.values()) <= 70


def test_a_tick_that_moves_every_enrollment_leaves_the_schema_as_declared(
    workspace: Workspace,
) -> None:
    # On SQLite the bulk path sets the index of due enrollments aside and builds it again,
    # and changes pragmas of its connection for the transaction only.
    add(workspace, SIMPLE)
    with workspace.engine.begin() as c:
        for n in range(30):
            scored(c, email=f"p{n}@example.com")
    pragmas = "PRAGMA cache_size", "PRAGMA temp_store"
    sqlite = workspace.engine.dialect.name == "sqlite"
    with workspace.engine.connect() as c:
        before = [c.exec_driver_sql(pragma).scalar() for pragma in pragmas] if sqlite else []
    enrol(workspace, "spring", now=START)
    assert tick(workspace, now=START).queued == 30
    with workspace.engine.connect() as c:
        context = MigrationContext.configure(c, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
        after = [c.exec_driver_sql(pragma).scalar() for pragma in pragmas] if sqlite else []
    assert after == before
    assert tick(workspace, now=START + 29 * DAY).due == 0
    assert tick(workspace, now=START + 30 * DAY).due == 30


def test_a_tick_queues_each_step_once_and_branches_on_reactions(workspace: Workspace) -> None:
    add(workspace, SIMPLE)
    with workspace.engine.begin() as c:
        silent = scored(c, email="silent@example.com")
        reader = scored(c, email="reader@example.com")
        clicker = scored(c, email="clicker@example.com")
    enrol(workspace, "spring", now=START)
    assert tick(workspace, now=START).queued == 3
    assert tick(workspace, now=START).queued == 0  # the same moment again: nothing new
    delivered(workspace, START)
    first = {row["contact_id"]: row for row in outbox_rows(workspace)}
    assert {row["idempotency_key"] for row in first.values()} == {
        "1:miss-you",
        "2:miss-you",
        "3:miss-you",
    }
    with workspace.engine.begin() as c:
        add_event(c, reader, "open", START + 2 * DAY, machine_open=False)
        add_event(c, silent, "open", START + 2 * DAY, machine_open=True)  # a proxy prefetch
        add_event(c, clicker, "click", START + 3 * DAY)
    # The click exits at once, long before the step's wait is over.
    middle = tick(workspace, now=START + 4 * DAY)
    assert middle.reactivated == 1 and middle.queued == 0
    later = tick(workspace, now=START + 30 * DAY)
    assert later.queued == 2
    steps = {
        row["contact_id"]: row["step_id"]
        for row in outbox_rows(workspace)
        if row["step_id"] != "miss-you"
    }
    assert steps == {silent: "offer", reader: "bigger-offer"}
    with workspace.engine.connect() as c:
        outcome = c.execute(
            select(enrollments.c.status, enrollments.c.outcome).where(
                enrollments.c.contact_id == clicker
            )
        ).one()
    assert tuple(outcome) == ("reactivated", "click")


def test_sunset_marks_the_contact_lost_and_suppresses_the_address(workspace: Workspace) -> None:
    add(workspace, SIMPLE)
    with workspace.engine.begin() as c:
        scored(c, email="Quiet@Example.com")
    enrol(workspace, "spring", now=START)
    moment = START
    for _ in range(5):
        tick(workspace, now=moment)
        delivered(workspace, moment)
        moment += 30 * DAY
    with workspace.engine.connect() as c:
        status = c.execute(select(enrollments.c.status)).scalar_one()
        lost = c.execute(select(contacts.c.lost_by_journey_at)).scalar_one()
        suppressed = c.execute(select(suppressions.c.address_hash, suppressions.c.reason)).all()
    assert [row["step_id"] for row in outbox_rows(workspace)] == [
        "miss-you",
        "offer",
        "bigger-offer",
        "goodbye",
    ]
    assert status == "sunset" and lost is not None
    assert [tuple(row) for row in suppressed] == [
        (address_hash(workspace, "email", "quiet@example.com"), "sunset")
    ]


def test_an_unsubscribe_mid_journey_cancels_and_exits(workspace: Workspace) -> None:
    add(workspace, SIMPLE)
    with workspace.engine.begin() as c:
        scored(c, email="bye@example.com")
    enrol(workspace, "spring", now=START)
    tick(workspace, now=START)
    with workspace.engine.begin() as c:
        c.execute(contacts.update().values(email_status="unsubscribed"))
    result = tick(workspace, now=START + 30 * DAY)
    assert result.exited == 1 and result.queued == 0
    with workspace.engine.connect() as c:
        assert c.execute(select(enrollments.c.outcome)).scalar_one() == "no channel left"


def test_the_frequency_cap_postpones_a_step(workspace: Workspace) -> None:
    add(workspace, SIMPLE)
    with workspace.engine.begin() as c:
        contact = scored(c, email="busy@example.com")
        for days in (1, 2, 3):  # three messages from elsewhere this week (cap: 3)
            c.execute(
                insert(outbox),
                {"idempotency_key": f"other:{days}", "contact_id": contact, "channel": "email",
                 "status": "sent", "created_at": to_db(START - days * DAY),
                 "due_at": to_db(START - days * DAY)},
            )  # fmt: skip
    enrol(workspace, "spring", now=START)
    result = tick(workspace, now=START)
    assert result.postponed == 1 and result.queued == 0
    with workspace.engine.connect() as c:
        due = c.execute(select(enrollments.c.next_due_at)).scalar_one()
    assert due == to_db(START + 4 * DAY)  # when the oldest of the three leaves the week
    assert tick(workspace, now=START + 4 * DAY).queued == 1


def test_sms_waits_for_the_quiet_hours_to_end(workspace: Workspace) -> None:
    sms_first = SIMPLE.replace("template: miss_you", "template: miss_you\n        channel: sms")
    add(workspace, sms_first.replace("on: {opened_not_clicked: bigger-offer}", "on: {}"))
    with workspace.engine.begin() as c:
        scored(c, phone="+33612345678", timezone="Europe/Paris", country="FR")
    enrol(workspace, "spring", now=START)
    saturday_night = START + 5 * DAY + timedelta(hours=12)  # Sat 8 March, 22:00 in Paris
    tick(workspace, now=saturday_night)
    [row] = outbox_rows(workspace)
    assert row["channel"] == "sms" and row["to_address"] == "+33612345678"
    assert row["due_at"] == to_db(START + 7 * DAY - timedelta(hours=2))  # Mon 8:00 Paris


def test_a_suppression_after_enrolment_stops_the_next_step(workspace: Workspace) -> None:
    add(workspace, SIMPLE)
    with workspace.engine.begin() as c:
        contact = scored(c, email="later@example.com")
        scored(c, email="still@example.com")
    enrol(workspace, "spring", now=START)
    tick(workspace, now=START)
    delivered(workspace, START)
    with workspace.engine.begin() as c:
        suppress(c, workspace, channel="email", reason="complaint", now=START + DAY, actor="web",
                 address="LATER@example.com")  # fmt: skip
    result = tick(workspace, now=START + 30 * DAY)
    assert (result.exited, result.queued) == (1, 1)
    assert [row["contact_id"] for row in outbox_rows(workspace, step_id="offer")] != [contact]


def test_a_saved_segment_narrows_the_audience(workspace: Workspace) -> None:
    audience = "    holdout: 0\n    audience: {stages: [dormant], segment: france}\n"
    add(workspace, SIMPLE.replace("    holdout: 0\n", audience))
    with workspace.engine.begin() as c:
        french = scored(c, email="fr@example.com", country="FR")
        scored(c, email="be@example.com", country="BE")
        save_segment(c, "france", parse_conditions(["country=FR"]), START)
    result = enrol(workspace, "spring", now=START)
    assert result.enrolled == 1
    with workspace.engine.connect() as c:
        assert c.execute(select(enrollments.c.contact_id)).scalars().all() == [french]


def test_an_apple_proxy_open_is_no_reaction(workspace: Workspace) -> None:
    add(workspace, SIMPLE)
    with workspace.engine.begin() as c:
        ann = scored(c, email="ann@example.com")
    enrol(workspace, "spring", now=START)
    tick(workspace, now=START)
    proxy = (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    )
    with workspace.engine.begin() as c:
        c.execute(update(outbox).values(status="sent", sent_at=to_db(START)))
        add_event(c, ann, "open", START + timedelta(hours=5), user_agent=proxy)
    tick(workspace, now=START + timedelta(days=30))
    steps = [row["step_id"] for row in outbox_rows(workspace)]
    assert steps == ["miss-you", "offer"]  # not "bigger-offer": the open was Apple's proxy
