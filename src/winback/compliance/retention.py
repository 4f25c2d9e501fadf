"""The retention purge: erase the contacts the person has not been in touch with for
``retention.erase_after`` (3 years by default, as the CNIL expects for prospect and
customer data used for marketing).

The clock runs from the person's last contact with us, as the CNIL reads it: a click
(not a link scanner's), a purchase, a login, a visit, an SMS reply or a form (a survey
answer). An email open does not count, and nothing we sent does; a contact who never got
in touch counts from their creation. A contact with an active paid subscription is never
purged: the commercial relationship is still running, and the clock starts when it ends.

``retention.ask_before_erase`` (a last "do you want to stay?" message before the purge)
is not built yet: :func:`purge` refuses to run while it is set, rather than erase people
who were promised a question first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, not_, or_, select, true

from winback.clock import to_db
from winback.compliance.erasure import erase_contacts, erasing, reclaim_space
from winback.domain import EventType
from winback.errors import ConfigError
from winback.store.schema import contacts, events, survey_answers
from winback.workspace import Workspace

# The events by which the person gets in touch (an open is not one, nor a sent message).
PERSON_TOUCHES = (
    EventType.CLICK,
    EventType.PURCHASE,
    EventType.LOGIN,
    EventType.VISIT,
    EventType.REPLY,
)


@dataclass
class PurgeResult:
    """What ``winback purge`` found (and, unless a dry run, erased)."""

    cutoff: datetime
    due: int = 0
    with_email: int = 0
    with_phone: int = 0
    erased: int = 0
    dry_run: bool = False
    # False when another process kept the SQLite write-ahead log from being emptied.
    log_emptied: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cutoff": self.cutoff.isoformat()}


def purge_due(cutoff: datetime) -> Select[Any]:
    """The live contacts whose last contact from the person (or creation) is before
    ``cutoff``, as a select of ``id``, ``email``, ``phone``. Written with NOT EXISTS so
    each check is one probe of the (contact, time) index of events."""
    stamp = to_db(cutoff)
    touched = (
        select(events.c.id)
        .where(
            events.c.contact_id == contacts.c.id,
            events.c.occurred_at >= stamp,
            events.c.type.in_([kind.value for kind in PERSON_TOUCHES]),
            or_(events.c.bot.is_(None), not_(events.c.bot)),
        )
        .exists()
    )
    answered = (
        select(survey_answers.c.id)
        .where(survey_answers.c.contact_id == contacts.c.id, survey_answers.c.answered_at >= stamp)
        .exists()
    )
    return select(contacts.c.id, contacts.c.email, contacts.c.phone).where(
        contacts.c.erased_at.is_(None),
        contacts.c.created_at < stamp,
        not_(contacts.c.subscription_active == true()),
        not_(touched),
        not_(answered),
    )


def purge(
    workspace: Workspace,
    now: datetime,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> PurgeResult:
    """Erase every contact due for the retention purge at ``now`` (see the module), each
    with an audit record; with ``dry_run``, only count them. ``progress`` is called with
    (erased so far, total)."""
    retention = workspace.config.retention
    if retention.ask_before_erase:
        raise ConfigError(
            "winback.toml: retention.ask_before_erase: the last message before erasure is "
            "not built yet; set it to false to purge without asking"
        )
    result = PurgeResult(cutoff=now - retention.erase_after, dry_run=dry_run)
    due = purge_due(result.cutoff).subquery()
    with erasing(workspace.engine) as connection:
        result.due, result.with_email, result.with_phone = connection.execute(
            select(
                func.count(),
                func.count(due.c.email),
                func.count(due.c.phone),
            )
        ).one()
        if dry_run or not result.due:
            return result
        ids = list(connection.execute(select(due.c.id).order_by(due.c.id)).scalars())
        result.erased = erase_contacts(
            connection,
            workspace,
            ids,
            now=now,
            actor="purge",
            reason=f"no contact from the person since {result.cutoff.date().isoformat()}",
            progress=None if progress is None else lambda done: progress(done, len(ids)),
        )
    result.log_emptied = reclaim_space(workspace.engine)
    return result
