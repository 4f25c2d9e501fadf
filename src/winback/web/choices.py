"""What a person decides on the server's pages: unsubscribe, preferences, the survey,
and the yes to the retention purge's last question.

Each function takes the writer's connection and ``now``, changes the store and leaves an
audit record; none of them knows about HTTP. An unsubscribe is an event like any other
and goes through :func:`winback.events.record_events`, hence through
``apply_refusals`` (status, suppression, audit); the next tick then ends the contact's
enrollments on that channel before their next message. A survey answer ends the
contact's journey at once and applies what it says (:func:`answer_effects`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select

from winback.clock import from_db, to_db
from winback.compliance import audit
from winback.compliance.retention import STAY_ACTION
from winback.compliance.suppression import can_receive
from winback.domain import SENDING_CHANNELS, Channel, EventType
from winback.errors import NotFoundError
from winback.events import record_events
from winback.journeys.exits import exit_journeys
from winback.store.contacts import dedup_key, update_contacts
from winback.store.schema import contacts
from winback.store.survey import replace_survey_answer, survey_counts, survey_texts
from winback.web.events import find_messages
from winback.workspace import Workspace

ACTOR = "web"
# The longest free-text survey answer kept; a longer one is refused, not cut.
MAX_ANSWER_CHARS = 5000


class Frequency(StrEnum):
    """The preference centre's choices: as usual, at most one message a month, or none
    for a while (``web.pause``)."""

    NORMAL = "normal"
    MONTHLY = "monthly"
    PAUSE = "pause"


class SurveyReason(StrEnum):
    TOO_MANY = "too_many"
    NOT_RELEVANT = "not_relevant"
    BOUGHT_ELSEWHERE = "bought_elsewhere"
    NO_LONGER_NEEDED = "no_longer_needed"
    OTHER = "other"


@dataclass(frozen=True)
class Preferences:
    frequency: Frequency
    channels: frozenset[Channel]  # the sending channels the person keeps
    topics: tuple[str, ...]


def page_contact(connection: Connection, contact_id: int) -> dict[str, Any]:
    """The contact a link token names, for its page; an erased or unknown contact is
    :class:`NotFoundError` (the page says the link no longer works)."""
    row = connection.execute(select(contacts).where(contacts.c.id == contact_id)).mappings().first()
    if row is None or row["erased_at"] is not None:
        raise NotFoundError(f"no contact {contact_id}: the link is for a contact that is gone")
    return dict(row)


def subscribed_address(contact: Mapping[str, Any], channel: Channel) -> str | None:
    """The contact's address on ``channel`` while marketing can reach them there (what
    the unsubscribe page asks about, what the preference centre offers to keep); None
    once it cannot: unsubscribed, bounced, or no address."""
    address = contact["email" if channel == Channel.EMAIL else "phone"]
    return address if can_receive(contact[f"{channel.value}_status"], address) else None


def current_preferences(
    contact: Mapping[str, Any], now: datetime
) -> tuple[Preferences, datetime | None]:
    """The contact's choices as the preference centre shows them, and the end of their
    pause (aware UTC; None when no pause runs at ``now``: a pause that has run out shows
    as the frequency under it)."""
    paused_until = from_db(contact["paused_until"])
    if paused_until is not None and paused_until <= now:
        paused_until = None
    shown = Preferences(
        frequency=Frequency.PAUSE if paused_until else Frequency(contact["frequency"]),
        channels=frozenset(
            channel for channel in SENDING_CHANNELS if subscribed_address(contact, channel)
        ),
        topics=tuple(contact["topics"] or ()),
    )
    return shown, paused_until


def unsubscribe(
    connection: Connection,
    workspace: Workspace,
    contact_id: int,
    channel: Channel,
    now: datetime,
    *,
    how: str,
) -> bool:
    """Unsubscribe the contact from ``channel`` at once; ``how`` says which form did it
    (``form``, ``one-click``, ``preferences``). Idempotent: a second call records nothing
    and returns False."""
    page_contact(connection, contact_id)
    row = {
        "contact_id": contact_id,
        "type": EventType.UNSUBSCRIBE.value,
        "channel": channel.value,
        "occurred_at": to_db(now),
        "source": f"web:{how}",
        # One unsubscribe per contact and channel from the web: a repeat adds nothing.
        "dedup_key": dedup_key("web", "unsubscribe", contact_id, channel.value),
    }
    return record_events(connection, workspace, [row], now=now, actor=ACTOR) > 0


def save_preferences(
    connection: Connection,
    workspace: Workspace,
    contact_id: int,
    choice: Preferences,
    now: datetime,
) -> dict[str, Any]:
    """Apply the preference centre's form: frequency or pause, topics, and the channels
    the person gives up (each an unsubscribe). Returns what was saved."""
    contact = page_contact(connection, contact_id)
    offered = workspace.config.web.topics
    topics = [topic for topic in offered if topic in choice.topics]
    paused_until = None
    frequency = Frequency.NORMAL if choice.frequency == Frequency.PAUSE else choice.frequency
    if choice.frequency == Frequency.PAUSE:
        paused_until = to_db(now + workspace.config.web.pause)
    update_contacts(
        connection,
        [
            {
                "id": contact_id,
                "frequency": frequency.value,
                "paused_until": paused_until,
                "topics": topics,
                "updated_at": to_db(now),
            }
        ],
    )
    dropped = [
        channel
        for channel in SENDING_CHANNELS
        if channel not in choice.channels and subscribed_address(contact, channel)
    ]
    for channel in dropped:
        unsubscribe(connection, workspace, contact_id, channel, now, how="preferences")
    saved = {
        "frequency": frequency.value,
        "paused_until": from_db(paused_until).isoformat() if paused_until else None,
        "topics": topics,
        "unsubscribed": [channel.value for channel in dropped],
    }
    audit.record(
        connection,
        [
            audit.audit_row(
                at=now,
                actor=ACTOR,
                action="preferences",
                contact_id=contact_id,
                reason=choice.frequency.value,
                details=saved,
            )
        ],
    )
    return saved


def answer_effects(reason: SurveyReason, now: datetime, pause: timedelta) -> dict[str, Any]:
    """What an answer changes in the person's preferences (contact columns, naive UTC),
    besides ending their journey: "too many messages" asks for less (one message a month,
    no pause); "not relevant" asks for silence (a pause of ``web.pause``); the other
    reasons only end the journey."""
    if reason == SurveyReason.TOO_MANY:
        return {"frequency": Frequency.MONTHLY.value, "paused_until": None}
    if reason == SurveyReason.NOT_RELEVANT:
        return {"paused_until": to_db(now + pause)}
    return {}


def save_survey_answer(
    connection: Connection,
    workspace: Workspace,
    contact_id: int,
    *,
    survey: str,
    reason: SurveyReason,
    text: str | None,
    message_id: str | None,
    now: datetime,
) -> int:
    """Store a person's survey answer as written (the free text is never altered: it is
    escaped where it is shown), in place of their earlier one, and do what it says: the
    journey ends (``exited``, outcome ``survey: REASON``) and the preferences change
    (:func:`answer_effects`). One audit record says all of it. Returns the answer's id."""
    page_contact(connection, contact_id)
    if text is not None and len(text) > MAX_ANSWER_CHARS:
        raise ValueError(f"the answer is longer than {MAX_ANSWER_CHARS} characters")
    outbox_id = None
    if message_id is not None:
        message = find_messages(connection, [message_id]).get(message_id)
        outbox_id = message.outbox_id if message else None
    answer_id, replaced = replace_survey_answer(
        connection,
        {
            "contact_id": contact_id,
            "outbox_id": outbox_id,
            "reason": reason.value,
            "text": text or None,
            "answered_at": to_db(now),
        },
    )
    effects = answer_effects(reason, now, workspace.config.web.pause)
    if effects:
        update_contacts(connection, [{"id": contact_id, **effects, "updated_at": to_db(now)}])
    left = exit_journeys(
        connection, contact_id, outcome=f"survey: {reason.value}", now=now, actor=ACTOR
    )
    applied = {
        name: from_db(value).isoformat() if isinstance(value, datetime) else value
        for name, value in effects.items()
    }
    audit.record(
        connection,
        [
            audit.audit_row(
                at=now,
                actor=ACTOR,
                action="survey",
                contact_id=contact_id,
                reason=reason.value,
                details={
                    "survey": survey,
                    "answer": answer_id,
                    "outbox": outbox_id,
                    "replaced": replaced,
                    "applied": applied,
                    "exited": left,
                },
            )
        ],
    )
    return answer_id


def stay(connection: Connection, contact_id: int, now: datetime) -> None:
    """The person's explicit yes to "do you want to stay?": an audit record, from which
    their retention clock starts again (:mod:`winback.compliance.retention`)."""
    page_contact(connection, contact_id)
    audit.record(
        connection,
        [
            audit.audit_row(
                at=now,
                actor=ACTOR,
                action=STAY_ACTION,
                contact_id=contact_id,
                reason="the person asked to stay",
            )
        ],
    )


def parse_channels(values: Iterable[str]) -> frozenset[Channel]:
    """The sending channels ticked in a form; anything else is ignored."""
    sending = {channel.value: channel for channel in SENDING_CHANNELS}
    return frozenset(sending[value] for value in values if value in sending)


def survey_report(workspace: Workspace, *, latest: int = 20) -> dict[str, Any]:
    """The survey's answers so far: how many gave each reason (every reason listed, zero
    included), and the ``latest`` free-text answers as written, newest first."""
    with workspace.engine.connect() as connection:
        counts = survey_counts(connection)
        texts = survey_texts(connection, latest)
    reasons = {reason.value: counts.get(reason.value, 0) for reason in SurveyReason}
    return {
        "answers": sum(counts.values()),
        "reasons": reasons,
        "texts": [{**row, "answered_at": from_db(row["answered_at"])} for row in texts],
    }
