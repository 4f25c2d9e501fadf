"""What keeps dispatch safe from crashes and from itself: the lock that lets one
dispatcher run at a time, and the flight log, which says which claimed messages were
handed to a channel and what the server answered, written down as it happens.

The outbox moves a whole claim to ``sending`` in one commit before the channel gets it
(see :mod:`winback.journeys.dispatcher`); the outcomes come back to the database one batch
later. In between, this log is the record: a line when a message is about to be handed
over (:meth:`FlightLog.started`), a line when the server answers
(:meth:`FlightLog.finished`). A dispatcher killed at any moment leaves, for each row
still ``sending``, one of three facts: never started (nothing of it reached the server:
it goes back to the queue), answered (the answer is recorded as if the batch had
landed), or started and not answered (it may have gone out: ``unknown``). So a crash
leaves in doubt only the messages on the wire at that instant, at most one per SMTP
connection, not the whole claim.

Each line is one ``write`` to a file opened in append mode: the kernel keeps what was
written when the process dies, without an ``fsync`` per message. What a machine crash
would lose is detected instead: the log starts with the kernel's boot id, and a log of
another boot (or none, or a damaged one) is not trusted; then every ``sending`` row is
``unknown``, as before this log existed. The log names outbox ids only, no personal
data, and is emptied at the start of every run, once the previous one's rows are
settled.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from winback.channels import (
    BatchResult,
    ChannelError,
    OutgoingMessage,
    PermanentFailure,
    Sent,
    TemporaryFailure,
    UnknownOutcome,
)
from winback.domain import EventType
from winback.errors import WinbackError
from winback.workspace import Workspace

FLIGHT_LOG = "dispatch.flight"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str | None:
    """The kernel's id of this boot (Linux), or None where there is none."""
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


class FlightLog:
    """The log of one dispatch run, emptied when it is opened (call :func:`read_flight`
    before). Thread-safe: every record is one ``write`` on an ``O_APPEND`` descriptor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        self._write({"boot": boot_id()})

    def _write(self, record: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())

    def started(self, message: OutgoingMessage) -> None:
        self._write({"id": message.outbox_id})

    def finished(self, message: OutgoingMessage, result: BatchResult) -> None:
        self._write({"id": message.outbox_id, **_encode(result)})

    def close(self) -> None:
        os.close(self._fd)


@dataclass(frozen=True)
class Flight:
    """What a log says of the messages it names: per outbox id, the server's answer, or
    None when the message was started and not answered. An id it does not name was never
    handed over."""

    outcomes: dict[int, BatchResult | None]


def read_flight(path: Path) -> Flight | None:
    """The facts of the log at ``path``, or None when it cannot be trusted: missing,
    damaged, written before the last boot, or on a system without a boot id."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    try:
        header, *records = (json.loads(line) for line in lines)
    except ValueError:  # also: no header line at all
        return None
    current = boot_id()
    if not isinstance(header, dict) or current is None or header.get("boot") != current:
        return None
    outcomes: dict[int, BatchResult | None] = {}
    try:
        for record in records:
            # A later line about the same id (a retry in the same run) is the news.
            outcomes[record["id"]] = _decode(record) if "r" in record else None
    except (TypeError, KeyError, ValueError):
        return None
    return Flight(outcomes)


def _encode(result: BatchResult) -> dict[str, Any]:
    if isinstance(result, Sent):
        return {"r": "sent", "provider": result.provider_id, "parts": result.parts}
    if isinstance(result, TemporaryFailure):
        wait = result.retry_after.total_seconds() if result.retry_after else None
        return {"r": "retry", "reason": result.reason, "code": result.code, "wait": wait}
    if isinstance(result, PermanentFailure):
        event = result.event.value if result.event else None
        return {"r": "failed", "reason": result.reason, "code": result.code, "event": event}
    if isinstance(result, UnknownOutcome):
        return {"r": "unknown", "reason": result.reason}
    return {"r": "stopped", "reason": str(result)}


def _decode(record: dict[str, Any]) -> BatchResult:
    kind, reason = record["r"], record.get("reason") or ""
    if kind == "sent":
        return Sent(provider_id=record.get("provider"), parts=record.get("parts") or 1)
    if kind == "retry":
        wait = record.get("wait")
        return TemporaryFailure(
            reason, code=record.get("code"), retry_after=timedelta(seconds=wait) if wait else None
        )
    if kind == "failed":
        event = record.get("event")
        return PermanentFailure(
            reason, code=record.get("code"), event=EventType(event) if event else None
        )
    if kind == "unknown":
        return UnknownOutcome(reason)
    return ChannelError(reason)


LOCK_FILE = "dispatch.lock"


class DispatchBusy(WinbackError):
    """Another dispatcher holds the workspace's lock."""

    exit_code = 8


@contextmanager
def dispatch_lock(workspace: Workspace) -> Iterator[None]:
    """Hold the workspace's dispatch lock; the kernel drops it when the process dies."""
    path = workspace.path / LOCK_FILE
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DispatchBusy(
                f"another `winback dispatch` is running on the workspace "
                f"{workspace.path.resolve()} (it holds {path.resolve()}); wait for it to "
                "finish, or run this one later"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
