"""The workspace's columnar event history, kept up to date: ``winback events compact``,
and the first step of a score on the DuckDB engine.

The history is the Parquet export of :mod:`winback.scoring.history_export` in the
workspace (``[engine] events_path``). The store stays where events land (imports,
tracking hits, webhooks); :func:`update_history` moves into the history what landed
since its high-water event id, so no writer ever waits for it:

- the new events are **appended**, one more file in each month they fall in, with their
  machine-open flag resolved by the store's own SQL (which sees every delivery);
- a new ``delivered`` event can make an open already in the history a machine open (a
  delivery reported after its open): the months of such opens are **written again**;
- the history is **written again whole** when it is missing, was resolved under another
  ``scoring.machine_open_seconds``, or holds fewer events up to its high water than the
  store does (on PostgreSQL a transaction may commit an event id below one already
  moved);
- ``compact``: the months holding more than one file are written again as one.

Events are never deleted from the store (an erasure blanks their personal columns,
which the history does not hold), so the history needs no rewrite for an erasure.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, false, func, not_, or_, select

from winback.domain import EventType
from winback.scoring.history_export import (
    BATCH_ROWS,
    ExportError,
    ExportProgress,
    Manifest,
    NoExport,
    Target,
    check_destination,
    events_location,
    open_destination,
    read_manifest,
    store_identity,
)
from winback.scoring.machine_open import delivered_before_open
from winback.store.history import event_key
from winback.store.history import high_water as stored_high_water
from winback.store.schema import events
from winback.workspace import Workspace

#: The file a command holds while it writes (or a score reads) the history.
LOCK = ".winback.lock"


@dataclass
class HistoryUpdate:
    """What :func:`update_history` did: ``mode`` is ``full`` (written again whole),
    ``incremental`` or ``none`` (nothing new)."""

    path: str
    mode: str
    reason: str
    added: int
    months_rewritten: list[str] = field(default_factory=list)
    high_water: int = 0
    events: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def history_target(workspace: Workspace) -> Target:
    """The workspace's history folder (``[engine] events_path``), refused when it is an
    object store or holds the workspace's own files."""
    location = events_location(workspace)
    if "://" in location:
        raise ExportError(
            f"[engine] events_path = {location!r}: the workspace's history is a folder of "
            "this machine; for an object store, `winback events export --parquet URL`"
        )
    check_destination(location, workspace.own_files())
    return Target(
        *open_destination(location),
        workspace.config.scoring.machine_open_seconds,
        store_identity(workspace),
    )


@contextmanager
def history_lock(target: Target, waiting: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the history folder for one command (an update, or a score's update and read);
    another waits, saying so through ``waiting``, rather than fail."""
    folder = Path(target.base)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = (folder / LOCK).open("a")
    except OSError as exc:
        raise ExportError(f"{folder}: cannot use it for the event history ({exc})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting(f"another winback command holds the event history in {folder}: waiting")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update_history(
    workspace: Workspace,
    connection: Connection | None = None,
    *,
    compact: bool = False,
    batch_rows: int = BATCH_ROWS,
    progress: ExportProgress | None = None,
    waiting: Callable[[str], None] | None = None,
    locked: bool = False,
) -> HistoryUpdate:
    """Bring the workspace's history up to the store's latest event, reading the store
    through ``connection`` (the caller's transaction, so a score sees the history of its
    own snapshot) or a transaction of its own. ``locked``: the caller holds
    :func:`history_lock` already."""
    target = history_target(workspace)
    with ExitStack() as stack:
        if not locked:
            stack.enter_context(history_lock(target, waiting))
        if connection is None:
            connection = stack.enter_context(workspace.engine.connect())
            stack.enter_context(connection.begin())
        return _update(connection, target, compact, batch_rows, progress)


def _update(
    connection: Connection,
    target: Target,
    compact: bool,
    batch_rows: int,
    progress: ExportProgress | None,
) -> HistoryUpdate:
    """:func:`update_history` with the history held and the store's transaction open."""
    location = target.base
    high_water = stored_high_water(connection)
    manifest, reason = _manifest(location)
    if manifest is not None:
        reason = stale_reason(connection, manifest, target, high_water)
    if reason or manifest is None:
        before = target.months()
        written, _ = target.write(
            connection, lambda e: (e.c.id <= high_water,), batch_rows=batch_rows, progress=progress
        )
        target.drop_months(before - written)
        count = target.finish(high_water, last=event_key(connection, high_water))
        return HistoryUpdate(location, "full", reason, count, sorted(written), high_water, count)
    old = manifest.high_water
    late = _late_delivery_months(connection, old, high_water, target.seconds)
    _rewrite_months(connection, target, late, high_water, batch_rows, progress)
    if high_water > old:
        target.write(
            connection,
            lambda e: (e.c.id > old, e.c.id <= high_water, not_(_in_months(e, late))),
            append_after=old,
            batch_rows=batch_rows,
            progress=progress,
        )
    merged: set[str] = set()
    if compact:
        merged = {month for month, files in target.files().items() if len(files) > 1}
        _rewrite_months(connection, target, merged, high_water, batch_rows, progress)
    if high_water == old and not late and not merged:
        # Nothing written: the manifest, its files just counted, stands.
        return HistoryUpdate(location, "none", "", 0, [], high_water, manifest.events)
    count = target.finish(high_water, last=event_key(connection, high_water))
    landed = and_(events.c.id > old, events.c.id <= high_water)
    added = int(connection.execute(select(func.count()).where(landed)).scalar_one())
    mode = "incremental" if added or late or merged else "none"
    rewritten = sorted(late | merged)
    return HistoryUpdate(location, mode, "", added, rewritten, high_water, count)


def _rewrite_months(
    connection: Connection,
    target: Target,
    months: set[str],
    high_water: int,
    batch_rows: int,
    progress: ExportProgress | None,
) -> None:
    """Write ``months`` again whole, each as one file."""
    if months:
        target.write(
            connection,
            lambda e: (_in_months(e, months), e.c.id <= high_water),
            batch_rows=batch_rows,
            progress=progress,
        )


def _in_months(e: Any, months: set[str]) -> Any:
    """The events of ``e`` that fall in ``months`` (none when there is no month)."""
    bounds = [_month_range(month) for month in sorted(months)]
    return or_(false(), *(and_(e.c.occurred_at >= a, e.c.occurred_at < b) for a, b in bounds))


def _manifest(location: str) -> tuple[Manifest | None, str]:
    """The history's manifest, or None and why."""
    try:
        return read_manifest(location), ""
    except NoExport:
        return None, "no event history yet"
    except ExportError as exc:
        return None, str(exc)


def stale_reason(
    connection: Connection, manifest: Manifest, target: Target, high_water: int
) -> str:
    """Why the history must be written again whole, or ``""``. Its files are counted
    against the manifest: an export ``--since`` into the same folder writes a manifest
    up to the newest event while an older month may lack a backfill."""
    if manifest.store != target.store:
        return "it was written from another workspace's database"
    if manifest.machine_open_seconds != target.seconds:
        return (
            f"its machine opens were resolved with scoring.machine_open_seconds = "
            f"{manifest.machine_open_seconds}, the workspace says {target.seconds}"
        )
    if high_water < manifest.high_water:
        return "the store's events end below its high water (a database restored or recreated)"
    if manifest.last and event_key(connection, manifest.high_water) != manifest.last:
        return (
            "the store's event at its high water is another one (a database restored or recreated)"
        )
    try:
        held = target.rows()
    except ExportError as exc:
        return str(exc)
    if held != manifest.events:
        return "its files do not hold the events its manifest names"
    if connection.dialect.name != "sqlite":
        # SQLite gives ids in the order its one writer commits; PostgreSQL's sequence
        # does not, so an id below the high water may commit after it was moved.
        below = events.c.id <= manifest.high_water
        stored = connection.execute(select(func.count()).select_from(events).where(below))
        if int(stored.scalar_one()) != manifest.events:
            return "the store holds other events below the history's high water"
    return ""


def _late_delivery_months(
    connection: Connection, old: int, high_water: int, seconds: int
) -> set[str]:
    """The months of the opens already in the history (ids up to ``old``) that a
    delivery landed since makes machine opens: they are written again."""
    opened = events.alias("o")
    delivered = events.alias("d")
    query = (
        select(opened.c.occurred_at)
        .select_from(delivered)
        .join(
            opened,
            and_(*delivered_before_open(delivered, opened, seconds, sought="opened")),
        )
        .where(
            delivered.c.id > old,
            delivered.c.id <= high_water,
            delivered.c.type == EventType.DELIVERED.value,
            opened.c.id <= old,
            opened.c.type == EventType.OPEN.value,
            opened.c.machine_open.is_(None),
        )
    )
    return {f"{at:%Y-%m}" for at in connection.execute(query).scalars()}


def _month_range(month: str) -> tuple[datetime, datetime]:
    """The first instant of ``month`` (``YYYY-MM``, UTC) and of the next."""
    year, number = (int(part) for part in month.split("-"))
    start = datetime(year, number, 1)
    return start, datetime(year + number // 12, number % 12 + 1, 1)
