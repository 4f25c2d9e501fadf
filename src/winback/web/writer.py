"""The server's one writer: every write to the store goes through it.

Request handlers never write. A tracking hit is answered at once and handed, as a compact
tuple, to the **hit recorder**: a process of its own that owns every write of hits. It
takes what has gathered (up to :data:`BATCH` hits) and records it in one transaction, so
SQLite sees a few hundred rows per commit instead of one commit per hit.

Why a process and not a thread: recording a hit costs about as much Python as answering
it (some 70 µs: matching the message, the machine-open and bot-click rules, building the
row), so a writer thread held the GIL for a large share of the time the event loop
needed it, and the hits waiting for it lived long enough to bring on the collector's
full passes, which stall every request in flight. Under wrk the loop stalled for tens to
hundreds of milliseconds (``bench/tracking.py``, README). In its own process the
recorder runs on the other core, and the event loop only appends a tuple to a list;
every few milliseconds (or :data:`SEND_HITS` hits) the list goes to the recorder through
a :class:`multiprocessing.Queue` (pickled by the queue's feeder thread).

Unsubscribes, preference changes, survey answers and webhook deliveries are *jobs*:
closures the handler waits for, run by a thread of the server's process in a transaction
of their own, and answered only once committed (an unsubscribe is done when the page says
so; an ESP retries a webhook we did not acknowledge). Before a job runs, the recorder
confirms it has committed every hit sent before it, so the writer's order stays the order
of arrival (a click, then the unsubscribe it led to).

:meth:`Writer.close` (the app's shutdown, so SIGTERM under uvicorn) stops taking work,
runs the queued jobs, has the recorder write everything it was sent, and returns: no
acknowledged hit is lost. The recorder ignores SIGINT and SIGTERM (Ctrl-C and a service
manager signal the whole process group): it stops when the server tells it to, or when
the server's process is gone. Should the recorder be gone at shutdown (the forkserver
that boots it was stopped first, or it died), the server writes what is left in the
queue itself.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from winback.domain import EventType
from winback.web.events import Hit, HitRecorder
from winback.workspace import Workspace

T = TypeVar("T")

log = logging.getLogger("winback.web")

# Most hits in one transaction of the recorder.
BATCH = 500
# The event loop sends its hits to the recorder when this many have gathered, or
# SEND_SECONDS after the first of them: a hit is in the store a few milliseconds after
# its answer, and the queue carries one message per few hundred hits.
SEND_HITS = 256
SEND_SECONDS = 0.005
# A failed batch (the database locked past its busy timeout, a dropped PostgreSQL
# connection) is tried again this many times before its hits are given up and logged.
RETRIES = 5
# How often the idle recorder looks whether the server's process is still there.
POLL_SECONDS = 1.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# A hit as it travels to the recorder: (kind, message_id, microseconds since the epoch,
# user agent, ip, url). The recorder's queue carries lists of them, and marks: the
# recorder answers each mark on the acks pipe once every hit sent before it is committed;
# after STOP it ends.
HitTuple = tuple[str, str, int, str | None, str | None, str | None]
BARRIER = "barrier"
STOP = "stop"


@dataclass
class _Job:
    work: Callable[[Connection], Any]
    future: Future[Any]


class WriterClosed(RuntimeError):
    """Work handed to a writer that is shutting down."""


class Writer:
    """The hit recorder's process, the jobs' thread, and the queues to them.

    :attr:`unmatched` counts the hits on messages that are not in the outbox, as the
    recorder last reported it (after each job's wait)."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.unmatched = 0
        # forkserver: the recorder starts from a clean single-threaded process, whatever
        # threads (and open database connections) the server's process has by then.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        self._hits: Any = context.Queue()
        # The recorder's answers come back on a pipe of which it holds the only writing
        # end: reading it gives EOFError once the recorder is gone, however it ended
        # (its exit code is the forkserver's to report, and a SIGTERM to the whole
        # process group ends the forkserver).
        self._acks, self._acks_end = context.Pipe(duplex=False)
        fields = (workspace.path, workspace.config, workspace.database_url, workspace.secret)
        self._recorder = context.Process(
            target=_record_hits,
            args=(fields, self._hits, self._acks_end),
            name="winback-hits",
            daemon=True,
        )
        # Jobs, and None to stop.
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run_jobs, name="winback-writer", daemon=True)
        self._pending: list[HitTuple] = []
        self._closed = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the jobs' thread, which starts the recorder: the server answers at once,
        and the hits that come meanwhile wait in the queue (booting the recorder's
        process takes a second or two, more on a busy machine)."""
        self._thread.start()

    def hit(self, hit: Hit) -> None:
        """Queue a tracking hit (from the event loop); it is written within milliseconds."""
        at = (hit.at - _EPOCH) // _MICROSECOND
        with self._lock:
            if self._closed:
                raise WriterClosed("the server is shutting down")
            self._pending.append(
                (hit.kind.value, hit.message_id, at, hit.user_agent, hit.ip, hit.url)
            )
            waiting = len(self._pending)
        if waiting >= SEND_HITS:
            self._send()
        elif waiting == 1:
            asyncio.get_running_loop().call_later(SEND_SECONDS, self._send)

    def submit(self, work: Callable[[Connection], T]) -> Future[T]:
        """Run ``work(connection)`` in the writer, in a transaction of its own, after
        every hit queued before it is committed; the future gives its result once
        committed (or its exception, rolled back)."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise WriterClosed("the server is shutting down")
            # The hits first: the job's barrier must follow them in the recorder's queue.
            self._send_pending()
            self._jobs.put(_Job(work, future))
        return future

    def close(self) -> None:
        """Run the queued jobs, have the recorder write every hit, then stop both."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._send()
        self._jobs.put(None)
        self._thread.join()
        self._hits.put(STOP)
        answered = self._confirmed()
        if self._recorder.pid is not None:  # started
            self._recorder.join()
        if not answered:
            self._record_leftovers()
        self._hits.close()
        self._hits.join_thread()
        # uvicorn ends the process by raising SIGTERM again, which skips multiprocessing's
        # exit handlers: dropping the queues (and the process, which holds them as its
        # arguments) frees their semaphores now, or the resource tracker would report
        # them leaked.
        del self._hits, self._acks, self._recorder

    def _send(self) -> None:
        with self._lock:
            self._send_pending()

    def _send_pending(self) -> None:
        # Called with the lock held, so batches and barriers enter the queue in order.
        if self._pending:
            self._hits.put(self._pending)
            self._pending = []

    def _run_jobs(self) -> None:
        try:
            self._recorder.start()
        except Exception:
            log.exception("the hit recorder did not start: hits are not recorded")
        finally:
            self._acks_end.close()  # the recorder has its own copy
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
                self._hits.put(BARRIER)
                self._confirmed()
            for job in jobs:
                self._run(job)

    def _confirmed(self) -> bool:
        """Wait for the recorder's answer to the one mark in flight (every hit sent
        before it is committed); False when the recorder is gone."""
        try:
            self.unmatched = self._acks.recv()
        except EOFError:
            log.error("the hit recorder is not running: hits are not recorded")
            return False
        return True

    def _record_leftovers(self) -> None:
        """The recorder is gone (it never started: the forkserver booting it was
        stopped; or it died): write here the hits still in its queue, as it would."""
        log.warning("writing the hits left in the hit recorder's queue")
        # Killed while it waited for hits (SIGKILL, the OOM killer), the recorder left the
        # queue's read lock taken for good, and every read here would time out: nobody
        # else reads this queue, so the lock is freed (taken if it was free, released).
        self._hits._rlock.acquire(block=False)
        self._hits._rlock.release()
        _record_queue(
            HitRecorder(self.workspace), self._hits, lambda _unmatched: None, lambda: True
        )

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


def _record_hits(fields: tuple[Any, ...], hits: Any, acks: Any) -> None:
    """The hit recorder's process: write what the server sends, answering each mark on
    ``acks``, until STOP or until the server's process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    workspace = Workspace(*fields)
    recorder = HitRecorder(workspace)
    parent = multiprocessing.parent_process()
    # What exists now lives as long as the process: the collector's full passes need not
    # walk it again.
    gc.freeze()

    def server_gone() -> bool:
        gone = parent is not None and not parent.is_alive()
        if gone:
            log.error("the server's process is gone: the hit recorder stops")
        return gone

    try:
        _record_queue(recorder, hits, acks.send, server_gone)
    finally:
        workspace.close()


def _record_queue(
    recorder: HitRecorder,
    hits: Any,
    answer: Callable[[int], object],
    gone: Callable[[], bool],
) -> None:
    """Write the hits that come on ``hits``, up to :data:`BATCH` per transaction, and
    ``answer`` each mark with the count of unmatched hits once every hit sent before it
    is committed; until STOP, or until ``gone()`` says, after :data:`POLL_SECONDS` with
    nothing new, that nothing more will come. The recorder's loop, and the server's
    when the recorder is gone."""
    stopping = False
    while not stopping:
        try:
            items = [hits.get(timeout=POLL_SECONDS)]
        except queue.Empty:
            if gone():
                return
            continue
        batch: list[Hit] = []
        while True:
            item = items[-1]
            if isinstance(item, list):
                batch.extend(_hit(row) for row in item)
            if item == STOP or len(batch) >= BATCH:
                break
            try:
                items.append(hits.get_nowait())
            except queue.Empty:
                break
        if batch:
            _write_hits(recorder, batch)
        for item in items:
            if not isinstance(item, list):
                answer(recorder.unmatched)
        stopping = items[-1] == STOP


def _hit(row: HitTuple) -> Hit:
    kind, message_id, at, user_agent, ip, url = row
    return Hit(EventType(kind), message_id, _EPOCH + at * _MICROSECOND, user_agent, ip, url)


def _write_hits(recorder: HitRecorder, hits: list[Hit]) -> None:
    # The batch's last hit is its ``now``: hits are never refusals, so no audit record
    # carries it; it only ages the bot-click rule's memory.
    now = max(hit.at for hit in hits)
    for attempt in range(RETRIES):
        try:
            with recorder.workspace.engine.begin() as connection:
                recorder.record(connection, hits, now)
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
