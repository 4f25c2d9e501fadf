"""A whole four-month journey, played day by day with ``winback run --now`` over a few
hundred contacts. Each contact has a persona whose reactions are injected as events when
its messages arrive at the SMTP server; at the end, every contact's path (the steps it
received, in order) and outcome must be the expected ones."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from itertools import cycle

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from tests.builders import add_event
from tests.channels.smtp_server import RecordingHandler
from tests.journeys.conftest import SIMPLE, START, journey_file, scored
from winback.cli import app
from winback.journeys.enrolment import in_holdout
from winback.store.schema import contacts, enrollments, suppressions
from winback.workspace import Workspace

DAY = timedelta(days=1)
JOURNEY = SIMPLE.replace("holdout: 0\n", "holdout: 0.15\n")
FULL = ["miss-you", "offer", "bigger-offer", "goodbye"]
# persona -> (path when treated, outcome when treated, outcome in the holdout)
EXPECTED = {
    "silent": (FULL, "sunset", "completed"),
    "machine-opener": (FULL, "sunset", "completed"),
    "scanned": (FULL, "sunset", "completed"),
    "reader": (["miss-you", "bigger-offer", "goodbye"], "sunset", "completed"),
    "clicker": (["miss-you"], "reactivated", "completed"),
    "offer-buyer": (["miss-you", "offer"], "reactivated", "completed"),
    "unsubscriber": (["miss-you"], "exited", "completed"),
    "spontaneous": (["miss-you", "offer"], "reactivated", "reactivated"),
}


def react(
    ws: Workspace, contact: int, persona: str, step: str, message_id: str, now: datetime
) -> None:
    """What a persona does when a message arrives (times are after its arrival)."""
    with ws.engine.begin() as c:
        if persona == "machine-opener":
            add_event(
                c,
                contact,
                "open",
                now + timedelta(seconds=1),
                machine_open=True,
                message_id=message_id,
            )
        elif persona == "scanned":
            add_event(
                c, contact, "click", now + timedelta(seconds=3), bot=True, message_id=message_id
            )
        elif persona == "reader" and step == "miss-you":
            add_event(c, contact, "open", now + 2 * DAY, machine_open=False, message_id=message_id)
        elif persona == "clicker":
            add_event(c, contact, "click", now + 2 * DAY, message_id=message_id)
        elif persona == "offer-buyer" and step == "offer":
            add_event(c, contact, "purchase", now + 5 * DAY, amount=60.0)
        elif persona == "unsubscriber":
            # What the tracking server does on the unsubscribe link.
            add_event(c, contact, "unsubscribe", now + DAY)
            c.execute(
                update(contacts).where(contacts.c.id == contact).values(email_status="unsubscribed")
            )


@pytest.mark.slow
def test_four_months_of_daily_runs(ws: Workspace, smtp: RecordingHandler, cli: CliRunner) -> None:
    personas: dict[int, str] = {}
    with ws.engine.begin() as c:
        for number, persona in zip(range(320), cycle(EXPECTED), strict=False):
            contact = scored(c, email=f"c{number}@example.com", first_name=f"C{number}")
            personas[contact] = persona
            if persona == "spontaneous":  # buys on day 45 whatever we send
                add_event(c, contact, "purchase", START + 45 * DAY, amount=30.0)
    workspace = ["-w", str(ws.path)]
    assert (
        cli.invoke(app, ["journey", "add", str(journey_file(ws, JOURNEY)), *workspace]).exit_code
        == 0
    )
    enrolled = cli.invoke(
        app, ["journey", "enroll", "spring", *workspace, "--now", START.isoformat()]
    )
    assert enrolled.exit_code == 0 and "Enrolled 320 of 320" in enrolled.output

    by_address = {f"c{n}@example.com": contact for n, contact in enumerate(sorted(personas))}
    paths: dict[int, list[str]] = defaultdict(list)
    seen = 0
    for day in range(125):
        now = START + day * DAY
        result = cli.invoke(app, ["run", *workspace, "--now", now.isoformat()])
        assert result.exit_code == 0, result.output
        for received in smtp.received[seen:]:
            message = received.message
            contact = by_address[received.rcpt_tos[0]]
            step = message["X-Winback-Step"]
            paths[contact].append(step)
            react(ws, contact, personas[contact], step, message["Message-ID"], now)
        seen = len(smtp.received)

    with ws.engine.connect() as c:
        outcomes = dict(c.execute(select(enrollments.c.contact_id, enrollments.c.status)).all())
        suppressed = c.execute(select(suppressions.c.reason)).scalars().all()
    holdout = {contact for contact in personas if in_holdout(contact, "spring", 0.15)}
    assert 20 <= len(holdout) <= 80
    for contact, persona in personas.items():
        path, treated, held = EXPECTED[persona]
        if contact in holdout:
            assert (paths.get(contact, []), outcomes[contact]) == ([], held), persona
        else:
            assert (paths[contact], outcomes[contact]) == (path, treated), persona
    sunset = sum(1 for status in outcomes.values() if status == "sunset")
    assert suppressed.count("sunset") == sunset > 0

    # The funnel so far, as a user reads it.
    shown = cli.invoke(app, ["journey", "show", "spring", *workspace])
    assert shown.exit_code == 0 and "lift against the holdout" in shown.output
    assert "points" in shown.output
    # Nobody is enrolled twice: the sunset are let go, the others already went through.
    again = cli.invoke(
        app, ["journey", "enroll", "spring", *workspace, "--now", (START + 130 * DAY).isoformat()]
    )
    assert "Enrolled 0 of" in again.output
