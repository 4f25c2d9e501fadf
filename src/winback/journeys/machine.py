"""The journey state machine, without I/O: given where an enrollment is, what the contact
did and which channels can still reach them, what happens next.

The tick (``engine``) and the simulator (``simulate``) both drive this one function, so a
simulated funnel follows exactly the rules the real sends follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from winback.journeys.definition import CHANNEL_REACTIONS, Journey, Step

WEEK = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Reactions:
    """What the contact did. ``opened``/``clicked``/``replied`` count since the current
    step's message (human opens and human clicks only); ``exit_event`` is the first event
    of the journey's ``exit_on`` since enrolment, if any."""

    opened: bool = False
    clicked: bool = False
    replied: bool = False
    exit_event: str | None = None


NO_REACTION = Reactions()


@dataclass(frozen=True, slots=True)
class Advance:
    """Send ``step_id`` on ``channel`` now, and look again at ``due_at``. A ``channel``
    of None passes the step over (the contact cannot receive it): nothing is sent, and
    its wait still runs, so the steps after it keep their place in the calendar."""

    step_id: str
    channel: str | None
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Exit:
    """Leave the journey: ``reactivated`` (the contact came back) or ``exited`` (no
    channel can reach them any more)."""

    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The last step's wait is over with no reaction: apply ``after_last_step``."""

    after: str

    def status(self, holdout: bool) -> str:
        """The enrollment's status at the end: ``sunset`` when the journey lets the
        contact go, else ``completed``. The holdout only completes: it never got a
        message, so it is neither let go nor suppressed."""
        return "sunset" if self.after == "sunset" and not holdout else "completed"


Decision = Advance | Exit | Finish


def reaction_matches(reaction: str, seen: Reactions, channel: str | None = "email") -> bool:
    """Whether a branch condition holds for the message of a step sent on ``channel``
    (None: the step was passed over, nothing was sent). A branch tests only a reaction
    the channel can have: an SMS is never opened, so ``not_opened`` never fires on one.
    A click counts as an open: a reader who blocks images clicks without ever loading
    the pixel."""
    if channel is None or reaction not in CHANNEL_REACTIONS[channel]:
        return False
    opened = seen.opened or seen.clicked
    return {
        "clicked": seen.clicked,
        "opened": opened,
        "opened_not_clicked": opened and not seen.clicked,
        "not_opened": not opened,
        "replied": seen.replied,
        "no_reaction": not (opened or seen.replied),
    }[reaction]


def channel_of(step: Step, reachable: Sequence[str], preferred: str | None) -> str | None:
    """The channel a step goes out on for a contact reachable on ``reachable``; ``best``
    is the channel the contact last used (``preferred``), else the first reachable one.
    None: the contact cannot receive this step."""
    if step.channel != "best":
        return step.channel if step.channel in reachable else None
    if preferred in reachable:
        return preferred
    return reachable[0] if reachable else None


def decide(
    journey: Journey,
    step_id: str | None,
    seen: Reactions,
    reachable: Sequence[str],
    preferred: str | None,
    now: datetime,
    spared: bool = False,
    step_channel: str | None = "email",
) -> Decision:
    """The next move of an enrollment that is due at ``now``.

    ``step_id`` is the step last reached (None before the first) and ``step_channel`` the
    channel its message went out on (None when it was passed over); ``reachable`` the
    channels the contact can still receive on, in order of preference. A reaction in
    ``exit_on`` ends the journey first; otherwise the current step's ``on`` branches the
    channel allows are tried in the order written and the next step in the list is the
    default. A step on a channel the contact cannot receive is passed over with its wait
    (an ``Advance`` without a channel), so a contact without email gets the first SMS on
    the day the journey's calendar says, not at once. ``spared``: the contact is worth
    more than the journey's ``sunset.spare_above_value``, so the spare step comes before
    the end.
    """
    if seen.exit_event is not None:
        return Exit("reactivated", seen.exit_event)
    if not reachable:
        return Exit("exited", "no channel left")
    if journey.is_spare(step_id):
        return Finish(journey.after_last_step)
    if step_id is None:
        index = 0
    else:
        current = journey.index(step_id)
        index = current + 1
        for reaction, target in journey.steps[current].on.items():
            if reaction_matches(reaction, seen, step_channel):
                index = journey.index(target)
                break
    if index < len(journey.steps):
        step = journey.steps[index]
        return Advance(step.id, channel_of(step, reachable, preferred), now + step.wait)
    spare = journey.spare_step
    if spared and spare is not None:
        channel = channel_of(spare, reachable, preferred)
        if channel is not None:
            return Advance(spare.id, channel, now + spare.wait)
    return Finish(journey.after_last_step)


def next_free_slot(recent: Sequence[datetime], max_per_week: int, now: datetime) -> datetime | None:
    """When a contact who got messages at ``recent`` may get one more under a cap of
    ``max_per_week`` in any rolling 7 days: None if now, else the moment the oldest
    message that blocks it leaves the window.

    >>> from datetime import UTC
    >>> t = datetime(2025, 1, 10, tzinfo=UTC)
    >>> next_free_slot([t - timedelta(days=6), t - timedelta(days=1)], 2, t)
    datetime.datetime(2025, 1, 11, 0, 0, tzinfo=datetime.timezone.utc)
    """
    window = sorted(moment for moment in recent if now - WEEK < moment <= now)
    if len(window) < max_per_week:
        return None
    return window[len(window) - max_per_week] + WEEK
