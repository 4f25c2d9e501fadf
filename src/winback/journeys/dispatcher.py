"""Dispatch: send the outbox through the channels, at most once per message.

An outbox row goes ``queued -> sending -> sent | failed | unknown`` (or ``cancelled``
when the contact may no longer be written to). Messages go in batches of the channel's
``dispatch_batch`` (``[email]`` / ``[sms]``, 100 by default). A batch is checked and
rendered while the previous one is on the wire (the channel sends it in a worker thread;
SMTP keeps several messages in flight on several connections); then one transaction
records the previous batch's outcomes and moves the new one to ``sending``, with the
rendered messages and their Message-IDs, committed *before* the channel is called.
While a batch is on the wire, the flight log (:mod:`winback.journeys.flight`) notes each
message as it is handed over and as the server answers it. A dispatcher killed at any
moment leaves at most one batch in ``sending``; the next run settles it from the log
(:mod:`winback.journeys.recovery`): the ones never handed over go back to the queue, the
answered ones get their answer, and only the ones on the wire at the kill (at most one
per SMTP connection) become ``unknown`` (listed by ``winback outbox --unknown``), never
sent again by themselves. Only one dispatcher runs at a time per workspace (a lock file), so a
``sending`` row found at the start can only be a leftover of a dead one. The queries
of the outbox (the due batch, the claim) are in :mod:`winback.journeys.outbox`.

Besides the steps of journeys, the outbox carries the retention purge's last question
(``retention-ask``, no journey), rendered here like a step.

A temporary failure goes back to ``queued`` with a later ``due_at``; a permanent one is
``failed``, and a refused address (SMTP 5xx) becomes a hard bounce event and a
suppression. Every outcome leaves an audit record.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, update

from winback.channels import (
    BatchResult,
    ChannelError,
    OutgoingMessage,
    PermanentFailure,
    Sender,
    Sent,
    TemporaryFailure,
    send_batch,
    sender_for,
)
from winback.clock import to_db
from winback.compliance.audit import audit_row, record
from winback.compliance.refusals import REFUSAL_EVENTS
from winback.compliance.suppression import can_receive
from winback.domain import Channel, EventType
from winback.errors import WinbackError
from winback.events import record_events
from winback.journeys.compose import Composer, Unsendable
from winback.journeys.engine import TickResult, tick
from winback.journeys.flight import FLIGHT_LOG, Flight, FlightLog, dispatch_lock, read_flight
from winback.journeys.outbox import CONTENT, Prepared, claim, due_messages, suppressed_of
from winback.journeys.recovery import settle
from winback.store.chunks import chunks
from winback.store.contacts import dedup_key
from winback.store.schema import outbox
from winback.workspace import Workspace

MAX_ATTEMPTS = 5
BATCH = 1000


@dataclass
class DispatchResult:
    sent: int = 0
    failed: int = 0
    retry: int = 0
    unknown: int = 0
    cancelled: int = 0
    # Rows a dead dispatcher left `sending`: in doubt, and settled from its flight log.
    recovered_unknown: int = 0
    recovered: int = 0
    stopped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Dispatcher:
    def __init__(
        self,
        workspace: Workspace,
        now: datetime,
        senders: dict[str, Sender],
        stack: ExitStack,
        dry_run: bool,
    ) -> None:
        self.workspace = workspace
        self.engine = workspace.engine
        self.now = now
        self.senders = senders
        self.stack = stack
        self.dry_run = dry_run
        self.composer = Composer(workspace, now)
        self.result = DispatchResult()
        self.flight: FlightLog | None = None
        self.blocked: set[tuple[str, str]] = set()
        # One worker sends a batch while this thread renders and claims the next.
        self.pool = stack.enter_context(
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="winback-dispatch")
        )

    def recover(self, connection: Connection, flight: Flight | None) -> None:
        """Settle the rows a dead dispatcher left in ``sending``
        (:func:`~winback.journeys.recovery.settle`), recording the outcomes its flight
        log gives as any batch's, apart from this run's own counts."""
        stuck = settle(connection, flight)
        if stuck is None:
            return
        ours, self.result = self.result, DispatchResult()
        try:
            self.record_outcomes(connection, stuck.claimed, stuck.results)
        finally:
            settled, self.result = self.result, ours
        self.result.recovered_unknown = settled.unknown
        self.result.recovered = stuck.rows - settled.unknown

    def sender(self, channel: str) -> Sender:
        if channel not in self.senders:
            sender = sender_for(self.workspace, Channel(channel), dry_run=self.dry_run)
            self.stack.callback(sender.close)
            self.senders[channel] = sender
        return self.senders[channel]

    def batch(self, after_id: int) -> list[dict[str, Any]]:
        """The next queued rows due now, after ``after_id``; notes which of their
        addresses are suppressed."""
        with self.engine.connect() as connection:
            rows = due_messages(connection, self.now, after_id, BATCH)
            self.blocked = suppressed_of(connection, self.workspace, rows)
        return rows

    def run(self) -> DispatchResult:
        """Render the next batch while the previous one is on the wire, then, in one
        transaction, record the previous one's outcomes and claim the next: one commit
        per batch that matters (rendering commits only when it wrote something)."""
        last = 0
        flight: _Flight | None = None
        try:
            while not self.result.stopped and (rows := self.batch(last)):
                last = rows[-1]["id"]
                for channel, piece in self.pieces(rows):
                    if self.result.stopped:
                        break
                    sender = self.sender(channel)
                    # Its own transaction, so the database is not held while the
                    # previous batch is on the wire (it writes only cancellations,
                    # failures and coupon codes).
                    with self.engine.begin() as connection:
                        ready = self.prepare(connection, piece)
                    landing, flight = flight, None
                    results = landing.future.result() if landing is not None else []
                    with self.engine.begin() as connection:
                        if landing is not None:
                            self.record_outcomes(connection, landing.claimed, results)
                        # A channel that stopped leaves the prepared ones queued.
                        claimed = [] if self.result.stopped else claim(connection, ready)
                    if claimed:
                        messages = [
                            OutgoingMessage.from_outbox({**row, **content})
                            for row, content in claimed
                        ]
                        future = self.pool.submit(
                            send_batch, sender, messages, progress=self.flight
                        )
                        flight = _Flight(claimed, future)
        finally:
            if flight is not None:
                self.land(flight)
        return self.result

    def pieces(self, rows: list[dict[str, Any]]) -> Iterator[tuple[str, Sequence[dict[str, Any]]]]:
        """The rows by channel, in claims of the channel's ``dispatch_batch``."""
        by_channel: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_channel.setdefault(row["channel"], []).append(row)
        config = self.workspace.config
        for channel, group in by_channel.items():
            size = (config.sms if channel == "sms" else config.email).dispatch_batch
            for piece in chunks(group, size):
                yield channel, piece

    def land(self, flight: _Flight) -> None:
        """Wait for the outcomes of a batch handed to its channel and record them."""
        results = flight.future.result()
        with self.engine.begin() as connection:
            self.record_outcomes(connection, flight.claimed, results)

    def refusal(self, row: Mapping[str, Any]) -> str | None:
        """Why this message may not go out any more, or None: the last line of defence."""
        channel = row["channel"]
        address = row["contact_email"] if channel == "email" else row["contact_phone"]
        status = row["email_status"] if channel == "email" else row["sms_status"]
        if row["erased_at"] is not None:
            return "the contact was erased"
        if row["enrollment_status"] not in (None, "active"):
            return f"the enrollment ended ({row['enrollment_status']})"
        if not can_receive(status, address):
            return f"the {channel} status is {status}" if address else f"no {channel} address"
        if (channel, address) in self.blocked:
            return f"the {channel} address is suppressed"
        return None

    def prepare(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> list[Prepared]:
        """Check and render ``rows``: those that may go out, with their content. The
        others are cancelled or failed, in the caller's transaction."""
        ready: list[Prepared] = []
        for row in rows:
            refusal = self.refusal(row)
            if refusal is not None:
                self.finish(connection, row, "cancelled", refusal, action="cancel")
                self.result.cancelled += 1
                continue
            if row["body_text"] is None:
                try:
                    content = self.composer.content(connection, row)
                except (Unsendable, WinbackError) as exc:
                    self.finish(connection, row, "failed", str(exc), action="fail")
                    self.result.failed += 1
                    continue
            else:  # a retry after a temporary failure: the very same message again
                content = {key: row[key] for key in CONTENT}
            ready.append((row, content))
        return ready

    def record_outcomes(
        self,
        connection: Connection,
        claimed: Sequence[Prepared],
        results: Sequence[BatchResult],
    ) -> None:
        """Record what became of a batch: the sent ones in three statements, the rare
        others one by one."""
        sent: list[tuple[Mapping[str, Any], dict[str, Any], Sent]] = []
        for (row, content), outcome in zip(claimed, results, strict=True):
            if isinstance(outcome, Sent):
                sent.append((row, content, outcome))
            elif isinstance(outcome, ChannelError):
                # Nothing was sent and nothing more can be: back to the queue, stop here.
                connection.execute(
                    update(outbox)
                    .where(outbox.c.id == row["id"])
                    .values(status="queued", error=str(outcome))
                )
                self.result.stopped = self.result.stopped or str(outcome)
            else:
                self.record_outcome(connection, row, content, outcome)
        if not sent:
            return
        connection.execute(
            update(outbox)
            .where(outbox.c.id == bindparam("sent_id"))
            .values(status="sent", sent_at=to_db(self.now), error=None),
            [
                {"sent_id": row["id"], "provider_id": outcome.provider_id}
                for row, _, outcome in sent
            ],
        )
        record_events(
            connection,
            self.workspace,
            [self.event_row(row, content, EventType.SENT) for row, content, _ in sent],
            now=self.now,
            actor="dispatch",
        )
        record(connection, (self.audit_row(row, "send", None) for row, _, _ in sent))
        self.result.sent += len(sent)

    def record_outcome(
        self,
        connection: Connection,
        row: Mapping[str, Any],
        content: Mapping[str, Any],
        outcome: Any,
    ) -> None:
        """Record an outcome other than sent: a retry later, a failure, or unknown."""
        outbox_id = row["id"]
        if isinstance(outcome, TemporaryFailure) and row["attempts"] + 1 < MAX_ATTEMPTS:
            wait = outcome.retry_after or timedelta(minutes=5 * 2 ** row["attempts"])
            connection.execute(
                update(outbox)
                .where(outbox.c.id == outbox_id)
                .values(status="queued", due_at=to_db(self.now + wait), error=outcome.reason)
            )
            self.audit(connection, row, "retry", outcome.reason)
            self.result.retry += 1
        elif isinstance(outcome, TemporaryFailure | PermanentFailure):
            self.finish(connection, row, "failed", outcome.reason, action="fail")
            self.result.failed += 1
            event = getattr(outcome, "event", None)
            if event in REFUSAL_EVENTS:
                record_events(
                    connection,
                    self.workspace,
                    [self.event_row(row, content, event)],
                    now=self.now,
                    actor="dispatch",
                )
        else:
            self.finish(connection, row, "unknown", outcome.reason, action="unknown")
            self.result.unknown += 1

    def finish(
        self,
        connection: Connection,
        row: Mapping[str, Any],
        status: str,
        reason: str,
        *,
        action: str,
    ) -> None:
        connection.execute(
            update(outbox).where(outbox.c.id == row["id"]).values(status=status, error=reason)
        )
        self.audit(connection, row, action, reason)

    def audit(
        self, connection: Connection, row: Mapping[str, Any], action: str, reason: str | None
    ) -> None:
        record(connection, [self.audit_row(row, action, reason)])

    def audit_row(self, row: Mapping[str, Any], action: str, reason: str | None) -> dict[str, Any]:
        return audit_row(
            at=self.now,
            actor="dispatch",
            action=action,
            contact_id=row["contact_id"],
            reason=reason,
            details={
                "outbox": row["id"],
                "journey": row["journey"],
                "step": row["step_id"],
                "channel": row["channel"],
            },
        )

    def event_row(
        self, row: Mapping[str, Any], content: Mapping[str, Any], kind: EventType
    ) -> dict[str, Any]:
        """What happened to the message, as an event of the contact; the key makes a
        second record of the same fact impossible."""
        return {
            "contact_id": row["contact_id"],
            "type": kind.value,
            "channel": row["channel"],
            "occurred_at": to_db(self.now),
            "campaign": row["journey"],
            "message_id": content["message_id"],
            "outbox_id": row["id"],
            "source": "dispatch",
            "dedup_key": dedup_key("outbox", row["id"], kind.value),
        }


@dataclass
class _Flight:
    """A claimed batch on its way: the rows, what was sent, and the outcomes to come."""

    claimed: Sequence[Prepared]
    future: Future[list[BatchResult]]


def dispatch(
    workspace: Workspace,
    *,
    now: datetime,
    dry_run: bool = False,
    senders: Mapping[str, Sender] | None = None,
) -> DispatchResult:
    """Send every queued message due at ``now``. ``senders`` (by channel name) replaces
    the configured channels; ``dry_run`` writes files instead of sending. A channel that
    cannot work at all stops the run: the result's ``stopped`` says why, and the rest of
    the outbox stays queued for the next run. Then keeps the journeys' results for the
    dashboard."""
    from winback.reports.aggregates import refresh_journeys  # reports read what sends write

    with dispatch_lock(workspace), ExitStack() as stack:
        dispatcher = _Dispatcher(workspace, now, dict(senders or {}), stack, dry_run)
        path = workspace.path / FLIGHT_LOG
        with workspace.engine.begin() as connection:
            dispatcher.recover(connection, read_flight(path))
        # Emptied only now that the rows it speaks of are settled.
        dispatcher.flight = stack.enter_context(closing(FlightLog(path)))
        result = dispatcher.run()
        with workspace.engine.begin() as connection:
            refresh_journeys(connection, workspace.config, now)
        return result


def tick_and_dispatch(
    workspace: Workspace, *, now: datetime, dry_run: bool = False
) -> tuple[TickResult, DispatchResult]:
    """``winback run``, for cron: the tick, then the dispatch of what is due."""
    ticked = tick(workspace, now=now, keep_results=False)
    return ticked, dispatch(workspace, now=now, dry_run=dry_run)
