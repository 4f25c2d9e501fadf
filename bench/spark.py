"""Benchmark of ``winback score --engine spark`` beside the embedded engine and pandas.

On the synthetic base of ``bench/score.py`` (default 100,000 contacts and 2,000,000
events in SQLite, with its mix of flagged, proxy and prefetch opens), time, each in its
own process after an ``os.sync()``:

1. the embedded full score (``winback score --full``);
2. the pandas script of ``bench/score.py`` (the same facts and stages, read from the
   same database);
3. ``winback events export --parquet`` (the history by month, machine opens resolved);
4. ``winback score --engine spark`` with pyspark in local mode over that export: the
   Spark session's start, the facts on Spark, and the rest of the scoring in the store.

Prints the table with the peak memory of each Python process (Spark's JVM is a process
of its own, not counted), the load average (the machine may be shared: read the figures
with it), and whether Spark's stages equal the embedded engine's.

    .venv/bin/python bench/spark.py
    .venv/bin/python bench/spark.py --contacts 1000000 --events 20000000 --master 'local[2]'
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from score import NOW, OUT, ROOT, _migrate, _peak_gb, build, phase_pandas


def phase_embedded(work: Path) -> dict:
    from winback.clock import parse_now
    from winback.scoring import score
    from winback.workspace import Workspace

    ws = Workspace.open(work)
    started = time.perf_counter()
    result = score(ws, now=parse_now(NOW.date().isoformat(), ws.config.workspace.tz), full=True)
    elapsed = time.perf_counter() - started
    ws.close()
    return {"seconds": elapsed, "peak_gb": _peak_gb(), "stages": result.stages}


def phase_export(work: Path) -> dict:
    from winback.scoring.history_export import export_history
    from winback.workspace import Workspace

    ws = Workspace.open(work)
    started = time.perf_counter()
    result = export_history(ws)
    elapsed = time.perf_counter() - started
    ws.close()
    size = sum(p.stat().st_size for p in (work / "history").rglob("*.parquet"))
    return {
        "seconds": elapsed,
        "peak_gb": _peak_gb(),
        "events": result.events,
        "months": len(result.months),
        "mb": size / 1e6,
    }


def phase_spark(work: Path, master: str) -> dict:
    from winback.clock import parse_now
    from winback.scoring import spark
    from winback.workspace import Workspace

    ws = Workspace.open(work)
    timings: dict[str, float] = {}
    opened = spark.spark_session

    @contextmanager
    def timed(master: str) -> Iterator[Any]:
        """The session's start, timed apart from the query."""
        started = time.perf_counter()
        with opened(master) as session:
            timings["start"] = time.perf_counter() - started
            yield session

    spark.spark_session = timed  # type: ignore[assignment]
    started = time.perf_counter()
    result = spark.score_workspace(
        ws, parse_now(NOW.date().isoformat(), ws.config.workspace.tz), engine="spark"
    )
    elapsed = time.perf_counter() - started
    ws.close()
    return {
        "seconds": elapsed,
        "start_seconds": timings.get("start", 0.0),
        "peak_gb": _peak_gb(),
        "stages": result.stages,
        "master": master,
    }


def _child(phase: str, work: Path, master: str) -> dict:
    os.sync()
    output = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--work", str(work), "--master", master],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument(
        "--phase", choices=["embedded", "pandas", "export", "spark"], help=argparse.SUPPRESS
    )
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        if args.phase == "spark":
            config = args.work / "winback.toml"
            text = config.read_text(encoding="utf-8")
            config.write_text(text.replace('master = "local[*]"', f'master = "{args.master}"'))
        phases = {
            "embedded": lambda: phase_embedded(args.work),
            "pandas": lambda: phase_pandas(args.work, NOW.date().isoformat()),
            "export": lambda: phase_export(args.work),
            "spark": lambda: phase_spark(args.work, args.master),
        }
        print(json.dumps(phases[args.phase]()))
        return

    base = OUT / f"score-{args.contacts}-{args.events}"
    print(f"base: {args.contacts:,} contacts, {args.events:,} events ({base})", flush=True)
    build(base, args.contacts, args.events)
    work = OUT / f"spark-work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(base, work)
    _migrate(work)
    results = {}
    for phase in ("embedded", "pandas", "export", "spark"):
        results[phase] = _child(phase, work, args.master)
        print(f"{phase}: {results[phase]['seconds']:.1f} s", flush=True)
    shutil.rmtree(work, ignore_errors=True)

    embedded, pandas, export, spark = (
        results[p] for p in ("embedded", "pandas", "export", "spark")
    )
    rows = [
        ("embedded full score (SQLite)", embedded),
        ("pandas, same facts and stages", pandas),
        (
            f"events export ({export['events']:,} events, {export['months']} months, "
            f"{export['mb']:.0f} MB)",
            export,
        ),
        (f"Spark score, {args.master} (session start {spark['start_seconds']:.1f} s)", spark),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\n{'measure':<{width}}  {'time':>9}  {'peak RSS':>9}")
    for name, result in rows:
        print(f"{name:<{width}}  {result['seconds']:>7.1f} s  {result['peak_gb']:>6.2f} GB")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average at the end (1, 5, 15 min): {load} on {os.cpu_count()} CPUs")
    same = spark["stages"] == embedded["stages"]
    print(f"Spark's stages equal the embedded engine's: {same}")
    print(f"stages: {embedded['stages']}")


if __name__ == "__main__":
    main()
