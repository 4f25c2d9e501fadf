"""The server's one writer: a thread that owns every write to the store.

Request handlers never write. A tracking hit is put on a queue and answered at once; the
writer takes what has gathered (up to :data:`BATCH` hits) and records it in one
transaction, so SQLite sees a few hundred rows per commit instead of one commit per hit.
Unsubscribes, preference changes, survey answers and webhook deliveries are *jobs*: the
handler waits for the writer to run its job in a transaction of its own and answers only
once it is committed (an unsubscribe is done when the page says so; an ESP retries a
webhook we did not acknowledge).

:meth:`Writer.close` (the app's shutdown, so SIGTERM under uvicorn) stops taking work,
writes everything queued, and returns: no acknowledged hit is lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from winback.web.events import Hit, HitRecorder
from winback.workspace import Workspace

T = TypeVar("T")

log = logging.getLogger("winback.web")

BATCH = 500
# A failed batch (the database locked past its busy timeout, a dropped PostgreSQL
# connection) is tried again this many times before its hits are given up and logged.
RETRIES = 5


@dataclass
class _Job:
    work: Callable[[Connection], Any]
    future: Future[Any]


_STOP = object()


class WriterClosed(RuntimeError):
    """Work handed to a writer that is shutting down."""


class Writer:
    """One thread, one queue, batched transactions. ``clock`` gives the ``now`` of each
    batch (the moment refusals and audit records are dated)."""

    def __init__(self, workspace: Workspace, clock: Callable[[], datetime]) -> None:
        self.workspace = workspace
        self.clock = clock
        self.recorder = HitRecorder(workspace)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="winback-writer", daemon=True)
        self._closed = False
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def hit(self, hit: Hit) -> None:
        """Queue a tracking hit; it is written with the next batch."""
        with self._lock:
            if self._closed:
                raise WriterClosed("the server is shutting down")
            self._queue.put(hit)

    def submit(self, work: Callable[[Connection], T]) -> Future[T]:
        """Run ``work(connection)`` in the writer, in a transaction of its own; the future
        gives its result once committed (or its exception, rolled back)."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise WriterClosed("the server is shutting down")
            self._queue.put(_Job(work, future))
        return future

    def close(self) -> None:
        """Write everything queued, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            items = [self._queue.get()]
            while len(items) < BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = any(item is _STOP for item in items)
            hits = [item for item in items if isinstance(item, Hit)]
            if hits:
                self._write_hits(hits)
            for item in items:
                if isinstance(item, _Job):
                    self._run(item)

    def _write_hits(self, hits: list[Hit]) -> None:
        for attempt in range(RETRIES):
            try:
                with self.workspace.engine.begin() as connection:
                    self.recorder.record(connection, hits, self.clock())
                return
            except OperationalError:
                log.exception("writing %d tracking hits failed (attempt %d)", len(hits), attempt)
                time.sleep(0.1 * 2**attempt)
            except Exception:
                # Not a passing condition: trying again would fail the same way. The
                # writer must live on, or every later request would wait for ever.
                log.exception("gave up %d tracking hits", len(hits))
                return
        log.error("gave up %d tracking hits after %d attempts", len(hits), RETRIES)

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
