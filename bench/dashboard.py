"""Benchmark of the dashboard and of ``winback report`` (issue 16).

On a scored base with a played journey (``winback demo`` of ``--contacts`` contacts and
about 20 events each, its score, the starter journey enrolled and ticked; built once
under bench/out/), time every dashboard page through the real app (httpx against the
ASGI app, logged in) and the report, and print each beside the target (a page under 1 s,
the report under 30 s) with the load average. Each page: the median of ``--runs``
requests after one warm-up. Then the refresh of the figures kept at score time
(:mod:`winback.reports.aggregates`): from nothing, as after the first score, and with
nothing new, as each later score pays it; both rolled back, so the base stays as built;
and the refresh of the journeys' kept results alone, which ``winback run``, ``tick`` and
``dispatch`` pay at their end (rolled back too).

``--folder`` takes a base built before (by this script or by hand) instead of the one
under bench/out/; migrate it first (``winback migrate -w PATH``).

    .venv/bin/python bench/dashboard.py                    # 100,000 contacts
    .venv/bin/python bench/dashboard.py --contacts 1000000
    .venv/bin/python bench/dashboard.py --contacts 1000000 --folder PATH
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import time
from pathlib import Path

import httpx
from sqlalchemy import delete, func, select
from typer.testing import CliRunner

from winback.cli import app
from winback.clock import utcnow
from winback.reports.aggregates import refresh_figures, refresh_journeys
from winback.reports.html import render_report
from winback.store.schema import (
    contacts,
    delivery_days,
    events,
    figure_marks,
    figure_snapshots,
    stage_days,
    stage_flow_days,
)
from winback.web import create_app
from winback.web.auth import add_user
from winback.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PASSWORD = "bench password 1"
PAGES = ("", "/journeys", "/deliverability", "/survey", "/contact?q=nobody@example.com")


def build(folder: Path, contacts: int) -> Workspace:
    """The demo base, scored, with the starter journey enrolled and its first step sent."""
    if (folder / "winback.toml").exists():
        return Workspace.open(folder)
    shutil.rmtree(folder, ignore_errors=True)
    runner = CliRunner()
    w = ["-w", str(folder)]
    for words in (
        ["demo", str(folder), "--contacts", str(contacts)],
        ["score", *w],
        ["journey", "new", *w],
        ["journey", "add", str(folder / "journeys" / "winback.yaml"), *w],
        ["journey", "enroll", "winback", *w],
        ["run", "--dry-run", *w],
    ):
        started = time.perf_counter()
        result = runner.invoke(app, words)
        if result.exit_code != 0:
            raise SystemExit(f"winback {' '.join(words)} failed:\n{result.output}")
        print(f"  built: winback {words[0]} {words[1] if len(words) > 1 else ''} "
              f"({time.perf_counter() - started:.0f} s)")  # fmt: skip
    workspace = Workspace.open(folder)
    add_user(workspace, "bench@example.com", PASSWORD, utcnow())
    return workspace


async def time_pages(workspace: Workspace, runs: int) -> dict[str, list[float]]:
    application = create_app(workspace)
    transport = httpx.ASGITransport(app=application)
    timings: dict[str, list[float]] = {}
    async with (
        application.api.router.lifespan_context(application.api),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8025") as client,
    ):
        form = await client.get("/dashboard/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        await client.post(
            "/dashboard/login",
            data={"email": "bench@example.com", "password": PASSWORD, "csrf": csrf.group(1)},
        )
        for path in PAGES:
            seconds = []
            for _ in range(runs + 1):
                started = time.perf_counter()
                response = await client.get(f"/dashboard{path}")
                seconds.append(time.perf_counter() - started)
                assert response.status_code == 200, (path, response.status_code)
            timings[path or "/"] = seconds[1:]
    return timings


def time_journeys_refresh(workspace: Workspace) -> float:
    """Seconds of keeping every journey's results, rolled back."""
    with workspace.engine.connect() as connection:
        transaction = connection.begin()
        started = time.perf_counter()
        refresh_journeys(connection, workspace.config, utcnow())
        seconds = time.perf_counter() - started
        transaction.rollback()
    return seconds


def time_refresh(workspace: Workspace) -> tuple[float, float]:
    """Seconds of a refresh from nothing, then of one with nothing new, rolled back."""
    now = utcnow()
    with workspace.engine.connect() as connection:
        transaction = connection.begin()
        for table in (stage_days, stage_flow_days, delivery_days, figure_marks, figure_snapshots):
            connection.execute(delete(table))
        seconds = []
        for _ in range(2):
            started = time.perf_counter()
            refresh_figures(connection, workspace.config, now)
            seconds.append(time.perf_counter() - started)
        transaction.rollback()
    return seconds[0], seconds[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--folder", type=Path, help="an existing base to time (not rebuilt)")
    args = parser.parse_args()
    folder = args.folder or OUT / f"dashboard-{args.contacts}"
    print(f"base: {folder}")
    workspace = build(folder, args.contacts)
    with workspace.engine.connect() as connection:
        counts = [
            connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (contacts, events)
        ]
    print(f"{counts[0]:,} contacts, {counts[1]:,} events")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    timings = asyncio.run(time_pages(workspace, args.runs))
    started = time.perf_counter()
    html = render_report(workspace, utcnow())
    report_seconds = time.perf_counter() - started
    print(f"load average before: {load}; after: "
          f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip
    print(f"{'page':<40} {'median s':>9} {'max s':>7}  target")
    for path, seconds in timings.items():
        print(f"/dashboard{path:<30} {statistics.median(seconds):>9.3f} {max(seconds):>7.3f}  < 1")
    print(f"{'winback report (' + str(len(html) // 1024) + ' KiB)':<40} "
          f"{report_seconds:>9.3f} {'':>7}  < 30")  # fmt: skip
    full, again = time_refresh(workspace)
    print(f"{'figures refreshed from nothing':<40} {full:>9.3f}")
    print(f"{'figures refreshed, nothing new':<40} {again:>9.3f}")
    print(f"{'journeys results kept (run, tick)':<40} {time_journeys_refresh(workspace):>9.3f}")
    workspace.close()


if __name__ == "__main__":
    main()
