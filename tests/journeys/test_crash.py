"""The at-most-once guarantee, for real: a dispatcher process sending to an SMTP server
on loopback is killed with SIGKILL at random moments, again and again, then restarted.
The server must never receive a message twice, and every message must end sent, failed
or unknown."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.channels.smtp_server import CountingController, RecordingHandler
from tests.journeys.conftest import SIMPLE, START, add, outbox_rows, scored
from winback.channels import ENV_SMTP_URL
from winback.journeys.engine import enrol, tick
from winback.store.schema import outbox
from winback.workspace import ENV_DATABASE_URL, Workspace


class SlowHandler(RecordingHandler):
    """Takes a few milliseconds per message, as a real relay does, so kills land in
    the middle of SMTP exchanges as well as between them."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.01)
        return await super().handle_DATA(server, session, envelope)


def queued(workspace: Workspace) -> int:
    with workspace.engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.status.in_(["queued", "sending"]))
            ).scalar_one()
        )


@pytest.mark.slow
def test_killing_the_dispatcher_never_sends_twice(ws: Workspace) -> None:
    # Small claims, so that kills leave a few messages in doubt and most of them out.
    config = ws.path / "winback.toml"
    text = config.read_text(encoding="utf-8")
    assert "dispatch_batch = 100" in text
    config.write_text(text.replace("dispatch_batch = 100", "dispatch_batch = 5"), encoding="utf-8")
    add(ws, SIMPLE)
    with ws.engine.begin() as c:
        for n in range(250):
            scored(c, email=f"person{n}@example.com", first_name=f"P{n}")
    handler = SlowHandler()
    refused = {f"person{n}@example.com" for n in range(0, 250, 50)}
    for address in refused:  # a few addresses the server refuses for good
        handler.rcpt_answers[address].append("550 5.1.1 unknown user")
    controller = CountingController(handler)
    controller.start()
    try:
        enrol(ws, "spring", START)
        assert tick(ws, START).queued == 250
        env = {**os.environ, ENV_SMTP_URL: f"smtp://127.0.0.1:{controller.port}"}
        env.pop(ENV_DATABASE_URL, None)
        command = [sys.executable, "-m", "winback", "dispatch", "-w", str(ws.path),
                   "--now", START.isoformat()]  # fmt: skip
        rng = random.Random(20250303)
        kills_mid_work = 0
        for _ in range(15):
            if queued(ws) == 0:
                break
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            # Wait for this run to deliver something (Python takes a while to start),
            # then let it go on for a random moment and kill it.
            seen = len(handler.received)
            deadline = time.monotonic() + 30
            while len(handler.received) == seen and process.poll() is None:
                assert time.monotonic() < deadline, "the dispatcher sent nothing in 30 s"
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.15))
            before = queued(ws)
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills_mid_work += before > 0 and process.returncode == -signal.SIGKILL
        final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stderr
    finally:
        controller.stop()

    assert kills_mid_work >= 5, "the kills should land while the dispatcher is working"
    rows = outbox_rows(ws)
    statuses = Counter(row["status"] for row in rows)
    assert statuses["unknown"] >= 1, "some kill should land during an SMTP exchange"
    assert set(statuses) <= {"sent", "failed", "unknown"}, statuses
    # A refused address fails, or died as unknown when a kill landed during its exchange
    # (a whole batch can); no other message fails.
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
    known = {row["message_id"] for row in rows}
    assert set(received) <= known
