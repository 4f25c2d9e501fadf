"""Benchmark of the dashboard and of ``winback report`` (issue 16).

On a scored base with a played journey (``winback demo`` of ``--contacts`` contacts, its
score, the starter journey enrolled and ticked; built once under bench/out/), time every
dashboard page through the real app (httpx against the ASGI app, logged in) and the
report, and print each beside the target (a page under 1 s, the report under 30 s) with
the load average. Each page: the median of ``--runs`` requests after one warm-up.

    .venv/bin/python bench/dashboard.py                    # 100,000 contacts
    .venv/bin/python bench/dashboard.py --contacts 1000000
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
from typer.testing import CliRunner

from winback.cli import app
from winback.clock import utcnow
from winback.reports.html import render_report
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    folder = OUT / f"dashboard-{args.contacts}"
    print(f"base: {folder}")
    workspace = build(folder, args.contacts)
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
    workspace.close()


if __name__ == "__main__":
    main()
