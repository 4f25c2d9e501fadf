"""The flight log settles what a dead dispatcher left in `sending`: what never left goes
back to the queue, what the server answered keeps its answer, and only what was on the
wire is `unknown`; a log of another boot is not trusted."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from tests.channels.smtp_server import RecordingHandler
from tests.journeys.conftest import SIMPLE, START, add, outbox_rows, scored
from winback.journeys.dispatcher import dispatch
from winback.journeys.engine import tick
from winback.journeys.enrolment import enrol
from winback.journeys.flight import FLIGHT_LOG, boot_id
from winback.store.schema import outbox
from winback.workspace import Workspace


def left_sending(ws: Workspace, boot: str | None, records: list[dict[str, object]]) -> None:
    """Three messages claimed by a dispatcher that died, and the log it left."""
    add(ws, SIMPLE)
    with ws.engine.begin() as c:
        for name in ("answered", "on-the-wire", "never-left"):
            scored(c, email=f"{name}@example.com")
    enrol(ws, "spring", now=START)
    tick(ws, now=START)
    with ws.engine.begin() as c:
        c.execute(
            update(outbox).values(
                status="sending",
                attempts=1,
                subject="Vous nous manquez",
                body_text="Bonjour",
                message_id=outbox.c.idempotency_key.concat("@shop.example"),
            )
        )
    lines = [{"boot": boot}, *records]
    (ws.path / FLIGHT_LOG).write_text("".join(json.dumps(r) + "\n" for r in lines), "utf-8")


LOG: list[dict[str, object]] = [
    {"id": 1},
    {"id": 2},
    {"id": 1, "r": "sent", "provider": "250 queued as A1", "parts": 1},
]


@pytest.mark.skipif(boot_id() is None, reason="no kernel boot id on this system")
def test_the_log_settles_each_message_of_the_dead_batch(
    ws: Workspace, smtp: RecordingHandler
) -> None:
    left_sending(ws, boot_id(), LOG)
    result = dispatch(ws, now=START)
    assert (result.recovered, result.recovered_unknown, result.sent) == (2, 1, 1)
    rows = outbox_rows(ws)
    assert [(row["status"], row["attempts"]) for row in rows] == [
        ("sent", 1),  # the server's answer, recorded: not sent again
        ("unknown", 1),  # on the wire when it died
        ("sent", 1),  # never handed over: queued again, sent now, once
    ]
    assert rows[0]["provider_id"] == "250 queued as A1"
    assert [r.rcpt_tos for r in smtp.received] == [["never-left@example.com"]]


def test_a_log_of_another_boot_is_not_trusted(ws: Workspace, smtp: RecordingHandler) -> None:
    left_sending(ws, "not-this-boot", LOG)
    result = dispatch(ws, now=START)
    assert (result.recovered, result.recovered_unknown, result.sent) == (0, 3, 0)
    assert [row["status"] for row in outbox_rows(ws)] == ["unknown"] * 3
    assert smtp.received == []
