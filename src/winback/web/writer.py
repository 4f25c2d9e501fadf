"""The server's one writer: every write to the store goes through it.

Request handlers never write. A tracking hit goes to the hit journal
(:mod:`winback.web.journal`) and is answered once the journal is synced to disk; the
**hit recorder**, a process of its own that owns every write of hits, reads the journal
as it grows and records what has gathered (up to :data:`BATCH` hits) in one transaction,
so SQLite sees a few hundred rows per commit instead of one commit per hit.

Why a process and not a thread: recording a hit costs about as much Python as answering
it (matching the message, the machine-open and bot-click rules, building the row), so a
writer thread held the GIL for a large share of the time the event loop needed it, and
the hits waiting for it lived long enough to bring on the collector's full passes, which
stall every request in flight. In its own process the recorder runs on the other core;
the event loop only appends a line to the journal's group.

The recorder holds the reading ends of two pipes from the server and no writing end of
either: ``wake`` (a byte after each group written: read the journal on) and ``control``
(the marks below). When the server's process is gone, however it ended (SIGKILL, the
OOM killer), both read as ended: the recorder records the complete lines of the journal
and exits, and the forkserver that started it and multiprocessing's resource tracker,
whose only users are gone, end too. The hits it could not record are in the journal,
which the next recorder replays at its start before anything else.

Unsubscribes, preference changes, survey answers and webhook deliveries are *jobs*:
closures the handler waits for, run by a thread of the server's process in a transaction
of their own, and answered only once committed (an unsubscribe is done when the page says
so; an ESP retries a webhook we did not acknowledge). Before a job runs, the recorder
confirms it has committed every hit journaled before it (a mark with the number of the
last one), so the writer's order stays the order of arrival (a click, then the
unsubscribe it led to).

:meth:`Writer.close` (the app's shutdown, so SIGTERM under uvicorn) stops taking work,
syncs the journal, runs the queued jobs, has the recorder record everything and delete
the journal, and returns. The recorder ignores SIGINT and SIGTERM (Ctrl-C and a service
manager signal the whole process group): it stops when the server tells it to, or when
the server's process is gone. Should the recorder be gone at shutdown (the forkserver
that boots it was stopped first, or it died), the server replays the journal itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from winback.web.events import Hit, HitRecorder
from winback.web.journal import (
    Journal,
    JournalClosed,
    Segment,
    forget_segment,
    journal_directory,
    mark_recorded,
    record_segment,
    replay,
)
from winback.workspace import Workspace

T = TypeVar("T")

log = logging.getLogger("winback.web")

# Most hits in one transaction of the recorder.
BATCH = 500
# A failed batch (the database locked past its busy timeout, a dropped PostgreSQL
# connection) is tried again this many times before its hits are given up and logged.
RETRIES = 5

# The marks on the control pipe: (mark, number of the last hit journaled). The recorder
# answers each on the acks pipe once that hit is committed; after STOP it ends.
BARRIER = "barrier"
STOP = "stop"


@dataclass
class _Job:
    work: Callable[[Connection], Any]
    future: Future[Any]
    # The last hit journaled when the job came: recorded before the job runs.
    after: int


class WriterClosed(RuntimeError):
    """Work handed to a writer that is shutting down."""


class Writer:
    """The hit journal, the hit recorder's process, the jobs' thread, and the pipes
    between them.

    :attr:`unmatched` counts the hits on messages that are not in the outbox, as the
    recorder last reported it (after each job's wait)."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.unmatched = 0
        self.directory = journal_directory(workspace.path)
        # forkserver: the recorder starts from a clean single-threaded process, whatever
        # threads (and open database connections) the server's process has by then, and
        # gets only the pipe ends given to it.
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload([__name__])
        self._wake_end, self._wake = self._context.Pipe(duplex=False)
        self._control_end, self._control = self._context.Pipe(duplex=False)
        # The recorder's answers: reading gives EOFError once it is gone.
        self._acks, self._acks_end = self._context.Pipe(duplex=False)
        os.set_blocking(self._wake.fileno(), False)
        self._control_lock = threading.Lock()
        self._journal: Journal | None = None
        self._recorder: Any = None
        # Jobs, and None to stop.
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run_jobs, name="winback-writer", daemon=True)
        self._closed = False

    def start(self) -> None:
        """Open the journal and start the jobs' thread, which starts the recorder: the
        server answers at once, and the hits that come meanwhile wait in the journal
        (booting the recorder's process takes a while, longer on a busy machine)."""
        self._journal = Journal(self.directory, self._wake_recorder)
        workspace = self.workspace
        fields = (workspace.path, workspace.config, workspace.database_url, workspace.secret)
        self._recorder = self._context.Process(
            target=_record_hits,
            args=(fields, self._journal.segment, self._wake_end, self._control_end, self._acks_end),
            name="winback-hits",
            daemon=True,
        )
        self._thread.start()

    def hit(
        self,
        kind: str,
        message_id: str,
        at: datetime,
        user_agent: str | None,
        ip: str | None,
        url: str | None,
    ) -> asyncio.Future[None]:
        """Journal a tracking hit (from the event loop); await the result before
        answering: it is done once the hit is on disk."""
        if self._journal is None or self._closed:
            raise WriterClosed("the server is not running")
        try:
            return self._journal.append(kind, message_id, at, user_agent, ip, url)
        except JournalClosed:
            raise WriterClosed("the server is shutting down") from None

    def submit(self, work: Callable[[Connection], T]) -> Future[T]:
        """Run ``work(connection)`` in the writer, in a transaction of its own, after
        every hit journaled before it is committed; the future gives its result once
        committed (or its exception, rolled back)."""
        future: Future[T] = Future()
        if self._closed or self._journal is None:
            raise WriterClosed("the server is shutting down")
        self._jobs.put(_Job(work, future, self._journal.appended))
        return future

    def close(self) -> None:
        """Sync the journal, run the queued jobs, have the recorder record every hit,
        then stop both."""
        if self._closed or self._journal is None:
            return
        self._closed = True
        self._journal.close()
        self._jobs.put(None)
        self._thread.join()
        answered = self._mark(STOP, self._journal.appended)
        if self._recorder.pid is not None:  # started
            self._recorder.join()
        if not answered:
            log.warning("the hit recorder is gone: the server records the journal itself")
            self._replay()
        for end in (self._wake, self._control, self._acks):
            end.close()

    def _wake_recorder(self) -> None:
        """Tell the recorder new hits are journaled (from the journal's thread): a
        byte, or nothing when the pipe is full of wake-ups it has not read yet."""
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(self._wake.fileno(), b".")

    def _mark(self, mark: str, through: int) -> bool:
        """Send a mark and wait for its answer; False when the recorder is gone."""
        try:
            with self._control_lock:
                self._control.send((mark, through))
            self.unmatched = self._acks.recv()
        except (EOFError, BrokenPipeError):
            log.error("the hit recorder is not running: hits wait in the journal")
            return False
        return True

    def _run_jobs(self) -> None:
        try:
            self._recorder.start()
        except Exception:
            log.exception("the hit recorder did not start: hits wait in the journal")
        finally:
            # The recorder has its own copies: with these closed, it is the only reader
            # of the server's pipes and the only writer of its answers.
            for end in (self._wake_end, self._control_end, self._acks_end):
                end.close()
        stopping = False
        while not stopping:
            items = [self._jobs.get()]
            while True:
                try:
                    items.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            stopping = None in items
            jobs = [item for item in items if item is not None]
            if jobs:
                self._mark(BARRIER, jobs[-1].after)
            for job in jobs:
                self._run(job)

    def _replay(self) -> None:
        recorder = HitRecorder(self.workspace)
        replay(self.workspace.engine.begin, self.directory, _recording(recorder), BATCH)

    def _run(self, job: _Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            with self.workspace.engine.begin() as connection:
                result = job.work(connection)
        except BaseException as exc:
            job.future.set_exception(exc)
        else:
            job.future.set_result(result)


def _record_hits(
    fields: tuple[Any, ...], segment_name: str, wake: Any, control: Any, acks: Any
) -> None:
    """The hit recorder's process: replay the journal of servers gone, then record the
    server's journal as it grows, answering each mark on ``acks``, until STOP or until
    the server's process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    workspace = Workspace(*fields)
    recorder = HitRecorder(workspace)
    directory = journal_directory(workspace.path)
    # What exists now lives as long as the process: the collector's full passes need not
    # walk it again.
    gc.freeze()
    try:
        replay(workspace.engine.begin, directory, _recording(recorder), BATCH)
        try:
            follower = _Follower(recorder, directory, segment_name, wake, control, acks)
        except FileNotFoundError:
            # The server stopped before this process had booted, and recorded its
            # journal itself: nothing is left to follow.
            return
        follower.run()
    finally:
        workspace.close()


class _Follower:
    """The recorder's loop over the server's journal and marks."""

    def __init__(
        self, recorder: HitRecorder, directory: Path, name: str, wake: Any, control: Any, acks: Any
    ) -> None:
        self.recorder = recorder
        self.engine = recorder.workspace.engine
        self.record = _recording(recorder)
        self.directory = directory
        self.wake = wake
        self.control = control
        self.acks = acks
        # The server's segment is locked by the server: read without the lock.
        self.segment = Segment(name, (directory / name).open("rb"), 0)

    def run(self) -> None:
        while True:
            ready = wait([self.wake, self.control])
            if self.wake in ready and not self._woken():
                return self._server_gone()
            self._read_on()
            if self.control in ready:
                try:
                    mark, through = self.control.recv()
                except EOFError:
                    return self._server_gone()
                # Hits are numbered across the server's segments.
                while self.segment.recorded_through < through:
                    wait([self.wake])
                    if not self._woken():
                        return self._server_gone()
                    self._read_on()
                try:
                    self.acks.send(self.recorder.unmatched)
                except BrokenPipeError:
                    return self._server_gone()
                if mark == STOP:
                    with self.engine.begin() as connection:
                        forget_segment(connection, self.directory, self.segment)
                    return None

    def _woken(self) -> bool:
        """Empty the wake pipe; False when the server's end is closed."""
        try:
            return bool(os.read(self.wake.fileno(), 65536))
        except BlockingIOError:
            return True

    def _read_on(self) -> None:
        """Record what the journal holds now, following the server's new segments."""
        while True:
            record_segment(self.segment, self.record, BATCH)
            following = self.segment.next
            if following is None:
                return
            ended = self.segment
            self.segment = Segment(
                following, (self.directory / following).open("rb"), ended.recorded_through
            )
            with self.engine.begin() as connection:
                forget_segment(connection, self.directory, ended)

    def _server_gone(self) -> None:
        log.error("the server's process is gone: the hit recorder stops")
        self._read_on()


def _recording(recorder: HitRecorder) -> Callable[[str, list[Hit], int], None]:
    """Record a batch of a segment's hits and its last number in one transaction."""

    def record(segment: str, hits: list[Hit], through: int) -> None:
        # The batch's last hit is its ``now``: hits are never refusals, so no audit
        # record carries it; it only ages the bot-click rule's memory.
        now = max(hit.at for hit in hits)
        for attempt in range(RETRIES):
            try:
                with recorder.workspace.engine.begin() as connection:
                    recorder.record(connection, hits, now)
                    mark_recorded(connection, segment, through)
                return
            except OperationalError:
                log.exception("writing %d tracking hits failed (attempt %d)", len(hits), attempt)
                time.sleep(0.1 * 2**attempt)
            except Exception:
                # Not a passing condition: trying again would fail the same way. The
                # recorder must live on, or every later hit would be lost.
                log.exception("gave up %d tracking hits", len(hits))
                return
        log.error("gave up %d tracking hits after %d attempts", len(hits), RETRIES)

    return record
