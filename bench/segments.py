"""Benchmark of ``winback segment count`` (issue 20).

On a synthetic scored base (default 1,000,000 contacts in SQLite), time the count of the
issue's example expression::

    stage in (dormant, at_risk) and (p_alive < 0.3 or days_inactive > 365) and not tags
    contains "vip" and last_purchase_at < 180 days ago and country = "FR"

through :func:`winback.scoring.segments.count_segment` (parse, compile, one SQL count),
against its peer: the same filter in pandas over the exported frame (the columns the
expression reads, already in memory, so the pandas figure leaves out the read; the read
is timed on its own line). Both must give the same count. Each timing is the median of
``--runs`` runs after one warm-up (the file is then in the page cache, as it is on a
workspace in use); the first, cold run is printed too. Prints a table with the figures,
the target and the load average (the machine may be shared: read the figures with it).

    .venv/bin/python bench/segments.py                     # 1M contacts
    .venv/bin/python bench/segments.py --contacts 200000

The base holds what a count reads and nothing else: contacts (country, tags) and their
scores (stage, p_alive, last interaction and purchase), written straight into the
workspace's database once, under bench/out/. No events: the scores are drawn, not
computed, with a mix like the one ``bench/score.py`` scores (about a third dormant or at
risk, a third of the base Belgian, one in ten tagged vip).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
NOW = datetime(2025, 6, 1, tzinfo=UTC)
EXPRESSION = (
    "stage in (dormant, at_risk) and (p_alive < 0.3 or days_inactive > 365) and not tags "
    'contains "vip" and last_purchase_at < 180 days ago and country = "FR"'
)
TARGET_S = 1.0
STAGES = np.array(["prospect", "active", "at_risk", "dormant", "lost", "unsubscribed"])
STAGE_SHARES = np.array([0.2, 0.3, 0.12, 0.2, 0.12, 0.06])
TAGS = ['["vip"]', '["wine"]', '["vip", "wine"]', "[]", None]
TAG_SHARES = np.array([0.07, 0.15, 0.03, 0.25, 0.5])


def _stamps(days_back: np.ndarray) -> list[str | None]:
    """Naive-UTC timestamps as SQLAlchemy writes them in SQLite (NaN: none)."""
    base = np.datetime64(NOW.replace(tzinfo=None), "s")
    known = ~np.isnan(days_back)
    seconds = np.where(known, days_back * 86400, 0).astype(np.int64)
    text = np.char.replace((base - seconds.astype("timedelta64[s]")).astype("U19"), "T", " ")
    return [
        f"{t}.000000" if k else None for t, k in zip(text.tolist(), known.tolist(), strict=True)
    ]


def build(base: Path, contacts: int) -> None:
    """Create the synthetic scored workspace ``base`` (once)."""
    from winback.workspace import Workspace

    if (base / "ready").exists():
        return
    shutil.rmtree(base, ignore_errors=True)
    started = time.perf_counter()
    Workspace.init(base, "ecommerce").close()
    db = sqlite3.connect(base / "winback.db")
    db.execute("PRAGMA synchronous=OFF")
    rng = np.random.default_rng(20251207)
    created = _stamps(rng.integers(30, 6 * 365, contacts).astype(float))
    country = np.where(rng.random(contacts) < 0.66, "FR", "BE").tolist()
    tags = [TAGS[i] for i in rng.choice(len(TAGS), contacts, p=TAG_SHARES)]
    db.executemany(
        "INSERT INTO contacts (id, email, country, tags, created_at, updated_at, email_status, "
        "sms_status, subscription_active, frequency) "
        "VALUES (?, ?, ?, ?, ?, ?, 'subscribed', 'none', 0, 'normal')",
        (
            (i + 1, f"c{i + 1}@example.com", country[i], tags[i], created[i], created[i])
            for i in range(contacts)
        ),
    )
    stage = STAGES[rng.choice(len(STAGES), contacts, p=STAGE_SHARES)].tolist()
    quiet = rng.gamma(1.5, 150, contacts)
    bought = rng.random(contacts) < 0.7
    last_interaction = _stamps(np.where(rng.random(contacts) < 0.9, quiet, np.nan))
    last_purchase = _stamps(np.where(bought, quiet + rng.integers(0, 60, contacts), np.nan))
    p_alive = np.where(bought, np.round(rng.beta(2, 3, contacts), 3), np.nan).tolist()
    db.executemany(
        "INSERT INTO contact_scores (contact_id, scored_at, last_interaction_at, "
        "last_purchase_at, purchases, total_spend, stage, stage_since, dormant_subscriber, "
        "p_alive) VALUES (?, ?, ?, ?, ?, ?, ?, '2025-01-01', 0, ?)",
        (
            (
                i + 1,
                "2025-06-01 00:00:00.000000",
                last_interaction[i],
                last_purchase[i],
                int(bought[i]),
                40.0 if bought[i] else 0.0,
                stage[i],
                None if p_alive[i] != p_alive[i] else p_alive[i],
            )
            for i in range(contacts)
        ),
    )
    db.execute("DELETE FROM score_changes")
    db.execute("ANALYZE")
    db.commit()
    db.close()
    (base / "ready").write_text(json.dumps({"contacts": contacts}))
    print(f"  base built in {time.perf_counter() - started:.0f} s", flush=True)


def _timed(run: Callable[[], int], runs: int) -> tuple[float, float, float, int]:
    """(first run, median of ``runs`` after it, median CPU time of this process) in
    seconds, and the count. On a shared machine the wall time waits for a core; the CPU
    time is what the count itself costs."""
    started = time.perf_counter()
    count = run()
    first = time.perf_counter() - started
    times, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        assert run() == count
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return first, statistics.median(times), statistics.median(cpu), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import pandas as pd

    from winback.scoring.segment_language import parse_expression
    from winback.scoring.segments import count_segment
    from winback.workspace import Workspace

    base = OUT / f"segments-{args.contacts}"
    print(f"base: {args.contacts:,} scored contacts ({base})", flush=True)
    build(base, args.contacts)
    ws = Workspace.open(base)
    timezone = ws.config.workspace.timezone

    def winback() -> int:
        with ws.engine.connect() as connection:
            return count_segment(connection, parse_expression(EXPRESSION), NOW, timezone)

    sql_first, sql_median, sql_cpu, sql_count = _timed(winback, args.runs)

    read_started = time.perf_counter()
    with sqlite3.connect(base / "winback.db") as db:
        frame = pd.read_sql_query(
            "SELECT c.id, c.country, c.tags, c.erased_at, s.stage, s.p_alive, "
            "s.last_interaction_at, s.last_purchase_at FROM contacts c "
            "JOIN contact_scores s ON s.contact_id = c.id",
            db,
            parse_dates=["last_interaction_at", "last_purchase_at"],
        )
    read_s = time.perf_counter() - read_started
    today = pd.Timestamp(NOW.date())

    def pandas() -> int:
        inactive = (today - frame["last_interaction_at"].dt.normalize()).dt.days
        vip = frame["tags"].fillna("").str.contains('"vip"', regex=False)
        kept = (
            frame["erased_at"].isna()
            & frame["stage"].isin(["dormant", "at_risk"])
            & ((frame["p_alive"] < 0.3) | (inactive > 365))
            & ~vip
            & (frame["last_purchase_at"] < today - pd.Timedelta(days=180))
            & (frame["country"] == "FR")
        )
        return int(kept.sum())

    pd_first, pd_median, pd_cpu, pd_count = _timed(pandas, args.runs)
    ws.close()

    rows = [
        ("winback segment count", sql_median, sql_cpu, f"{sql_first:.3f} s", f"{sql_count:,}"),
        ("pandas, frame in memory", pd_median, pd_cpu, f"{pd_first:.3f} s", f"{pd_count:,}"),
        ("pandas, reading the frame", read_s, math.nan, "", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'median':>9}  {'CPU':>9}  {'first':>9}  {'count':>9}")
    for name, median, cpu_s, first, count in rows:
        cpu_text = "" if math.isnan(cpu_s) else f"{cpu_s:.3f} s"
        print(f"{name:<{width}}  {median:>7.3f} s  {cpu_text:>9}  {first:>9}  {count:>9}")
    verdict = "met" if sql_median < TARGET_S else "missed"
    print(
        f"\ntarget: count under {TARGET_S:.0f} s ({verdict} in wall time, median); "
        f"counts agree: {sql_count == pd_count}"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at the end (1, 5, 15 min): {load} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
