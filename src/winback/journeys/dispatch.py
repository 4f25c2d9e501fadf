"""Dispatch: send the outbox through the channels, at most once per message.

An outbox row goes ``queued -> sending -> sent | failed | unknown`` (or ``cancelled``
when the contact may no longer be written to). The move to ``sending`` is committed, with
the rendered message and its Message-ID, *before* the channel is called, and the outcome
is committed right after. So a dispatcher killed at any moment leaves at most the
messages it was handing over in ``sending``; the next run turns them into ``unknown``
(listed by ``winback outbox --unknown``) and never sends them again by itself. Only one
dispatcher runs at a time per workspace (a lock file), so a ``sending`` row found at the
start can only be a leftover of a dead one.

Up to ``IN_FLIGHT`` messages travel at once (the SMTP channel sends them on as many
connections): the next message is rendered and claimed while the previous ones are on
the wire, and each outcome is committed as soon as it is known. A crash leaves at most
``IN_FLIGHT`` rows in ``sending``.

A temporary failure goes back to ``queued`` with a later ``due_at``; a permanent one is
``failed``, and a refused address (SMTP 5xx) becomes a hard bounce event and a
suppression. Every outcome leaves an audit record.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from winback.channels import (
    ChannelError,
    OutgoingMessage,
    PermanentFailure,
    Sender,
    Sent,
    TemporaryFailure,
    make_message_id,
    sender_for,
    submit,
)
from winback.channels.smtp import CONNECTIONS
from winback.clock import from_db, to_db
from winback.compliance.audit import audit_row, record
from winback.compliance.refusals import REFUSALS, apply_refusals
from winback.compliance.suppression import address_hash, can_receive
from winback.domain import Channel, EventType
from winback.errors import WinbackError
from winback.journeys.catalog import load_journeys, templates_of
from winback.journeys.definition import Journey
from winback.journeys.engine import TickResult, tick
from winback.journeys.offers import assign_offer
from winback.journeys.render import CompiledTemplate, TemplateSet, render
from winback.links import Links
from winback.store.chunks import chunks
from winback.store.schema import contacts, enrollments, events, outbox, suppressions
from winback.workspace import Workspace

LOCK_FILE = "dispatch.lock"
MAX_ATTEMPTS = 5
BATCH = 200
IN_FLIGHT = CONNECTIONS
_CONTACT_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "country",
    "language",
    "city",
    "gender",
    "birth_year",
    "interests",
    "tags",
    "attributes",
)


class DispatchBusy(WinbackError):
    """Another dispatcher holds the workspace's lock."""

    exit_code = 8


@dataclass
class DispatchResult:
    sent: int = 0
    failed: int = 0
    retry: int = 0
    unknown: int = 0
    cancelled: int = 0
    recovered_unknown: int = 0
    stopped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@contextmanager
def dispatch_lock(workspace: Workspace) -> Iterator[None]:
    """Hold the workspace's dispatch lock; the kernel drops it when the process dies."""
    path = workspace.path / LOCK_FILE
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DispatchBusy(
                f"another `winback dispatch` is running on {workspace.path} (it holds "
                f"{path}); wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def recover_interrupted(connection: Connection, now: datetime) -> int:
    """Turn rows a dead dispatcher left in ``sending`` into ``unknown``: they may have
    gone out, so they are reported and never resent silently."""
    stuck = connection.execute(
        select(outbox.c.id, outbox.c.contact_id, outbox.c.journey).where(
            outbox.c.status == "sending"
        )
    ).all()
    if not stuck:
        return 0
    connection.execute(
        update(outbox)
        .where(outbox.c.status == "sending")
        .values(status="unknown", error="the dispatcher stopped while sending it")
    )
    record(
        connection,
        (
            audit_row(
                at=now,
                actor="dispatch",
                action="unknown",
                contact_id=contact_id,
                reason="interrupted while sending",
                details={"outbox": outbox_id, "journey": journey},
            )
            for outbox_id, contact_id, journey in stuck
        ),
    )
    return len(stuck)


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
        self.links = Links.of(workspace)
        self.templates: TemplateSet = templates_of(workspace)
        self.from_address = workspace.config.email.from_
        self.brand = {
            "name": workspace.config.workspace.brand_name,
            "color": workspace.config.workspace.brand_color,
        }
        with self.engine.connect() as connection:
            self.journeys: dict[str, Journey] = {
                name: journey for name, (_, journey) in load_journeys(connection).items()
            }
        self.result = DispatchResult()
        self.blocked: set[tuple[str, str]] = set()
        self.compiled: dict[tuple[str, str, str | None], CompiledTemplate] = {}

    def sender(self, channel: str) -> Sender:
        if channel not in self.senders:
            sender = sender_for(self.workspace, Channel(channel), dry_run=self.dry_run)
            self.stack.callback(sender.close)
            self.senders[channel] = sender
        return self.senders[channel]

    def batch(self, after_id: int) -> list[dict[str, Any]]:
        query = (
            select(
                outbox,
                enrollments.c.status.label("enrollment_status"),
                contacts.c.erased_at,
                contacts.c.email_status,
                contacts.c.sms_status,
                *(contacts.c[name].label(f"contact_{name}") for name in _CONTACT_FIELDS),
            )
            .join(contacts, contacts.c.id == outbox.c.contact_id)
            .outerjoin(enrollments, enrollments.c.id == outbox.c.enrollment_id)
            .where(
                outbox.c.status == "queued",
                outbox.c.due_at <= to_db(self.now),
                outbox.c.id > after_id,
            )
            .order_by(outbox.c.id)
            .limit(BATCH)
        )
        with self.engine.connect() as connection:
            rows = [dict(row) for row in connection.execute(query).mappings()]
            self.blocked = _suppressed_of(connection, self.workspace, rows)
        return rows

    def run(self) -> DispatchResult:
        last = 0
        flights: deque[_Flight] = deque()
        try:
            while not self.result.stopped and (rows := self.batch(last)):
                for row in rows:
                    last = row["id"]
                    if len(flights) >= IN_FLIGHT:
                        wait([flights[0].future])
                    # One transaction records the outcomes that came back and claims the
                    # next message: one commit per message.
                    with self.engine.begin() as connection:
                        while flights and flights[0].future.done():
                            self.land(connection, flights.popleft())
                        if self.result.stopped:
                            break
                        claim = self.claim(connection, row)
                    if claim is not None:
                        flights.append(self.send(*claim))
        finally:
            while flights:
                with self.engine.begin() as connection:
                    self.land(connection, flights.popleft())
        return self.result

    def refusal(self, connection: Connection, row: Mapping[str, Any]) -> str | None:
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

    def content(self, connection: Connection, row: Mapping[str, Any]) -> dict[str, Any]:
        """The rendered message of a row, with its own Message-ID and tracked links."""
        journey = self.journeys.get(row["journey"])
        if journey is None:
            raise _Unsendable(f"journey {row['journey']!r} no longer exists")
        try:
            step = journey.step(row["step_id"])
        except KeyError:
            raise _Unsendable(
                f"step {row['step_id']!r} is not in journey {journey.name!r}"
            ) from None
        channel = row["channel"]
        contact = {name: row[f"contact_{name}"] for name in _CONTACT_FIELDS}
        key = (step.template, channel, contact["language"])
        template = self.compiled.get(key)
        if template is None:  # one look in the folders per template and language
            template = self.compiled[key] = self.templates.load(*key)
        message_id = make_message_id(self.from_address)
        offer = None
        if step.offer is not None:
            assigned = assign_offer(
                connection,
                contact_id=row["contact_id"],
                enrollment_id=row["enrollment_id"],
                journey=journey.name,
                step_id=step.id,
                offer=step.offer,
                now=self.now,
            )
            offer = assigned.variables(template.language, step.offer.valid_days)
        contact_id = row["contact_id"]
        variables = {
            "contact": contact,
            "offer": offer,
            "links": {
                "unsubscribe": self.links.unsubscribe_url(contact_id, Channel(channel)),
                "preferences": self.links.preferences_url(contact_id),
                "survey": self.links.survey_url(contact_id, journey.name, message_id=message_id),
            },
            "brand": self.brand,
            "journey": journey.name,
            "step": step.id,
        }
        rendered = render(template, variables)
        address = contact["email"] if channel == "email" else contact["phone"]
        return {
            "to_address": address,
            "subject": rendered.subject,
            "body_text": self.links.track_text(rendered.text, message_id),
            "body_html": (
                self.links.track_html(rendered.html, message_id) if rendered.html else None
            ),
            "headers": {"X-Winback-Journey": journey.name, "X-Winback-Step": step.id},
            "message_id": message_id,
        }

    def claim(
        self, connection: Connection, row: Mapping[str, Any]
    ) -> tuple[Mapping[str, Any], dict[str, Any]] | None:
        """Check and render one row and move it to ``sending`` (committed by the caller
        before the message is handed over); None when it does not go out (cancelled,
        failed, or moved by someone else)."""
        refusal = self.refusal(connection, row)
        if refusal is not None:
            self.finish(connection, row, "cancelled", refusal, action="cancel")
            self.result.cancelled += 1
            return None
        if row["body_text"] is None:
            try:
                content = self.content(connection, row)
            except (_Unsendable, WinbackError) as exc:
                self.finish(connection, row, "failed", str(exc), action="fail")
                self.result.failed += 1
                return None
        else:  # a retry after a temporary failure: the very same message again
            content = {
                key: row[key]
                for key in ("to_address", "subject", "body_text", "body_html", "headers")
            }
            content["message_id"] = row["message_id"]
        claimed = connection.execute(
            update(outbox)
            .where(outbox.c.id == row["id"], outbox.c.status == "queued")
            .values(status="sending", attempts=outbox.c.attempts + 1, **content)
        ).rowcount
        if claimed != 1:
            return None  # someone else moved it (an exit cancelled it): leave it alone
        return row, content

    def send(self, row: Mapping[str, Any], content: dict[str, Any]) -> _Flight:
        """Hand a claimed message to its channel."""
        message = OutgoingMessage.from_outbox({**row, **content})
        try:
            future = submit(self.sender(row["channel"]), message)
        except ChannelError as exc:
            future = Future()
            future.set_exception(exc)
        return _Flight(row, content, future)

    def land(self, connection: Connection, flight: _Flight) -> None:
        """Wait for the outcome of a message handed to its channel and record it."""
        row = flight.row
        try:
            outcome = flight.future.result()
        except ChannelError as exc:
            # Nothing was sent and nothing more can be: back to the queue, stop here.
            connection.execute(
                update(outbox)
                .where(outbox.c.id == row["id"])
                .values(status="queued", error=str(exc))
            )
            self.result.stopped = str(exc)
            return
        self.record_outcome(connection, row, flight.content, outcome)

    def record_outcome(
        self,
        connection: Connection,
        row: Mapping[str, Any],
        content: Mapping[str, Any],
        outcome: Any,
    ) -> None:
        outbox_id, contact_id, channel = row["id"], row["contact_id"], row["channel"]
        if isinstance(outcome, Sent):
            connection.execute(
                update(outbox)
                .where(outbox.c.id == outbox_id)
                .values(
                    status="sent",
                    sent_at=to_db(self.now),
                    provider_id=outcome.provider_id,
                    error=None,
                )
            )
            self.event(connection, row, content, EventType.SENT)
            self.audit(connection, row, "send", None)
            self.result.sent += 1
        elif isinstance(outcome, TemporaryFailure) and row["attempts"] + 1 < MAX_ATTEMPTS:
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
            if event in REFUSALS:
                self.event(connection, row, content, event)
                apply_refusals(
                    connection,
                    self.workspace,
                    [
                        {
                            "contact_id": contact_id,
                            "type": event,
                            "channel": channel,
                            "occurred_at": to_db(self.now),
                        }
                    ],
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
        record(
            connection,
            [
                audit_row(
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
            ],
        )

    def event(
        self,
        connection: Connection,
        row: Mapping[str, Any],
        content: Mapping[str, Any],
        kind: EventType,
    ) -> None:
        """Record what happened to the message as an event of the contact; the key makes
        a second record of the same fact impossible."""
        key = hashlib.blake2b(f"outbox:{row['id']}:{kind.value}".encode(), digest_size=16)
        connection.execute(
            insert(events),
            {
                "contact_id": row["contact_id"],
                "type": kind.value,
                "channel": row["channel"],
                "occurred_at": to_db(self.now),
                "campaign": row["journey"],
                "message_id": content["message_id"],
                "outbox_id": row["id"],
                "source": "dispatch",
                "dedup_key": key.digest(),
            },
        )


@dataclass
class _Flight:
    """A claimed message on its way: the row, what was sent, and the outcome to come."""

    row: Mapping[str, Any]
    content: dict[str, Any]
    future: Future[Any]


def _suppressed_of(
    connection: Connection, workspace: Workspace, rows: list[dict[str, Any]]
) -> set[tuple[str, str]]:
    """The (channel, address) pairs of a batch of rows that are on the suppression list:
    one query per batch, just before the batch goes out."""
    wanted: dict[tuple[str, str], tuple[str, str]] = {}
    for row in rows:
        channel = row["channel"]
        address = row["contact_email"] if channel == "email" else row["contact_phone"]
        if address:
            wanted[(channel, address_hash(workspace, channel, address))] = (channel, address)
    found: set[tuple[str, str]] = set()
    for batch in chunks(sorted({digest for _, digest in wanted})):
        for channel, digest in connection.execute(
            select(suppressions.c.channel, suppressions.c.address_hash).where(
                suppressions.c.address_hash.in_(batch)
            )
        ):
            pair = wanted.get((channel, digest))
            if pair is not None:
                found.add(pair)
    return found


class _Unsendable(Exception):
    """A row whose message cannot be built (its journey or step is gone)."""


def dispatch(
    workspace: Workspace,
    now: datetime,
    *,
    dry_run: bool = False,
    senders: Mapping[str, Sender] | None = None,
) -> DispatchResult:
    """Send every queued message due at ``now``. ``senders`` (by channel name) replaces
    the configured channels; ``dry_run`` writes files instead of sending. A channel that
    cannot work at all stops the run: the result's ``stopped`` says why, and the rest of
    the outbox stays queued for the next run."""
    with dispatch_lock(workspace), ExitStack() as stack:
        with workspace.engine.begin() as connection:
            recovered = recover_interrupted(connection, now)
        dispatcher = _Dispatcher(workspace, now, dict(senders or {}), stack, dry_run)
        dispatcher.result.recovered_unknown = recovered
        return dispatcher.run()


def unknown_messages(workspace: Workspace) -> list[dict[str, Any]]:
    """The messages whose fate is unknown (``winback outbox --unknown``): check them
    with the provider before deciding anything."""
    with workspace.engine.connect() as connection:
        rows = connection.execute(
            select(
                outbox.c.id,
                outbox.c.journey,
                outbox.c.step_id,
                outbox.c.channel,
                outbox.c.to_address,
                outbox.c.message_id,
                outbox.c.due_at,
                outbox.c.error,
            )
            .where(outbox.c.status == "unknown")
            .order_by(outbox.c.id)
        ).mappings()
        return [{**row, "due_at": from_db(row["due_at"])} for row in rows]


def outbox_counts(workspace: Workspace) -> dict[str, int]:
    """How many outbox rows are in each status."""
    with workspace.engine.connect() as connection:
        rows = connection.execute(
            select(outbox.c.status, func.count()).group_by(outbox.c.status)
        ).all()
    return {status: count for status, count in rows}


def run(
    workspace: Workspace, now: datetime, *, dry_run: bool = False
) -> tuple[TickResult, DispatchResult]:
    """``winback run``, for cron: the tick, then the dispatch of what is due."""
    return tick(workspace, now), dispatch(workspace, now, dry_run=dry_run)
