"""Benchmark of ``winback score`` (issue 3).

On a synthetic base (default 1,000,000 contacts and 20,000,000 events in SQLite), time:

1. a full score on each engine (`--engine both`: embedded, then duckdb after the first
   write of its columnar history, timed apart). The duckdb one is then the base's
   second full score of the day, a nightly ``--full``: on SQLite it writes back only the
   rows that changed. ``--engine duckdb`` alone times its first score of the base;
2. a plain pandas script computing the same per-contact facts and stages from the same
   database (read with ``pandas.read_sql_query``, then ``groupby``);
3. an incremental rescore after 100,000 new events (the next day);

each in its own process, so each peak memory (max RSS) is its own, and each after an
``os.sync()``, so none pays for the disk writes of what came before. Prints a table with
the times, the pandas/winback ratio and the peak memories against the targets, and the
load average (the machine may be shared: read the figures with it).

The pandas script is the one a data analyst would write: ``read_sql_query`` of the events
the facts need (interactions, and deliveries for the machine-open rule) from the same
SQLite file, then boolean masks, a merge and ``groupby``. It is not slowed down (no
per-row Python, no needless columns) and it is favoured: it writes nothing back, knows
the bench's profile (ecommerce, UTC) instead of reading the policy, and skips the
lost-by-journey and subscriber rules, none of which the synthetic base exercises. Most of
its time is the read itself; winback's full score includes writing a million rows, their
stage history and their audit records.

    .venv/bin/python bench/score.py                       # 1M contacts, 20M events
    .venv/bin/python bench/score.py --contacts 100000 --events 2000000
    .venv/bin/python bench/score.py --start-postgres DIR --skip-pandas \
        --contacts 5000000 --events 100000000

The synthetic base (``bench/synthetic.py``) is built once under bench/out/ (a few minutes
at full size) and copied for each run, so the score always starts from the same state.

On PostgreSQL (``--database-url`` of an empty database, or ``--start-postgres DIR``: a
throwaway server with its data in DIR, set for this machine and deleted at the end) the
same base is written straight into the database with COPY, its indexes built after the
load (``bench/score_pg.py``). A copy per run is out of reach at 100M events: the phases
run one after another on the one base, the full score first, then pandas (unless
``--skip-pandas``: it reads every event into memory, which 100M events do not fit
sensibly), then the incremental after the next day's events. The table adds the load
(rows/s), the rebuild of the indexes and the database's size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from synthetic import (
    CONTACT_COLUMNS,
    EVENT_COLUMNS,
    NOW,
    SEED,
    WINDOW,
    contact_rows,
    draw_base,
    draw_events,
    event_rows,
    next_day_events,
)

from winback.workspace import ENV_DATABASE_URL

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
CHUNK = 1_000_000
TARGETS = {"full_s": 60.0, "ratio": 5.0, "peak_gb": 3.0, "incremental_s": 5.0}
INSERT_EVENT = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({', '.join('?' * 10)})"


def build(base: Path, contacts: int, events: int) -> None:
    """Create the synthetic workspace ``base`` (once)."""
    from winback.workspace import Workspace

    if (base / "ready").exists():
        return
    shutil.rmtree(base, ignore_errors=True)
    started = time.perf_counter()
    ws = Workspace.init(base, "ecommerce")
    ws.close()
    db = sqlite3.connect(base / "winback.db")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("DROP INDEX ix_events_contact_time")
    db.execute("DROP INDEX ix_events_message_id")
    rng = np.random.default_rng(SEED)
    drawn = draw_base(rng, contacts)
    db.executemany(
        f"INSERT INTO contacts ({CONTACT_COLUMNS}, subscription_active, frequency) "
        f"VALUES ({', '.join('?' * 10)}, 0, 'normal')",
        contact_rows(drawn, 0, contacts),
    )
    db.commit()
    for first in range(0, events, CHUNK):
        n = min(CHUNK, events - first)
        block = draw_events(rng, n, first + 1, drawn.weights, drawn.quiet_from, WINDOW)
        db.executemany(INSERT_EVENT, event_rows(block))
        db.commit()
        print(f"  built {first + n:,} events ({time.perf_counter() - started:.0f} s)", flush=True)
    db.execute("CREATE INDEX ix_events_contact_time ON events (contact_id, occurred_at)")
    db.execute("CREATE INDEX ix_events_message_id ON events (message_id)")
    db.execute("ANALYZE")
    db.commit()
    db.close()
    (base / "ready").write_text(json.dumps({"contacts": contacts, "events": events}))
    print(f"  base built in {time.perf_counter() - started:.0f} s", flush=True)


def _migrate(work: Path) -> None:
    """Bring a copy of a cached base to the current schema (not timed)."""
    from winback.store import migrate
    from winback.workspace import Workspace

    ws = Workspace.open(work, check=False)
    migrate(ws.engine)
    ws.close()


def _peak_gb() -> float:
    """This process's peak resident memory. Not ``getrusage``: Linux keeps its maximum
    across ``exec``, so a child would report the parent's peak when that is higher."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def phase_history(work: Path) -> dict:
    """Child process: write the workspace's columnar history (what the duckdb engine
    reads) from the store, once; report time and memory."""
    from winback.scoring.history_update import update_history
    from winback.workspace import Workspace

    ws = Workspace.open(work)
    started = time.perf_counter()
    result = update_history(ws)
    elapsed = time.perf_counter() - started
    ws.close()
    return {"seconds": elapsed, "peak_gb": _peak_gb(), "events": result.events}


def phase_score(work: Path, now: str, new_events: int, engine: str, full: bool) -> dict:
    """Child process: (optionally add new events, then) score; report time and memory."""
    from winback.clock import parse_now
    from winback.scoring.spark import score_workspace
    from winback.workspace import Workspace

    ws = Workspace.open(work)
    if new_events and ws.database_url.startswith("postgresql"):
        from score_pg import add_events

        add_events(ws.database_url, new_events)
    elif new_events:
        db = sqlite3.connect(work / "winback.db")
        first = db.execute("SELECT max(id) FROM events").fetchone()[0] + 1
        contacts = db.execute("SELECT count(*) FROM contacts").fetchone()[0]
        db.executemany(INSERT_EVENT, event_rows(next_day_events(first, contacts, new_events)))
        db.commit()
        db.close()
    started = time.perf_counter()
    result = score_workspace(
        ws, now=parse_now(now, ws.config.workspace.tz), full=full, engine=engine
    )
    elapsed = time.perf_counter() - started
    ws.close()
    return {
        "seconds": elapsed,
        "peak_gb": _peak_gb(),
        "mode": result.mode,
        "rewritten": result.rewritten,
        "stages": result.stages,
    }


def phase_pandas(work: Path, now: str) -> dict:
    """Child process: the same per-contact facts, stages and RFM with plain pandas."""
    import pandas as pd
    from sqlalchemy import create_engine

    started = time.perf_counter()
    url = os.environ.get(ENV_DATABASE_URL)
    db = create_engine(url).connect() if url else sqlite3.connect(work / "winback.db")
    ev = pd.read_sql_query(
        "SELECT id, contact_id, type, channel, occurred_at, amount, message_id, machine_open, "
        "bot, user_agent FROM events WHERE type IN ('open','click','purchase','visit','login',"
        "'reply','delivered')",
        db,
        parse_dates=["occurred_at"],
    )
    contacts = pd.read_sql_query(
        "SELECT id, created_at, email_status, sms_status, lost_by_journey_at, "
        "subscription_active FROM contacts WHERE erased_at IS NULL",
        db,
        parse_dates=["created_at", "lost_by_journey_at"],
    )
    delivered = ev[ev.type == "delivered"][["contact_id", "message_id", "occurred_at"]]
    ev = ev[ev.type != "delivered"]
    opens = ev[(ev.type == "open") & ev.machine_open.isna() & ev.message_id.notna()]
    joined = opens[["id", "contact_id", "message_id", "occurred_at"]].merge(
        delivered, on=["contact_id", "message_id"], suffixes=("", "_d")
    )
    delay = (joined.occurred_at - joined.occurred_at_d).dt.total_seconds()
    prefetched = set(joined.id[(delay >= 0) & (delay <= 2)])
    ua = ev.user_agent.fillna("")
    proxy = (ua == "Mozilla/5.0") | (
        ua.str.match(
            r"Mozilla/5\.0 \((iPhone|iPad|Macintosh);.*AppleWebKit/.*\(KHTML, like Gecko\)"
        )
        | ua.str.contains("GoogleImageProxy|YahooMailProxy", case=False)
    ) & ~ua.str.contains("Safari/")
    machine = (ev.machine_open == 1) | (ev.machine_open.isna() & (proxy | ev.id.isin(prefetched)))
    human = (
        ((ev.type == "open") & ~machine)
        | ((ev.type == "click") & (ev.bot != 1))
        | ev.type.isin(["purchase", "visit", "login", "reply"])
    )
    inter = ev[human]
    facts = inter.groupby("contact_id").occurred_at.max().rename("last_interaction_at").to_frame()
    for channel in ("email", "sms", "web", "app", "store"):
        facts[f"last_{channel}_at"] = (
            inter[inter.channel == channel].groupby("contact_id").occurred_at.max()
        )
    buys = (
        ev[ev.type == "purchase"]
        .groupby("contact_id")
        .agg(
            first_purchase_at=("occurred_at", "min"),
            last_purchase_at=("occurred_at", "max"),
            purchases=("id", "size"),
            total_spend=("amount", "sum"),
        )
    )
    base = contacts.set_index("id").join(facts).join(buys)
    base["purchases"] = base.purchases.fillna(0)
    today = pd.Timestamp(now)
    base["days_inactive"] = (today - base.last_interaction_at.dt.normalize()).dt.days
    customer = base.purchases > 0
    anchor = base[["created_at", "last_interaction_at"]].max(axis=1).dt.normalize()
    anchor = anchor.where(~customer, base.last_purchase_at.dt.normalize())
    clock = (today - anchor).dt.days
    stage = np.select(
        [clock >= 365, clock >= 180, clock >= 120, customer],
        ["lost", "dormant", "at_risk", "active"],
        "prospect",
    )
    refused = {"unsubscribed", "bounced", "complained"}
    known_e, known_s = base.email_status != "none", base.sms_status != "none"
    all_refused = (
        (known_e | known_s)
        & (~known_e | base.email_status.isin(refused))
        & (~known_s | base.sms_status.isin(refused))
    )
    statuses = base[["email_status", "sms_status"]]
    consent = np.select(
        [(statuses == "complained").any(axis=1), (statuses == "unsubscribed").any(axis=1)],
        ["complained", "unsubscribed"],
        "bounced",
    )
    stage = np.where(all_refused, consent, stage)
    base["stage"] = stage
    cust = base[customer]
    for name, column in (
        ("recency_score", cust.last_purchase_at.dt.normalize()),
        ("frequency_score", cust.purchases),
        ("monetary_score", cust.total_spend),
    ):
        points = column.quantile([0.2, 0.4, 0.6, 0.8], interpolation="lower").to_numpy()
        base.loc[customer, name] = 1 + (column.to_numpy()[:, None] > points).sum(axis=1)
    counts = base.stage.value_counts().to_dict()
    return {
        "seconds": time.perf_counter() - started,
        "peak_gb": _peak_gb(),
        "stages": {k: int(v) for k, v in counts.items()},
    }


def _child(phase: str, work: Path, now: str, extra: int = 0, *more: str) -> dict:
    # Flush what the run before wrote (the 4 GB copy of the base, the full score's rows):
    # the phase must not pay for the operating system writing it back to disk.
    os.sync()
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--phase",
            phase,
            "--work",
            str(work),
            "--now",
            now,
            "--new-events",
            str(extra),
            *more,
        ],
        check=True,
        # The phase's progress goes to stderr, shown as it comes.
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


Row = tuple[str, str, str, str]
#: Each engine's full score, the history's first write (duckdb), pandas, the incremental.
Phases = tuple[dict[str, dict], dict | None, dict | None, dict]


def _run_sqlite(args: argparse.Namespace) -> tuple[Phases, list[Row]]:
    base = OUT / f"score-{args.contacts}-{args.events}"
    print(f"base: {args.contacts:,} contacts, {args.events:,} events ({base})", flush=True)
    build(base, args.contacts, args.events)
    # One working copy per run: bench/out may be shared by several checkouts.
    work = OUT / f"score-work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(base, work)
    _migrate(work)
    try:
        return _phases(args, work), []
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_postgres(args: argparse.Namespace) -> tuple[Phases, list[Row]]:
    import score_pg

    from winback.workspace import Workspace

    server = score_pg.start_server(args.start_postgres) if args.start_postgres else None
    # The workspace folder holds the config and the secret; the base is in the database.
    work = OUT / f"score-pg-{os.getpid()}"
    try:
        url = server.url() if server else args.database_url
        os.environ[ENV_DATABASE_URL] = url
        shutil.rmtree(work, ignore_errors=True)
        Workspace.init(work, "ecommerce").close()
        print(f"base: {args.contacts:,} contacts, {args.events:,} events (PostgreSQL)", flush=True)
        # In a process of its own, like the phases: a child started by a process keeps
        # that process's peak memory as its own starting figure.
        sizes_args = ("--contacts", str(args.contacts), "--events", str(args.events))
        loaded = _child("load", work, NOW.date().isoformat(), 0, *sizes_args)
        phases = _phases(args, work)
        sizes = score_pg.sizes(url)
    finally:
        if server:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    gb = 1024**3
    rows = [
        (
            f"load: COPY {args.contacts:,} contacts + {args.events:,} events",
            f"{loaded['copy_s']:.1f} s",
            f"{loaded['peak_gb']:.2f} GB",
            f"{loaded['rows_per_s']:,.0f} rows/s",
        ),
        ("keys and indexes of events, built after", f"{loaded['index_s']:.1f} s", "", ""),
        ("VACUUM ANALYZE", f"{loaded['analyze_s']:.1f} s", "", ""),
    ]
    print("indexes: " + ", ".join(f"{k} {v:.0f} s" for k, v in loaded["indexes"].items()))
    print(
        f"database {sizes['database'] / gb:.1f} GB; events {sizes['events'] / gb:.1f} GB, "
        f"{sizes['events_indexed'] / gb:.1f} GB with its indexes"
    )
    if server:
        print("server: " + ", ".join(f"{k}={v}" for k, v in score_pg.BENCH_SETTINGS.items()))
    return phases, rows


def _phases(args: argparse.Namespace, work: Path) -> Phases:
    """The full score (on each engine asked, the duckdb one after writing its history),
    pandas, then the incremental: one base serves them all, as a copy per run is out of
    reach on PostgreSQL at 100M events."""
    tomorrow = (NOW + timedelta(days=1)).date().isoformat()
    today = NOW.date().isoformat()
    engines = ["embedded", "duckdb"] if args.engine == "both" else [args.engine]
    fulls: dict[str, dict] = {}
    history = None
    for engine in engines:
        if engine == "duckdb":
            history = _child("history", work, today)
            print(f"history written: {history['seconds']:.1f} s", flush=True)
        fulls[engine] = _child("score", work, today, 0, "--engine", engine, "--full")
        print(f"full score ({engine}): {fulls[engine]['seconds']:.1f} s", flush=True)
    # pandas reads the base the full score read, before the incremental adds events.
    pandas = None if args.skip_pandas else _child("pandas", work, NOW.date().isoformat())
    if pandas:
        print(f"pandas: {pandas['seconds']:.1f} s", flush=True)
    incremental = _child("score", work, tomorrow, args.new_events, "--engine", engines[-1])
    print(f"incremental: {incremental['seconds']:.1f} s", flush=True)
    return fulls, history, pandas, incremental


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--new-events", type=int, default=100_000)
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument(
        "--database-url",
        help="postgresql+psycopg:// URL of an empty database the bench fills (not SQLite)",
    )
    parser.add_argument(
        "--start-postgres",
        type=Path,
        metavar="DIR",
        help="start a throwaway PostgreSQL server with its data in DIR (deleted at the end)",
    )
    parser.add_argument(
        "--engine",
        choices=["embedded", "duckdb", "both"],
        default="both",
        help="the engine of the full score (both: one after the other, on the same base)",
    )
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--phase", choices=["score", "pandas", "load", "history"], help=argparse.SUPPRESS
    )
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--now", default=NOW.date().isoformat(), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "score":
        print(json.dumps(phase_score(args.work, args.now, args.new_events, args.engine, args.full)))
        return
    if args.phase == "history":
        print(json.dumps(phase_history(args.work)))
        return
    if args.phase == "pandas":
        print(json.dumps(phase_pandas(args.work, args.now)))
        return
    if args.phase == "load":
        from score_pg import load

        loaded = load(os.environ[ENV_DATABASE_URL], args.contacts, args.events)
        print(json.dumps({**loaded, "peak_gb": _peak_gb()}))
        return
    if args.database_url and args.start_postgres:
        parser.error("--database-url and --start-postgres: one or the other")
    if args.database_url or args.start_postgres:
        phases, rows = _run_postgres(args)
    else:
        phases, rows = _run_sqlite(args)
    fulls, history, pandas, incremental = phases
    best = min(fulls, key=lambda engine: float(fulls[engine]["seconds"]))
    rows += [
        (
            f"full score ({engine})",
            f"{run['seconds']:.1f} s",
            f"{run['peak_gb']:.2f} GB",
            f"<= {TARGETS['full_s']:.0f} s, <= {TARGETS['peak_gb']:.0f} GB",
        )
        for engine, run in fulls.items()
    ]
    if history:
        rows.append(
            (
                f"history first written ({history['events']:,} events, once)",
                f"{history['seconds']:.1f} s",
                f"{history['peak_gb']:.2f} GB",
                "",
            )
        )
    rows += [
        (
            f"incremental (+{args.new_events:,} events, {incremental['rewritten']:,} rows written)",
            f"{incremental['seconds']:.1f} s",
            f"{incremental['peak_gb']:.2f} GB",
            f"<= {TARGETS['incremental_s']:.0f} s",
        ),
    ]
    if pandas:
        ratio = pandas["seconds"] / fulls[best]["seconds"]
        rows.append(
            ("pandas, same facts", f"{pandas['seconds']:.1f} s", f"{pandas['peak_gb']:.2f} GB", "")
        )
        rows.append(
            (f"pandas / winback ({best})", f"{ratio:.1f}x", "", f">= {TARGETS['ratio']:.0f}x")
        )
    else:
        rows.append(("pandas, same facts", "skipped", "", "--skip-pandas (reads every event)"))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'time':>9}  {'peak RSS':>9}  target")
    for name, elapsed, memory, target in rows:
        print(f"{name:<{width}}  {elapsed:>9}  {memory:>9}  {target}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average at the end (1, 5, 15 min): {load} on {os.cpu_count()} CPUs")
    for engine, run in fulls.items():
        print(f"stages after the full score ({engine}): {run['stages']}")
    if pandas:
        print(f"stages by pandas:            {pandas['stages']}")


if __name__ == "__main__":
    main()
