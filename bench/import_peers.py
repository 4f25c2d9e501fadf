"""The peers of ``bench/import.py``: an events file (CSV or Parquet) read with Polars or
with pandas, as a data analyst would load it, in a process of its own.

Each peer reads the file, parses its times to UTC, drops the duplicate rows on the
columns winback's dedup key covers (the contact's email or phone, type, channel, time,
amount, campaign, message id: those of them the file has), joins the rows to the
contacts file by email to get a contact id (its line, from 1), and writes the result as
Parquet. It does less than winback's import: no validation of a value, no quarantine of
a bad row, no refusals applied to the contacts, no resumable progress, no indexes; the
email is only trimmed and lower-cased. Its figures are what that simpler job costs.

    python bench/import_peers.py polars EVENTS CONTACTS OUT.parquet

prints one JSON line: the rows written, the seconds and the peak memory (the rows read
are winback's count of the same file).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

#: winback's dedup key (``winback.ingest.event_blocks.event_key``), as file columns.
DEDUP = ["email", "phone", "type", "channel", "occurred_at", "amount", "campaign", "message_id"]


def with_polars(events: Path, contacts: Path, out: Path) -> int:
    """One lazy plan, streamed into the Parquet file; returns the rows written."""
    import polars as pl

    def scan(path: Path) -> pl.LazyFrame:
        return pl.scan_csv(path) if path.suffix == ".csv" else pl.scan_parquet(path)

    email = pl.col("email").str.strip_chars().str.to_lowercase()
    ev = scan(events)
    at = pl.col("occurred_at")
    at = (
        at.str.to_datetime(time_unit="us", time_zone="UTC")
        if ev.collect_schema()["occurred_at"] == pl.String
        else at.dt.convert_time_zone("UTC")
    )
    people = (
        scan(contacts)
        .select(email, contact_id=pl.int_range(1, pl.len() + 1))
        .unique("email", keep="first")
    )
    ev = ev.with_columns(email, at)
    ev.unique([name for name in DEDUP if name in ev.collect_schema()], keep="first").join(
        people, on="email"
    ).sink_parquet(out)
    return int(pl.scan_parquet(out).select(pl.len()).collect().item())


def with_pandas(events: Path, contacts: Path, out: Path) -> int:
    """The whole file in memory, ``drop_duplicates`` and ``merge``; returns the rows
    written."""
    import numpy as np
    import pandas as pd

    def read(path: Path, columns: list[str] | None = None) -> Any:
        if path.suffix == ".csv":
            return pd.read_csv(path, usecols=columns)
        return pd.read_parquet(path, columns=columns)

    ev = read(events)
    people = read(contacts, ["email"])
    people["email"] = people.email.str.strip().str.lower()
    people["contact_id"] = np.arange(1, len(people) + 1)
    people = people.drop_duplicates("email")
    ev["email"] = ev.email.str.strip().str.lower()
    ev["occurred_at"] = pd.to_datetime(ev.occurred_at, utc=True)
    kept = ev.drop_duplicates([name for name in DEDUP if name in ev.columns])
    joined = kept.merge(people, on="email")
    joined.to_parquet(out, index=False)
    return len(joined)


def _peak_bytes() -> int:
    """This process's own peak: ru_maxrss would start from the parent's at the fork."""
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.exists() else []
    hwm = [line.split()[1] for line in lines if line.startswith("VmHWM")]
    return int(hwm[0]) * 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    peer, events, contacts, out = sys.argv[1:]
    run = with_polars if peer == "polars" else with_pandas
    started = time.perf_counter()
    written = run(Path(events), Path(contacts), Path(out))
    seconds = time.perf_counter() - started
    print(json.dumps({"written": written, "seconds": seconds, "peak_bytes": _peak_bytes()}))


if __name__ == "__main__":
    main()
