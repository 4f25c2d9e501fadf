"""The at-most-once guarantee, for real: a dispatcher process sending to an SMTP server
on loopback (aiosmtpd) is killed with SIGKILL at ten random moments, then restarted.
The server must never receive a message twice, every message must end sent, failed or
unknown, and each kill may leave in doubt only the messages on the wire at that
instant: at most one per SMTP connection, not the claimed batch around them."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.channels.smtp_server import CountingController, RecordingHandler
from tests.journeys.conftest import SIMPLE, START, add, outbox_rows, scored
from winback.channels import ENV_SMTP_URL
from winback.channels.smtp import CONNECTIONS
from winback.journeys.engine import tick
from winback.journeys.enrolment import enrol
from winback.store.schema import outbox
from winback.workspace import ENV_DATABASE_URL, Workspace

CONTACTS = 800
KILLS = 10
# Claims much larger than the connections: a kill that left its whole claim in doubt
# (as the dispatcher did before its flight log) shows at once.
CLAIM = 60


class SlowHandler(RecordingHandler):
    """Takes a few milliseconds per message, as a real relay does, so kills land in
    the middle of SMTP exchanges as well as between them."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.01)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def ws(sqlite_workspace: Workspace) -> Iterator[Workspace]:
    config = sqlite_workspace.path / "winback.toml"
    text = config.read_text(encoding="utf-8")
    assert "dispatch_batch = 100" in text and "rate_per_second = 50" in text
    text = text.replace("dispatch_batch = 100", f"dispatch_batch = {CLAIM}")
    config.write_text(text.replace("rate_per_second = 50", "rate_per_second = 5000"), "utf-8")
    workspace = Workspace.open(sqlite_workspace.path)
    yield workspace
    workspace.close()


def count(workspace: Workspace, *statuses: str) -> int:
    with workspace.engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(outbox).where(outbox.c.status.in_(statuses))
            ).scalar_one()
        )


@pytest.mark.slow
def test_ten_kills_leave_no_duplicate_and_only_the_wire_in_doubt(ws: Workspace) -> None:
    add(ws, SIMPLE)
    with ws.engine.begin() as c:
        for n in range(CONTACTS):
            scored(c, email=f"person{n}@example.com", first_name=f"P{n}")
    handler = SlowHandler()
    refused = {f"person{n}@example.com" for n in range(0, CONTACTS, 80)}
    for address in refused:  # a few addresses the server refuses for good
        handler.rcpt_answers[address].append("550 5.1.1 unknown user")
    controller = CountingController(handler)
    controller.start()
    try:
        enrol(ws, "spring", now=START)
        assert tick(ws, now=START).queued == CONTACTS
        env = {**os.environ, ENV_SMTP_URL: f"smtp://127.0.0.1:{controller.port}"}
        env.pop(ENV_DATABASE_URL, None)
        command = [sys.executable, "-m", "winback", "dispatch", "-w", str(ws.path),
                   "--now", START.isoformat()]  # fmt: skip
        rng = random.Random(20250303)
        # Unknown rows after each kill's recovery, which the next run does first.
        unknown_after: list[int] = []
        kills = 0
        while kills < KILLS and count(ws, "queued", "sending"):
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            # Wait for this run to deliver something (Python takes a while to start):
            # by then it has settled the previous kill's rows.
            seen = len(handler.received)
            deadline = time.monotonic() + 60
            while len(handler.received) == seen and process.poll() is None:
                assert time.monotonic() < deadline, "the dispatcher sent nothing in 60 s"
                time.sleep(0.005)
            unknown_after.append(count(ws, "unknown"))
            time.sleep(rng.uniform(0, 0.25))
            working = count(ws, "queued", "sending") > 0
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += working and process.returncode == -signal.SIGKILL
        final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stderr
        unknown_after.append(count(ws, "unknown"))
    finally:
        controller.stop()

    assert kills == KILLS, "every kill should land while the dispatcher is working"
    in_doubt = [after - before for before, after in pairwise(unknown_after)]
    assert max(in_doubt) <= CONNECTIONS, in_doubt

    rows = outbox_rows(ws)
    statuses = Counter(row["status"] for row in rows)
    assert set(statuses) <= {"sent", "failed", "unknown"}, statuses
    for row in rows:
        expected = {"failed", "unknown"} if row["to_address"] in refused else {"sent", "unknown"}
        assert row["status"] in expected, row
    assert statuses["failed"] >= 1

    received = Counter(r.message["Message-ID"] for r in handler.received)
    assert received and max(received.values()) == 1, "a message was delivered twice"
    by_recipient = Counter(r.rcpt_tos[0] for r in handler.received)
    assert max(by_recipient.values()) == 1, "a contact got the same step twice"
    for row in rows:
        if row["status"] == "sent":
            assert received[row["message_id"]] == 1
        elif row["status"] == "failed":
            assert received[row["message_id"]] == 0
    assert set(received) <= {row["message_id"] for row in rows}
