"""The hit journal of ``winback serve``: a hit is acknowledged (the pixel sent, the click
redirected) only once it is on disk, so a server killed at any moment loses no hit it
answered.

The event loop appends each hit, as one JSON line, to the group being gathered, and
waits; a thread of the server writes the group to the current **segment** file and
fsyncs it (``fdatasync``), then lets every request of the group answer. While one group
is synced the next one gathers, so a busy server syncs a few hundred hits at once and an
idle one a hit at a time (group commit): a hit waits for one sync, some milliseconds.

The hit recorder (:mod:`winback.web.writer`) reads the segment as it grows, records its
hits and, in the same transaction, the number of the last one (``hit_journal``): read
again after a crash, a segment records only what was not recorded yet. Each hit's event
also carries a ``dedup_key`` made from its segment and number.

A segment is named by the time the server opened it and its process id; the server holds
an exclusive ``flock`` on it while it writes, so a segment that can be locked belongs to
no running server: the recorder replays those at start (a server that was killed), and
deletes a segment once every hit of it is recorded. Past :data:`SEGMENT_BYTES` the server
starts a new segment and ends the old one with a line naming the next. One server per
workspace.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, delete, insert, select, update

from winback.domain import EventType
from winback.store.schema import hit_journal
from winback.web.events import Hit

log = logging.getLogger("winback.web")

# A segment this large is ended and a new one begun (about 200,000 hits).
SEGMENT_BYTES = 64 * 1024 * 1024
_NEXT = "next"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# ASCII lines: a value with a lone surrogate (JSON allows one) is written escaped.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


class JournalClosed(RuntimeError):
    """A hit appended to a journal that is closing."""


def journal_directory(workspace_path: Path) -> Path:
    return workspace_path / "journal"


def hit_key(segment: str, number: int) -> bytes:
    """The ``dedup_key`` of a hit: its segment and its number there."""
    return hashlib.blake2b(f"{segment}/{number}".encode(), digest_size=16).digest()


def _lock(fd: int) -> bool:
    """Take the segment's exclusive lock; False when a running server holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class Journal:
    """The server's side: :meth:`append` from the event loop, a thread that writes and
    syncs each group, and :meth:`close`, which syncs what is left."""

    def __init__(self, directory: Path, wake: Callable[[], None]) -> None:
        self.directory = directory
        # Called after each group is written: the recorder reads on.
        self._wake = wake
        directory.mkdir(exist_ok=True)
        self.segment, self._fd = self._new_segment()
        self._size = 0
        # The number of the last hit appended (segments share the count).
        self.appended = 0
        self._lines: list[bytes] = []
        self._group: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="winback-journal", daemon=True)
        self._thread.start()

    def _new_segment(self) -> tuple[str, int]:
        name = f"hits-{time.time_ns():020d}-{os.getpid()}.jsonl"
        # Created and locked under a name no replay looks for, then renamed (the lock
        # stays with the file): a recorder replaying at that moment never sees the new
        # segment unlocked, which it would take for a dead server's and delete.
        hidden = self.directory / f"{name}.new"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _lock(fd)  # a new file: the lock is free
        os.rename(hidden, self.directory / name)
        # The new name itself must survive a crash, not only the bytes written to it.
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return name, fd

    def append(
        self, kind: str, message_id: str, at: datetime, *rest: str | None
    ) -> asyncio.Future[None]:
        """Journal one hit (``rest``: user agent, ip, url); the awaitable is done once it
        is synced to disk. Called on the event loop."""
        microseconds = (at - _EPOCH) // _MICROSECOND
        with self._ready:
            if self._closing:
                raise JournalClosed("the server is shutting down")
            self.appended += 1
            line = _ENCODE([self.appended, kind, message_id, microseconds, *rest])
            self._lines.append(line.encode("ascii") + b"\n")
            if self._group is None:
                self._loop = asyncio.get_running_loop()
                self._group = self._loop.create_future()
                self._ready.notify()
            return self._group

    def close(self) -> None:
        """Sync every hit appended, stop the thread, and let go of the segment."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._thread.join()
        os.close(self._fd)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._lines and not self._closing:
                    self._ready.wait()
                if not self._lines:
                    return
                lines, group, loop = self._lines, self._group, self._loop
                self._lines, self._group = [], None
            self._write(b"".join(lines))
            self._wake()
            if group is not None and loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(_done, group)

    def _write(self, data: bytes) -> None:
        try:
            _write_all(self._fd, data)
            os.fdatasync(self._fd)
            self._size += len(data)
            if self._size >= SEGMENT_BYTES:
                self._rotate()
        except OSError:
            # The disk is full or failing: the hits are answered all the same (a mail
            # client must get its image), and said lost here.
            log.exception("%d tracking hits could not be journaled", data.count(b"\n"))

    def _rotate(self) -> None:
        name, fd = self._new_segment()
        _write_all(self._fd, _ENCODE([_NEXT, name]).encode() + b"\n")
        os.fdatasync(self._fd)
        os.close(self._fd)
        self.segment, self._fd, self._size = name, fd, 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _done(group: asyncio.Future[None]) -> None:
    if not group.done():
        group.set_result(None)


# -- the recorder's side ----------------------------------------------------------------

# Records a batch of hits read from a segment, with the number of the last one.
RecordBatch = Callable[[str, list[Hit], int], None]


@dataclass
class Segment:
    """A segment being read: the hits after what is recorded, as they come."""

    name: str
    file: IO[bytes]
    recorded_through: int
    _partial: bytes = b""
    next: str | None = None

    def hits(self) -> Iterator[tuple[int, Hit]]:
        """The hits written since the last call, each with its number; a line not yet
        complete waits for its end (its hit is not acknowledged yet)."""
        data = self._partial + self.file.read()
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            try:
                number, *values = json.loads(line)
            except ValueError:
                log.error("journal %s: an unreadable line is skipped", self.name)
                continue
            if number == _NEXT:
                self.next = values[0]
            elif number > self.recorded_through:
                kind, message_id, at, user_agent, ip, url = values
                moment = _EPOCH + at * _MICROSECOND
                key = hit_key(self.name, number)
                yield number, Hit(EventType(kind), message_id, moment, user_agent, ip, url, key)


def open_segment(connection: Connection, directory: Path, name: str) -> Segment | None:
    """The segment ``name``, locked, from after its last recorded hit; None when a
    running server holds it."""
    file = (directory / name).open("rb")
    if not _lock(file.fileno()):
        file.close()
        return None
    through = connection.execute(
        select(hit_journal.c.recorded_through).where(hit_journal.c.segment == name)
    ).scalar_one_or_none()
    return Segment(name, file, through or 0)


def mark_recorded(connection: Connection, segment: str, through: int) -> None:
    """Note, in the transaction that records them, the hits of ``segment`` recorded."""
    done = connection.execute(
        update(hit_journal).where(hit_journal.c.segment == segment).values(recorded_through=through)
    )
    if not done.rowcount:
        connection.execute(insert(hit_journal).values(segment=segment, recorded_through=through))


def record_segment(segment: Segment, record: RecordBatch, batch_size: int) -> None:
    """Record the hits of ``segment`` written so far, ``batch_size`` at a time."""
    batch: list[Hit] = []
    last = segment.recorded_through
    for number, hit in segment.hits():
        batch.append(hit)
        last = number
        if len(batch) >= batch_size:
            record(segment.name, batch, last)
            batch = []
    if batch:
        record(segment.name, batch, last)
    segment.recorded_through = last


def forget_segment(connection: Connection, directory: Path, segment: Segment) -> None:
    """Delete a segment whose every hit is recorded, and its line in ``hit_journal``."""
    (directory / segment.name).unlink(missing_ok=True)
    segment.file.close()
    connection.execute(delete(hit_journal).where(hit_journal.c.segment == segment.name))


def replay(
    connect: Callable[[], Any], directory: Path, record: RecordBatch, batch_size: int
) -> int:
    """Record what the segments of no running server hold (a server killed, or the
    recorder of this one gone) and delete them; returns how many segments were read.
    ``connect()`` gives a transaction's connection."""
    if not directory.is_dir():
        return 0
    names = sorted(path.name for path in directory.glob("hits-*.jsonl"))
    replayed = 0
    for name in names:
        with connect() as connection:
            segment = open_segment(connection, directory, name)
        if segment is None:
            continue
        replayed += 1
        log.warning("replaying the hit journal %s", name)
        record_segment(segment, record, batch_size)
        with connect() as connection:
            forget_segment(connection, directory, segment)
    # The lines of segments deleted by a recorder killed before it could drop them.
    present = [path.name for path in directory.glob("hits-*.jsonl")]
    with connect() as connection:
        connection.execute(delete(hit_journal).where(hit_journal.c.segment.not_in(present)))
    return replayed
