"""Benchmark of ``winback score`` (issues 3 and 17).

On a synthetic base (default 1,000,000 contacts and 20,000,000 events in SQLite), time:

1. a full score on each engine (`--engine both`: embedded, then duckdb after the first
   write of its columnar history, timed apart). The duckdb one is then the base's
   second full score of the day, a nightly ``--full``: on SQLite it writes back only the
   rows that changed. ``--engine duckdb`` alone times its first score of the base;
2. its peers (``bench/peers.py``): a plain pandas script, then a Polars one, computing
   the same per-contact facts, stages and RFM from the same database;
3. incremental rescores after 100,000 new events each: later on the day of the full
   score (whose first scores are that day's stage changes), the first of the next day
   (which also takes the day's health of the base, as the first score of a day does),
   and later that day (the hourly run of a base scored nightly);

each in its own process, so each peak memory (max RSS) is its own, and each after an
``os.sync()``, so none pays for the disk writes of what came before. Prints a table with
the times, the pandas/winback and Polars/winback ratios and the peak memories against the
targets, and the load average (the machine may be shared: read the figures with it).
Polars must count the same stages as pandas: a warning line says when it does not.

The peers are the scripts a data analyst would write, and favoured ones: they write
nothing back and skip rules the synthetic base does not exercise (``bench/peers.py``
says which). Most of their time is the read itself; winback's full score includes
writing a million rows, their stage history and their audit records.

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
run one after another on the one base, the full score first, then the peers (unless
``--skip-pandas``: they read every event into memory, which 100M events do not fit
sensibly), then the incrementals. The table adds the load
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
from peers import phase_pandas, phase_polars
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
TARGETS = {"full_s": 60.0, "ratio": 5.0, "peak_gb": 3.0, "incremental_s": 3.0}
#: The incremental rescores, in order: what each is, and its day (the full score's, or
#: the next).
INCREMENTALS = {
    "later the full score's day": "today",
    "first of the next day, with its health": "tomorrow",
    "later that day": "tomorrow",
}
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
#: Each engine's full score, the history's first write (duckdb), each peer (pandas,
#: polars; none when skipped), the incrementals (what each is, its run).
Phases = tuple[dict[str, dict], dict | None, dict[str, dict], list[tuple[str, dict]]]
PEERS = {"pandas": "pandas", "polars": "Polars"}


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
    the peers, then the incrementals: one base serves them all, as a copy per run is out
    of reach on PostgreSQL at 100M events."""
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
    # The peers read the base the full score read, before the incremental adds events.
    peers = {}
    for peer in () if args.skip_pandas else PEERS:
        peers[peer] = _child(peer, work, today)
        print(f"{peer}: {peers[peer]['seconds']:.1f} s", flush=True)
    incrementals = []
    for what, now in INCREMENTALS.items():
        run = _child("score", work, today if now == "today" else tomorrow, args.new_events,
                     "--engine", engines[-1])  # fmt: skip
        print(f"incremental, {what}: {run['seconds']:.1f} s", flush=True)
        incrementals.append((what, run))
    return fulls, history, peers, incrementals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--new-events", type=int, default=100_000)
    parser.add_argument(
        "--skip-pandas", action="store_true", help="skip the peers (pandas and Polars)"
    )
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
        "--phase", choices=["score", *PEERS, "load", "history"], help=argparse.SUPPRESS
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
    if args.phase in PEERS:
        compute = phase_pandas if args.phase == "pandas" else phase_polars
        print(json.dumps({**compute(args.work, args.now), "peak_gb": _peak_gb()}))
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
    fulls, history, peers, incrementals = phases
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
            f"incremental, {what} (+{args.new_events:,} events, {run['rewritten']:,} rows)",
            f"{run['seconds']:.1f} s",
            f"{run['peak_gb']:.2f} GB",
            f"<= {TARGETS['incremental_s']:.0f} s",
        )
        for what, run in incrementals
    ]
    for peer, run in peers.items():
        ratio = run["seconds"] / fulls[best]["seconds"]
        name = PEERS[peer]
        rows.append(
            (f"{name}, same facts", f"{run['seconds']:.1f} s", f"{run['peak_gb']:.2f} GB", "")
        )
        # Issue 3's target is against pandas; Polars is shown beside it.
        target = f">= {TARGETS['ratio']:.0f}x" if peer == "pandas" else ""
        rows.append((f"{peer} / winback ({best})", f"{ratio:.1f}x", "", target))
    if not peers:
        rows.append(("peers, same facts", "skipped", "", "--skip-pandas (they read every event)"))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'time':>9}  {'peak RSS':>9}  target")
    for name, elapsed, memory, target in rows:
        print(f"{name:<{width}}  {elapsed:>9}  {memory:>9}  {target}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average at the end (1, 5, 15 min): {load} on {os.cpu_count()} CPUs")
    for engine, run in fulls.items():
        print(f"stages after the full score ({engine}): {run['stages']}")
    for peer, run in peers.items():
        print(f"stages by {PEERS[peer] + ':':<20}{dict(sorted(run['stages'].items()))}")
    if peers and peers["polars"]["stages"] != peers["pandas"]["stages"]:
        print("WARNING: Polars and pandas count different stages on the same base")


if __name__ == "__main__":
    main()
