"""Import benchmark: generate a synthetic base and import it from CSV and from Parquet
into a fresh SQLite workspace, printing rows per second and peak memory.

    python bench/import.py                       # 1,000,000 contacts, 20,000,000 events
    python bench/import.py --contacts 100000 --events 2000000
    python bench/import.py --data bench/out/import/data --contacts-only   # files made before

Each import runs in its own process so that its peak memory (max RSS) is its own. The
machine's load average (1 minute, then 5 minutes) at the end of each import is printed
next to it: on a shared machine the figures mean little without it. The seconds are the
importer's whole call, including the rebuild of the events' secondary indexes after a
large import (the importer's own summary leaves it out). Each import starts after an
``os.sync()``, so it does not pay for writing back the generated files or the import
before it.
Targets (issue 2, 2-core machine): CSV >= 200,000 rows/s, Parquet >= 1,000,000 rows/s,
peak memory < 1.5 GB.

Beside each events file's import, the same table shows its peers (issue 17): the file
read with pandas, then with Polars (``bench/import_peers.py``), each in its own process
after an ``os.sync()``: times parsed to UTC, duplicates dropped on the columns of
winback's dedup key, contacts joined by email, Parquet written to a scratch folder
(deleted after each). A peer does less than winback: no validation, no quarantine, no
refusals, no resumable progress, no indexes. Their rows/s count the rows of the file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from winback.demo import generate

OUT = Path(__file__).parent / "out" / "import"
PEERS = Path(__file__).parent / "import_peers.py"
NOW = datetime(2026, 11, 1, tzinfo=UTC)

_CHILD = """
import json, resource, sys, time
from pathlib import Path
from datetime import datetime, UTC
from winback.workspace import Workspace
from winback.ingest import import_contacts, import_events
ws = Workspace.open(Path(sys.argv[1]))
now = datetime(2026, 11, 1, tzinfo=UTC)
importer = import_contacts if sys.argv[2] == "contacts" else import_events
started = time.perf_counter()
report = importer(ws, Path(sys.argv[3]), now=now)
seconds = time.perf_counter() - started
# VmHWM is this program's own peak: ru_maxrss would start from the parent's at the fork.
status = Path("/proc/self/status")
lines = status.read_text().splitlines() if status.exists() else []
hwm = [line.split()[1] for line in lines if line.startswith("VmHWM")]
peak = int(hwm[0]) * 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({**report.as_dict(), "wall_seconds": seconds, "peak_bytes": peak}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument(
        "--data", type=Path, help="import the files of this folder instead of generating them"
    )
    parser.add_argument("--contacts-only", action="store_true", help="skip the events")
    args = parser.parse_args()
    console = Console()
    data = args.data or OUT / "data"
    if args.data is None:
        with console.status("generating the base"):
            started = time.perf_counter()
            files = generate(data, contacts=args.contacts, now=NOW, formats=("parquet",))
            _cut_events(files.events, args.events, data)
        console.print(f"generated in {time.perf_counter() - started:.0f} s")
    table = Table(
        "file",
        "rows",
        "seconds",
        "rows/s",
        "peak memory",
        "load",
        caption=(
            "with pandas, with polars: the same file read, times to UTC, deduplicated,\n"
            "joined to the contacts by email, written as Parquet (no validation)"
        ),
    )
    for fmt in ("csv", "parquet"):
        workspace = OUT / f"ws-{fmt}"
        shutil.rmtree(workspace, ignore_errors=True)
        subprocess.run(
            [sys.executable, "-m", "winback", "init", str(workspace)],
            check=True,
            capture_output=True,
        )
        for kind in ("contacts",) if args.contacts_only else ("contacts", "events"):
            path = data / f"{kind}.{fmt}"
            # The import must not pay for the disk write-back of what came before it.
            os.sync()
            with console.status(f"importing {path.name}"):
                result = subprocess.run(
                    [sys.executable, "-c", _CHILD, str(workspace), kind, str(path)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
            report = json.loads(result.stdout.strip().splitlines()[-1])
            _add_row(table, path.name, report["read"], report["wall_seconds"], report["peak_bytes"])
            console.print(f"{path.name}: {report['read'] / report['wall_seconds']:,.0f} rows/s")
            if kind == "events":
                for peer in ("pandas", "polars"):
                    _peer(console, table, peer, path, data / f"contacts.{fmt}", report["read"])
    console.print(table)


def _peer(
    console: Console, table: Table, peer: str, events: Path, contacts: Path, rows: int
) -> None:
    """Time ``peer`` on the events file (``rows`` in it) in a process of its own."""
    scratch = OUT / "peers"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    os.sync()
    with console.status(f"{events.name} with {peer}"):
        result = subprocess.run(
            [
                sys.executable,
                str(PEERS),
                peer,
                str(events),
                str(contacts),
                str(scratch / "events.parquet"),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    shutil.rmtree(scratch)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    _add_row(table, f"  with {peer}", rows, report["seconds"], report["peak_bytes"])
    console.print(
        f"{events.name} with {peer}: {rows / report['seconds']:,.0f} rows/s, "
        f"{report['written']:,} rows written"
    )


def _add_row(table: Table, name: str, rows: int, seconds: float, peak_bytes: int) -> None:
    table.add_row(
        name,
        f"{rows:,}",
        f"{seconds:.1f}",
        f"{rows / seconds:,.0f}",
        f"{peak_bytes / 2**20:,.0f} MB",
        "{:.1f} / {:.1f}".format(*os.getloadavg()[:2]),
    )


def _cut_events(path: Path, events: int, folder: Path) -> None:
    """Keep the first ``events`` rows, and write the CSV twins of both files."""
    table = pq.read_table(path)
    if table.num_rows > events:
        table = table.slice(0, events)
        pq.write_table(table, path, compression="zstd")
    pacsv.write_csv(table, folder / "events.csv")
    pacsv.write_csv(pq.read_table(folder / "contacts.parquet"), folder / "contacts.csv")


if __name__ == "__main__":
    main()
