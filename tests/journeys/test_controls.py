"""A running journey under the marketer's hand: pause holds both the tick and dispatch,
resume picks up where each contact was, stop ends every enrollment and cancels what was
queued, unenroll takes one person out; each act is audited."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.journeys.conftest import SIMPLE, START, add, outbox_rows, scored
from winback.cli import app
from winback.journeys.controls import JourneyStateError, pause_journey, resume_journey
from winback.journeys.dispatcher import dispatch
from winback.journeys.engine import tick
from winback.journeys.enrolment import enrol
from winback.store.schema import audit, enrollments
from winback.workspace import Workspace

DAY = timedelta(days=1)


def control(cli: CliRunner, ws: Workspace, *words: str) -> dict[str, Any]:
    result = cli.invoke(app, ["journey", *words, "-w", str(ws.path), "--json"])
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.output)
    return answer


def test_a_paused_journey_neither_moves_nor_sends_until_resumed(
    ws: Workspace, cli: CliRunner
) -> None:
    add(ws, SIMPLE)
    with ws.engine.begin() as c:
        for n in range(3):
            scored(c, email=f"p{n}@example.com")
    enrol(ws, "spring", now=START)
    assert tick(ws, now=START).queued == 3
    assert control(cli, ws, "pause", "spring")["status"] == "paused"
    # Queued before the pause: held by dispatch.
    assert dispatch(ws, now=START, dry_run=True).sent == 0
    # Due during the pause: the tick leaves them.
    assert tick(ws, now=START + 31 * DAY).queued == 0
    with pytest.raises(JourneyStateError):
        enrol(ws, "spring", now=START + 31 * DAY)
    with pytest.raises(JourneyStateError):
        pause_journey(ws, "spring", now=START)
    resume_journey(ws, "spring", now=START + 40 * DAY)
    assert dispatch(ws, now=START + 40 * DAY, dry_run=True).sent == 3
    assert tick(ws, now=START + 40 * DAY).queued == 3  # the next step, at the first tick after
    with ws.engine.connect() as c:
        actions = c.execute(select(audit.c.action).where(audit.c.reason == "spring")).scalars()
        assert {"journey_paused", "journey_active"} <= set(actions)


def test_stop_ends_every_enrollment_and_cancels_the_queue(ws: Workspace, cli: CliRunner) -> None:
    add(ws, SIMPLE)
    with ws.engine.begin() as c:
        for n in range(4):
            scored(c, email=f"s{n}@example.com")
    enrol(ws, "spring", now=START)
    tick(ws, now=START)
    stopped = control(cli, ws, "stop", "spring")
    assert (stopped["status"], stopped["enrollments_ended"], stopped["messages_cancelled"]) == (
        "stopped", 4, 4,
    )  # fmt: skip
    assert {row["status"] for row in outbox_rows(ws)} == {"cancelled"}
    with ws.engine.connect() as c:
        ended = c.execute(select(enrollments.c.status, enrollments.c.outcome)).all()
    assert set(ended) == {("exited", "stopped")}
    refused = cli.invoke(app, ["journey", "resume", "spring", "-w", str(ws.path)])
    assert refused.exit_code == 2 and "stopped" in refused.output
    listed = json.loads(cli.invoke(app, ["journey", "list", "-w", str(ws.path), "--json"]).output)
    assert listed[0]["status"] == "stopped"


def test_unenroll_takes_one_contact_out(ws: Workspace, cli: CliRunner) -> None:
    add(ws, SIMPLE)
    with ws.engine.begin() as c:
        scored(c, email="stay@example.com")
        scored(c, email="leave@example.com")
    enrol(ws, "spring", now=START)
    tick(ws, now=START)
    out = control(cli, ws, "unenroll", "spring", "Leave@Example.com")
    assert (out["enrollments_ended"], out["messages_cancelled"]) == (1, 1)
    statuses = {row["to_address"]: row["status"] for row in outbox_rows(ws)}
    assert statuses == {"stay@example.com": "queued", "leave@example.com": "cancelled"}
    again = cli.invoke(
        app, ["journey", "unenroll", "spring", "leave@example.com", "-w", str(ws.path)]
    )
    assert again.exit_code != 0 and "not in journey" in again.output
