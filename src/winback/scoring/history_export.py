"""``winback events export --parquet DIR``: the event history as Parquet, for Spark.

The export is what a Spark cluster (or DuckDB, or any Parquet reader) scores from
(:mod:`winback.scoring.spark`), so it holds what scoring needs and nothing that names or
locates a person: no ip, user agent, URL, body or source. Personal data stays in the
operational store, so an erasure there needs no rewrite of the export.

- Partitioned by month of ``occurred_at`` (UTC), Hive style:
  ``DIR/month=2026-03/part-0.parquet``; Spark, DuckDB and pyarrow read the ``month``
  column from the folder names.
- The machine-open flag is **resolved** at export: ``machine_open`` of an open holds the
  answer of the rule of :mod:`winback.scoring.machine_open` (the flag, a proxy's user
  agent, a delivery seconds before), computed by the store with the same SQL the
  embedded scoring runs. The facts select then reads the flag (a plain scan) instead of
  looking up each open's delivery, which Spark would plan as a nested loop.
- ``DIR/_winback.json`` (a name Spark and DuckDB skip) records the highest event id, the
  event count and the ``scoring.machine_open_seconds`` the flags were resolved with: a
  Spark score refuses an export resolved under another value.
- ``since``: only the months from that date's month on are written again (whole months,
  so a month folder is never half replaced); the other months stay as they are. Events
  imported since the last export that happened before ``since`` are in none of the
  written months: after importing old history, export everything again.

The rows stream from the store in batches into pyarrow's dataset writer, so memory stays
that of one batch whatever the size of the history. ``DIR`` may be an object-store URL
(``s3://bucket/history``), handed to pyarrow's filesystems.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from sqlalchemy import Boolean, ColumnElement, Connection, case, func, select, type_coerce

from winback.domain import EventType
from winback.errors import WinbackError
from winback.safe_output import OutputRefused
from winback.scoring.machine_open import machine_open_sql
from winback.store.history import event_key
from winback.store.history import high_water as stored_high_water
from winback.store.schema import events
from winback.workspace import Workspace

MANIFEST = "_winback.json"
MANIFEST_FORMAT = 1
PARTITION = "month"
#: The columns of the export, in order: none is personal.
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("contact_id", pa.int64()),
        ("type", pa.string()),
        ("channel", pa.string()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("amount", pa.float64()),
        ("currency", pa.string()),
        ("campaign", pa.string()),
        ("message_id", pa.string()),
        ("outbox_id", pa.int64()),
        ("discount_code", pa.string()),
        ("bot", pa.bool_()),
        ("machine_open", pa.bool_()),
    ]
)
BATCH_ROWS = 100_000
#: The fewest rows a row group of the history's files holds (but a month's last).
ROW_GROUP_ROWS = 100_000

#: Conditions on the events to write, given the alias of ``events`` the query reads.
Where = Callable[[Any], Sequence[ColumnElement[bool]]]
#: ``progress(done, total)``: events written so far, of ``total``.
ExportProgress = Callable[[int, int], None]


class ExportError(WinbackError):
    """The export cannot be written, or read back, where it was asked."""

    exit_code = 2


class NoExport(ExportError):
    """No export was ever written there."""


@dataclass
class ExportResult:
    """What an export wrote: ``months`` are the partitions written again."""

    path: str
    events: int
    months: list[str]
    since: date | None
    high_water: int
    machine_open_seconds: int

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"] = self.since.isoformat() if self.since else None
        return data


@dataclass(frozen=True)
class Manifest:
    """``_winback.json`` of an export."""

    high_water: int
    events: int
    machine_open_seconds: int
    #: Who wrote it (:func:`store_identity`), "" in manifests written before.
    store: str = ""
    #: The key of the event at ``high_water`` (:func:`winback.store.history.event_key`):
    #: a store restored from a backup may give that id to another event.
    last: str = ""


def open_destination(destination: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and path of ``destination``: a local folder, or a URL
    pyarrow knows (``s3://``, ``gs://``, ``hdfs://``...)."""
    if "://" in destination:
        scheme, _, rest = destination.partition("://")
        # Hadoop's names for S3, which Spark on a cluster reads, are pyarrow's s3://.
        uri = f"s3://{rest}" if scheme in ("s3a", "s3n") else destination
        try:
            found: tuple[Any, str] = pafs.FileSystem.from_uri(uri)
            return found
        except (pa.ArrowException, ValueError) as exc:
            raise ExportError(f"{destination}: {exc}") from None
    return pafs.LocalFileSystem(), str(Path(destination).expanduser().resolve())


def check_destination(destination: str, protected: list[Path]) -> None:
    """Refuse a local ``destination`` that is a file, or that is or holds one of the
    ``protected`` files (the workspace's database, secret and config): the export
    replaces the month folders it writes."""
    if "://" in destination:
        return
    target = Path(destination).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise OutputRefused(f"{destination} is a file: give a folder for the Parquet export")
    for own in protected:
        own = own.resolve()
        if own == target or target in own.parents:
            raise OutputRefused(
                f"{destination}: refusing to export there, it holds the workspace's own "
                f"{own.name}; choose a folder of its own (default: the workspace's history/)"
            )


def events_location(workspace: Workspace) -> str:
    """Where the workspace's export lives: ``[engine] events_path``, a folder relative to
    the workspace unless absolute, or an object-store URL."""
    path = workspace.config.engine.events_path
    if "://" in path:
        return path
    return str(workspace.path / Path(path).expanduser())


def store_identity(workspace: Workspace) -> str:
    """What a manifest names as its writer: a keyed hash of the workspace's secret, so a
    history written from another workspace's store is told apart."""
    return workspace.keyed_hash("winback event history")[:32]


def export_history(
    workspace: Workspace,
    destination: str | None = None,
    *,
    since: date | None = None,
    batch_rows: int = BATCH_ROWS,
    progress: ExportProgress | None = None,
) -> ExportResult:
    """Write the events (from ``since``'s month on, or all) as Parquet under
    ``destination`` (default: :func:`events_location`), partitioned by month, with the
    machine-open flag resolved."""
    destination = destination or events_location(workspace)
    check_destination(destination, workspace.own_files())
    target = Target(
        *open_destination(destination),
        workspace.config.scoring.machine_open_seconds,
        store_identity(workspace),
    )
    start = None if since is None else datetime(since.year, since.month, 1)
    if since is not None:
        _check_resolved_alike(destination, target.seconds)
    with workspace.engine.connect() as connection, connection.begin():
        high_water = stored_high_water(connection)
        before = target.months()
        written, count = target.write(
            connection,
            lambda e: (
                e.c.id <= high_water,
                *(() if start is None else (e.c.occurred_at >= start,)),
            ),
            batch_rows=batch_rows,
            progress=progress,
        )
        # What the whole history up to there holds: an export --since holds less, and
        # the next update of the workspace's history finds it so.
        below = events.c.id <= high_water
        stored = connection.execute(select(func.count()).select_from(events).where(below))
        total = int(stored.scalar_one())
        last = event_key(connection, high_water)
    # A full export is the whole history: a month no event falls in any more goes.
    if since is None:
        target.drop_months(before - written)
    target.finish(high_water, total, last)
    return ExportResult(
        path=destination,
        events=count,
        months=sorted(written),
        since=since,
        high_water=high_water,
        machine_open_seconds=target.seconds,
    )


@dataclass(frozen=True)
class Target:
    """Where an export writes: a filesystem, the folder on it, and the
    ``machine_open_seconds`` its flags are resolved with."""

    filesystem: pafs.FileSystem
    base: str
    seconds: int
    store: str = ""

    def write(
        self,
        connection: Connection,
        where: Where,
        *,
        append_after: int | None = None,
        batch_rows: int = BATCH_ROWS,
        progress: ExportProgress | None = None,
    ) -> tuple[set[str], int]:
        """Write the events for which ``where(e)`` holds (``e``: the alias of the
        ``events`` table the query reads), flags resolved; returns the months written
        and the count of events.
        The month folders written are replaced, or with ``append_after`` (an event id
        below every one written) get one more file, named after it."""
        e = events.alias("e")
        conditions = where(e)
        machine = case(
            (
                e.c.type == EventType.OPEN.value,
                machine_open_sql(e, events.alias("d"), self.seconds),
            ),
            else_=e.c.machine_open,
        )
        columns = [e.c[name] for name in SCHEMA.names if name != "machine_open"]
        query = (
            select(*columns, type_coerce(machine, Boolean).label("machine_open"))
            .where(*conditions)
            .order_by(e.c.id)
        )
        total = connection.execute(select(func.count()).select_from(e).where(*conditions))
        count = int(total.scalar_one())
        written: set[str] = set()
        done = 0

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal done
            result = connection.execute(query, execution_options={"stream_results": True})
            for rows in result.partitions(batch_rows):
                batch = _batch(rows)
                months = _months_of(batch.column("occurred_at"))
                written.update(pc.unique(months).to_pylist())
                yield batch.append_column(PARTITION, months)
                done += len(rows)
                if progress is not None:
                    progress(done, count)

        try:
            self.filesystem.create_dir(self.base, recursive=True)
            ds.write_dataset(
                batches(),
                self.base,
                schema=SCHEMA.append(pa.field(PARTITION, pa.string())),
                format="parquet",
                filesystem=self.filesystem,
                partitioning=ds.partitioning(pa.schema([(PARTITION, pa.string())]), flavor="hive"),
                basename_template=(
                    "part-{i}.parquet"
                    if append_after is None
                    else f"part-{append_after + 1}-{{i}}.parquet"
                ),
                existing_data_behavior=(
                    "delete_matching" if append_after is None else "overwrite_or_ignore"
                ),
                file_options=ds.ParquetFileFormat().make_write_options(compression="zstd"),
                # A batch spreads over its months: written as it comes, a month's row
                # groups would hold a few hundred rows each, which the engines read
                # several times slower than a few large ones.
                min_rows_per_group=ROW_GROUP_ROWS,
            )
        except (OSError, pa.ArrowException) as exc:
            raise ExportError(f"{self.base}: cannot write the event history: {exc}") from None
        if progress is not None:
            progress(count, count)
        return written, count

    def finish(self, high_water: int, events: int | None = None, last: str = "") -> int:
        """Write the manifest of a history holding every event up to ``high_water``,
        ``events`` of them (default: those its files hold), ``last`` the key of the
        event at the high water; returns that count."""
        count = self.rows() if events is None else events
        manifest = Manifest(high_water, count, self.seconds, self.store, last)
        with self.filesystem.open_output_stream(f"{self.base}/{MANIFEST}") as stream:
            stream.write(json.dumps({"format": MANIFEST_FORMAT, **asdict(manifest)}).encode())
        return count

    def rows(self) -> int:
        """The events the history's files hold (read from their footers)."""
        paths = self.paths()
        if not paths:
            return 0
        try:
            found = ds.dataset(paths, filesystem=self.filesystem, format="parquet")
            return int(found.count_rows())
        except (OSError, pa.ArrowException) as exc:
            raise ExportError(
                f"{self.base}: a file of the history cannot be read ({exc})"
            ) from None

    def paths(self) -> list[str]:
        """Every file of the history (those of :meth:`files`)."""
        return [path for month in self.files().values() for path in month]

    def months(self) -> set[str]:
        """The month partitions already there."""
        return set(self.files())

    def files(self) -> dict[str, list[str]]:
        """The month partitions already there, with the Parquet files each holds: only
        ``month=YYYY-MM/*.parquet`` right under the folder, what the engines read."""
        selector = pafs.FileSelector(self.base, allow_not_found=True, recursive=True)
        prefix = f"{PARTITION}="
        try:
            infos = self.filesystem.get_file_info(selector)
        except (OSError, pa.ArrowException) as exc:
            raise ExportError(f"{self.base}: cannot read the folder ({exc})") from None
        found: dict[str, list[str]] = {}
        for info in infos:
            parent, _, name = info.path.rpartition("/")
            if info.type == pafs.FileType.Directory and parent == self.base:
                if name.startswith(prefix):
                    found.setdefault(name.removeprefix(prefix), [])
                continue
            folder, _, month = parent.rpartition("/")
            usable = name.endswith(".parquet") and not name.startswith((".", "_"))
            if usable and folder == self.base and month.startswith(prefix):
                found.setdefault(month.removeprefix(prefix), []).append(info.path)
        return found

    def drop_months(self, months: set[str]) -> None:
        for month in sorted(months):
            self.filesystem.delete_dir(f"{self.base}/{PARTITION}={month}")


def _check_resolved_alike(destination: str, seconds: int) -> None:
    """Refuse to write some months of an export whose others were resolved with another
    machine-open window: the export would mix two rules."""
    try:
        manifest = read_manifest(destination)
    except ExportError:
        return
    if manifest.machine_open_seconds != seconds:
        raise ExportError(
            f"{destination}: its machine opens were resolved with "
            f"scoring.machine_open_seconds = {manifest.machine_open_seconds}, the workspace "
            f"says {seconds}: export everything again (without --since)"
        )


def _months_of(times: pa.Array) -> pa.Array:
    """``YYYY-MM`` of each UTC time: the head of its text, which a naive time casts to
    ten times faster than ``strftime`` formats it."""
    text = times.cast(pa.timestamp("us")).cast(pa.string())
    return pc.utf8_slice_codeunits(text, 0, 7)


def _batch(rows: Sequence[Any]) -> pa.RecordBatch:
    # A list per column by index: half the CPU time of transposing with zip(*rows).
    return pa.RecordBatch.from_arrays(
        [pa.array([row[i] for row in rows], type=field.type) for i, field in enumerate(SCHEMA)],
        schema=SCHEMA,
    )


def read_manifest(destination: str) -> Manifest:
    """The manifest of the export at ``destination``; :class:`ExportError` when there is
    none (no export was written there)."""
    filesystem, base = open_destination(destination)
    try:
        with filesystem.open_input_stream(f"{base}/{MANIFEST}") as stream:
            data = json.loads(stream.read())
    except FileNotFoundError:
        raise NoExport(
            f"{destination}: no event history exported there; run "
            f"`winback events export --parquet {destination}` first"
        ) from None
    except (OSError, ValueError) as exc:
        raise ExportError(f"{destination}/{MANIFEST}: unreadable ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ExportError(
            f"{destination}/{MANIFEST}: written by another version of winback; export again"
        )
    try:
        return Manifest(
            high_water=int(data["high_water"]),
            events=int(data["events"]),
            machine_open_seconds=int(data["machine_open_seconds"]),
            store=str(data.get("store", "")),
            last=str(data.get("last", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"{destination}/{MANIFEST}: unreadable ({exc!r})") from None
