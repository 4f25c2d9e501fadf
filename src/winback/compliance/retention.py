"""The retention purge: erase the contacts the person has not been in touch with for
``retention.erase_after`` (3 years by default, as the CNIL expects for prospect and
customer data used for marketing).

The clock runs from the person's last contact with us, as the CNIL reads it: a click
(not a link scanner's), a purchase, a login, a visit, an SMS reply or a form (a survey
answer, or the yes to the last question below). An email open does not count, and
nothing we sent does; a contact who never got in touch counts from their creation. A
contact with an active paid subscription is never purged: the commercial relationship is
still running, and the clock starts when it ends.

With ``retention.ask_before_erase``, the purge first asks. Each run queues a last
message (template ``retention_ask``, step ``retention-ask`` in the outbox, sent by
``winback dispatch``) to every contact whose clock runs out within
``retention.ask_ahead`` (4 weeks by default) and who can still be written to: by email,
or by SMS when there is no email to write to. The message's "keep me" link leads to a
page whose button records the person's yes (an audit record ``stay``), which restarts
the clock like any other contact from the person. Nothing else keeps them: an open or a
link scanner's visit does not, and silence does not. A contact whose clock has run out is
erased once the question went out at least ``ask_ahead`` before without a yes, or when it
could not be asked (no address we may write to, or the message was cancelled or failed).
A contact whose clock had already run out when the option was turned on is asked first
and erased ``ask_ahead`` later: the option promises the question.

An ask belongs to the current clock when it was queued after the clock's cutoff: the
contact is due, so their last contact is older than the cutoff, and so is any ask from an
earlier clock (the person answered it, which is a contact).

Before it erases, the purge shows who: :func:`write_purge_plan` writes the due contacts
with the day their clock started, why they are due and what this run would do to them
(``winback purge --dry-run --out FILE``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, TextIO

from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    FromClause,
    Select,
    String,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    true,
)

from winback.clock import from_db, to_db
from winback.compliance import audit as audit_log
from winback.compliance.erasure import erase_contacts, erasing, reclaim_space
from winback.compliance.suppression import can_receive_clause
from winback.domain import Channel, EventType
from winback.safe_output import csv_writer
from winback.store.history import events_slice
from winback.store.schema import audit, contacts, outbox, survey_answers
from winback.workspace import Workspace

# The events by which the person gets in touch (an open is not one, nor a sent message).
PERSON_TOUCHES = (
    EventType.CLICK,
    EventType.PURCHASE,
    EventType.LOGIN,
    EventType.VISIT,
    EventType.REPLY,
)
# The last question before erasure: its outbox step (it belongs to no journey), the
# template it is written with, and the audit action of the person's yes.
ASK_STEP = "retention-ask"
ASK_TEMPLATE = "retention_ask"
STAY_ACTION = "stay"
ACTOR = "purge"
# An outbox row that is a last question.
_ASK_ROW = (outbox.c.journey.is_(None), outbox.c.step_id == ASK_STEP)


@dataclass
class PurgeResult:
    """What ``winback purge`` found (and, unless a dry run, erased)."""

    cutoff: datetime
    due: int = 0
    with_email: int = 0
    with_phone: int = 0
    # With retention.ask_before_erase: questions queued by this run, and the due contacts
    # kept until their question has had retention.ask_ahead to be answered.
    asked: int = 0
    waiting: int = 0
    erased: int = 0
    dry_run: bool = False
    # False when another process kept the SQLite write-ahead log from being emptied.
    log_emptied: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cutoff": self.cutoff.isoformat()}


def _touches(connection: Connection, since: datetime | None = None) -> FromClause:
    """The events by which the person got in touch (since ``since``), a link scanner's
    clicks left out."""
    events = events_slice(connection, types=PERSON_TOUCHES, since=since)
    return select(events).where(or_(events.c.bot.is_(None), not_(events.c.bot))).subquery()


def purge_due(connection: Connection, cutoff: datetime) -> Select[Any]:
    """The live contacts whose last contact from the person (or creation) is before
    ``cutoff``, as a select of ``id``, ``email``, ``phone``. Written with NOT EXISTS so
    each check is one probe of the (contact, time) index of events."""
    stamp = to_db(cutoff)
    touches = _touches(connection, cutoff)
    touched = select(touches.c.id).where(touches.c.contact_id == contacts.c.id).exists()
    answered = (
        select(survey_answers.c.id)
        .where(survey_answers.c.contact_id == contacts.c.id, survey_answers.c.answered_at >= stamp)
        .exists()
    )
    stayed = (
        select(audit.c.id)
        .where(
            audit.c.contact_id == contacts.c.id,
            audit.c.action == STAY_ACTION,
            audit.c.at >= stamp,
        )
        .exists()
    )
    return select(contacts.c.id, contacts.c.email, contacts.c.phone).where(
        contacts.c.erased_at.is_(None),
        contacts.c.created_at < stamp,
        not_(contacts.c.subscription_active == true()),
        not_(touched),
        not_(answered),
        not_(stayed),
    )


def _asks(since: datetime, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """Whether the contact has a last question queued at or after ``since`` (and
    meeting ``conditions``)."""
    return (
        select(outbox.c.id)
        .where(
            outbox.c.contact_id == contacts.c.id,
            *_ASK_ROW,
            outbox.c.created_at >= to_db(since),
            *conditions,
        )
        .exists()
    )


def _askable() -> ColumnElement[bool]:
    return or_(can_receive_clause(Channel.EMAIL), can_receive_clause(Channel.SMS))


def erasable(
    connection: Connection, cutoff: datetime, now: datetime, ask_ahead: timedelta
) -> Select[Any]:
    """:func:`purge_due`, less the contacts still owed their last question (see the
    module): asked and not yet answered for ``ask_ahead``, or not yet asked though they
    can be."""
    answering = _asks(
        cutoff,
        or_(
            outbox.c.status.in_(("queued", "sending")),
            and_(
                outbox.c.status.in_(("sent", "unknown")),
                func.coalesce(outbox.c.sent_at, outbox.c.due_at) > to_db(now - ask_ahead),
            ),
        ),
    )
    unasked = and_(_askable(), not_(_asks(cutoff)))
    return purge_due(connection, cutoff).where(not_(answering), not_(unasked))


def _to_ask(connection: Connection, cutoff: datetime, ask_ahead: timedelta) -> Select[Any]:
    ask_cutoff = cutoff + ask_ahead
    return purge_due(connection, ask_cutoff).where(_askable(), not_(_asks(ask_cutoff)))


def ask(connection: Connection, now: datetime, cutoff: datetime, ask_ahead: timedelta) -> int:
    """Queue the last question for every contact whose clock (cut off at ``cutoff``)
    runs out within ``ask_ahead``, who was not asked for this clock and can be written
    to: by email, else by SMS; one INSERT ... SELECT for the outbox and one for their
    audit records. Returns how many."""
    stamp = to_db(now)
    channel = case(
        (can_receive_clause(Channel.EMAIL), literal(Channel.EMAIL.value)),
        else_=literal(Channel.SMS.value),
    )
    connection.execute(
        insert(outbox).from_select(
            [
                "idempotency_key",
                "contact_id",
                "step_id",
                "channel",
                "status",
                "created_at",
                "due_at",
            ],
            _to_ask(connection, cutoff, ask_ahead).with_only_columns(
                literal(f"{ASK_STEP}:")
                + cast(contacts.c.id, String)
                + literal(f":{stamp.isoformat()}"),
                contacts.c.id,
                literal(ASK_STEP),
                channel,
                literal("queued"),
                literal(stamp, DateTime),
                literal(stamp, DateTime),
            ),
        )
    )
    # What this run queued (an INSERT ... SELECT's row count is not reported by every
    # driver): the asks of this moment.
    queued = (
        *_ASK_ROW,
        outbox.c.created_at == stamp,
    )
    ask_cutoff = (cutoff + ask_ahead).date().isoformat()
    audit_log.record_selected(
        connection,
        select(
            outbox.c.contact_id,
            literal(
                f"no contact from the person since {ask_cutoff}: "
                "erased unless they say they want to stay"
            ).label("reason"),
        ).where(*queued),
        at=now,
        actor=ACTOR,
        action="retention_ask",
    )
    return int(connection.execute(select(func.count()).where(*queued)).scalar_one())


def purge(
    workspace: Workspace,
    *,
    now: datetime,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> PurgeResult:
    """Erase every contact due for the retention purge at ``now`` (see the module), each
    with an audit record, after asking them first with ``retention.ask_before_erase``;
    with ``dry_run``, only count them. ``progress`` is called with (erased so far,
    total)."""
    retention = workspace.config.retention
    result = PurgeResult(cutoff=now - retention.erase_after, dry_run=dry_run)
    with erasing(workspace.engine) as connection:
        due = purge_due(connection, result.cutoff).subquery()
        erase = (
            erasable(connection, result.cutoff, now, retention.ask_ahead)
            if retention.ask_before_erase
            else purge_due(connection, result.cutoff)
        ).subquery()
        result.due, result.with_email, result.with_phone = connection.execute(
            select(
                func.count(),
                func.count(due.c.email),
                func.count(due.c.phone),
            )
        ).one()
        if retention.ask_before_erase:
            if dry_run:
                result.asked = connection.execute(
                    select(func.count()).select_from(
                        _to_ask(connection, result.cutoff, retention.ask_ahead).subquery()
                    )
                ).scalar_one()
            else:
                result.asked = ask(connection, now, result.cutoff, retention.ask_ahead)
        ids = list(connection.execute(select(erase.c.id).order_by(erase.c.id)).scalars())
        result.waiting = result.due - len(ids)
        if dry_run or not ids:
            return result
        result.erased = erase_contacts(
            connection,
            workspace,
            ids,
            now=now,
            actor=ACTOR,
            reason=f"no contact from the person since {result.cutoff.date().isoformat()}",
            progress=None if progress is None else lambda done: progress(done, len(ids)),
        )
    result.log_emptied = reclaim_space(workspace.engine)
    return result


PLAN_COLUMNS = ("contact_id", "email", "phone", "clock_started", "why", "action")


def _last_touch(connection: Connection) -> tuple[Any, Any, Any]:
    """The moment the contact's clock started, as a SQL expression on ``contacts``: their
    newest contact from the person (touch, survey answer, yes to stay), else creation."""
    touches = _touches(connection)
    touch = (
        select(func.max(touches.c.occurred_at))
        .where(touches.c.contact_id == contacts.c.id)
        .scalar_subquery()
    )
    answer = (
        select(func.max(survey_answers.c.answered_at))
        .where(survey_answers.c.contact_id == contacts.c.id)
        .scalar_subquery()
    )
    stay = (
        select(func.max(audit.c.at))
        .where(audit.c.contact_id == contacts.c.id, audit.c.action == STAY_ACTION)
        .scalar_subquery()
    )
    return touch, answer, stay


def write_purge_plan(workspace: Workspace, out: TextIO, *, now: datetime) -> int:
    """Write, as CSV (:data:`PLAN_COLUMNS`), the contacts the purge at ``now`` finds due:
    their id and addresses, the day their clock started (their last contact from the
    person, else their creation), why, and what the purge would do: ``erase``, or with
    ``retention.ask_before_erase`` ``ask`` (the last question goes out first) or
    ``wait`` (asked, the answer has time until ``retention.ask_ahead``). Erases nothing.
    Returns how many contacts were written."""
    retention = workspace.config.retention
    cutoff = now - retention.erase_after
    writer = csv_writer(out)
    writer.writerow(PLAN_COLUMNS)
    written = 0
    with workspace.engine.connect() as connection:
        erase = (
            erasable(connection, cutoff, now, retention.ask_ahead)
            if retention.ask_before_erase
            else purge_due(connection, cutoff)
        ).subquery()
        to_ask = _to_ask(connection, cutoff, retention.ask_ahead).subquery()
        touch, answer, stay = _last_touch(connection)
        query = (
            purge_due(connection, cutoff)
            .add_columns(
                contacts.c.created_at,
                touch.label("touch"),
                answer.label("answer"),
                stay.label("stay"),
                select(erase.c.id).where(erase.c.id == contacts.c.id).exists().label("erase"),
                select(to_ask.c.id).where(to_ask.c.id == contacts.c.id).exists().label("ask"),
            )
            .order_by(contacts.c.id)
        )
        for row in connection.execute(query):
            contacts_of_person = [at for at in (row.touch, row.answer, row.stay) if at is not None]
            started = max(contacts_of_person, default=row.created_at)
            day = from_db(started).date().isoformat()
            why = (
                f"no contact from the person since {day}"
                if contacts_of_person
                else f"created on {day}, never in touch"
            )
            action = "erase" if row.erase else "ask" if row.ask else "wait"
            writer.writerow(
                [
                    row.id,
                    row.email or "",
                    row.phone or "",
                    day,
                    f"{why} (retention {retention.erase_after.days} days)",
                    action,
                ]
            )
            written += 1
    return written
