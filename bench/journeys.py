"""Journeys benchmark (issue 4): enrol a million dormant contacts and run one tick, then
dispatch to an SMTP sink on loopback.

    .venv/bin/python bench/journeys.py                      # 1,000,000 contacts, 5,000 sends
    .venv/bin/python bench/journeys.py --contacts 100000 --messages 2000

1. A SQLite workspace gets ``--contacts`` dormant contacts (email, subscribed, a
   contact_scores row), a few hundred suppressed addresses and some events, written
   straight into the store. The base is built once per size under
   ``bench/out/journeys/base-SIZE`` and copied for each run.
2. ``enrol`` then ``tick`` at the same moment: every contact enrolled (10 % holdout), the
   first step queued for the rest. Target: both together <= 30 s.
3. ``dispatch`` of ``--messages`` of those queued messages (rendered from the starter
   templates, tracked links, Message-ID, List-Unsubscribe) to an aiosmtpd server on
   loopback, in its own process as a relay would be, that accepts and drops them.
   Target: >= 500 messages per second.

Prints a table of the figures against the targets, with the CPU time of this process
next to the wall time (and the sink's, in its own process): on a shared machine the
wall time says as much about the neighbours as about winback.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import socket
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, select, update

from winback.channels import ENV_SMTP_URL
from winback.clock import to_db
from winback.compliance.suppression import address_hash
from winback.journeys.catalog import STARTER_DIR, add_journey
from winback.journeys.dispatcher import dispatch
from winback.journeys.engine import tick
from winback.journeys.enrolment import enrol
from winback.store import migrate
from winback.store.contacts import dedup_key
from winback.store.schema import contact_scores, contacts, events, outbox, suppressions
from winback.workspace import Workspace

OUT = Path(__file__).parent / "out" / "journeys"
NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)
CHUNK = 50_000


class Sink:
    """An SMTP handler that accepts every message and keeps only a count."""

    def __init__(self, count: Any) -> None:
        self.count = count

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.count.get_lock():
            self.count.value += 1
        return "250 OK"


def serve_sink(port: int, count: Any, ready: Any, stop: Any) -> None:
    """The SMTP sink, run in a process of its own."""
    controller = Controller(Sink(count), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


def prepared(path: Path, size: int) -> Workspace:
    """A fresh copy at ``path`` of the cached base of ``size`` contacts, brought to the
    current schema (a base cached by an older version is migrated, not timed)."""
    base = path.parent / f"base-{size}"
    if not (base / "winback.db").exists():
        build(base, size).close()
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(base, path)
    workspace = Workspace.open(path, check=False)
    migrate(workspace.engine)
    return workspace


def build(path: Path, size: int) -> Workspace:
    """A workspace with ``size`` dormant, subscribed contacts."""
    shutil.rmtree(path, ignore_errors=True)
    workspace = Workspace.init(path, "ecommerce")
    config = path / "winback.toml"
    text = config.read_text(encoding="utf-8").replace(
        "rate_per_second = 50", "rate_per_second = 100000"
    )
    config.write_text(text, encoding="utf-8")
    workspace = Workspace.open(path)
    created = to_db(datetime(2023, 1, 1, tzinfo=UTC))
    with workspace.engine.begin() as connection:
        for start in range(0, size, CHUNK):
            numbers = range(start, min(size, start + CHUNK))
            connection.execute(
                insert(contacts),
                [
                    {
                        "id": n + 1,
                        "email": f"person{n}@example.com",
                        "first_name": f"P{n}",
                        "language": "fr" if n % 3 else "en",
                        "created_at": created,
                        "updated_at": created,
                        "email_status": "subscribed",
                    }
                    for n in numbers
                ],
            )
            connection.execute(
                insert(contact_scores),
                [
                    {
                        "contact_id": n + 1,
                        "scored_at": to_db(NOW),
                        "stage": "dormant",
                        "stage_since": date(2026, 6, 1),
                        "last_email_at": created,
                    }
                    for n in numbers
                ],
            )
        # Old purchases (before enrolment: they do not count as reactions).
        connection.execute(
            insert(events),
            [
                {
                    "contact_id": n + 1,
                    "type": "purchase",
                    "channel": "store",
                    "occurred_at": created,
                    "amount": 20.0,
                    "dedup_key": dedup_key("bench", n),
                }
                for n in range(0, size, 10)
            ],
        )
        connection.execute(
            insert(suppressions),
            [
                {
                    "channel": "email",
                    "address_hash": address_hash(workspace, "email", f"person{n}@example.com"),
                    "reason": "unsubscribe",
                    "created_at": created,
                }
                for n in range(0, size, max(1, size // 500))
            ],
        )
    add_journey(workspace, STARTER_DIR / "journeys" / "winback.yaml", now=NOW)
    return workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=5_000)
    args = parser.parse_args()
    console = Console()

    started = time.perf_counter()
    workspace = prepared(OUT / "ws", args.contacts)
    console.print(
        f"base of {args.contacts:,} contacts ready in {time.perf_counter() - started:.1f} s"
    )

    started, cpu = time.perf_counter(), time.process_time()
    enrolled = enrol(workspace, "winback", now=NOW)
    enrol_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ticked = tick(workspace, now=NOW)
    tick_seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu

    # Dispatch only --messages of the queued rows: the others wait for a later moment.
    with workspace.engine.begin() as connection:
        cutoff = connection.execute(
            select(outbox.c.id).order_by(outbox.c.id).offset(args.messages).limit(1)
        ).scalar()
        if cutoff is not None:
            connection.execute(
                update(outbox)
                .where(outbox.c.id >= cutoff)
                .values(due_at=to_db(NOW.replace(year=2027)))
            )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spawn = multiprocessing.get_context("spawn")
    count, ready, stop = spawn.Value("i", 0), spawn.Event(), spawn.Event()
    sink = spawn.Process(target=serve_sink, args=(port, count, ready, stop))
    sink.start()
    ready.wait()
    os.environ[ENV_SMTP_URL] = f"smtp://127.0.0.1:{port}"
    started, cpu = time.perf_counter(), time.process_time()
    sent = dispatch(workspace, now=NOW)
    dispatch_seconds = time.perf_counter() - started
    dispatch_cpu = time.process_time() - cpu
    stop.set()
    sink.join()
    # The sink parses every line of every message in Python: on a busy machine it can
    # be what sets the pace, so its own CPU time is printed too.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    sink_cpu = children.ru_utime + children.ru_stime
    rate = sent.sent / dispatch_seconds if dispatch_seconds else 0.0

    table = Table("measure", "value", "target", title=f"journeys, {args.contacts:,} contacts")
    table.add_row("enrolled (holdout)", f"{enrolled.enrolled:,} ({enrolled.holdout:,})", "")
    table.add_row("skipped", ", ".join(f"{k} {v:,}" for k, v in enrolled.skipped.items()), "")
    table.add_row("enrol", f"{enrol_seconds:.1f} s", "")
    table.add_row("tick (messages queued)", f"{tick_seconds:.1f} s ({ticked.queued:,})", "")
    table.add_row("enrol + tick", f"{enrol_seconds + tick_seconds:.1f} s", "<= 30 s")
    table.add_row("enrol + tick, CPU time", f"{cpu_seconds:.1f} s", "")
    table.add_row(
        "dispatched",
        f"{sent.sent:,} in {dispatch_seconds:.1f} s ({count.value:,} received)",
        "",
    )
    table.add_row("dispatch rate", f"{rate:,.0f} messages/s", ">= 500 /s")
    table.add_row(
        "dispatch CPU time per message", f"{dispatch_cpu / max(sent.sent, 1) * 1000:.2f} ms", ""
    )
    table.add_row(
        "SMTP sink CPU time per message",
        f"{sink_cpu / max(count.value, 1) * 1000:.2f} ms (own process)",
        "",
    )
    table.add_row("load average at the end", " ".join(f"{x:.2f}" for x in os.getloadavg()), "")
    console.print(table)


if __name__ == "__main__":
    main()
