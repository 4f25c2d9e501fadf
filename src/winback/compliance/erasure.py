"""Erasure: replace a person by a keyed hash, keep the counts.

Erasing a contact blanks every personal column of its row (addresses, names, place,
attributes, preferences) and the personal fields of what points at it (the ip, user agent,
URL and text of its events, the address, subject, bodies and errors of its messages, the
text of its survey answers), drops its scores, ends its journeys, suppresses its addresses
with reason ``erased`` (an address suppressed already keeps its first reason), and from
then on names it in the audit log by ``key_hash``, the HMAC of its address. Events,
enrollments, codes and stage history stay, so the counts of every report still add up.

On SQLite the erasure runs with ``secure_delete`` (freed space is overwritten with zeros),
and :func:`reclaim_space` then rebuilds the file (``VACUUM``) and empties the write-ahead
log (``wal_checkpoint(TRUNCATE)``), so no old copy of the data stays in a free page, in
the slack of a page or in the WAL. On PostgreSQL the dead row versions are reclaimed by
autovacuum, outside the workspace folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, bindparam, delete, select, update

from winback.clock import to_db
from winback.compliance.audit import audit_row, record
from winback.compliance.suppression import address_hash, suppress_contacts
from winback.store.chunks import chunks
from winback.store.schema import (
    audit,
    contact_scores,
    contacts,
    enrollments,
    events,
    outbox,
    survey_answers,
)
from winback.workspace import Workspace

# Every column of ``contacts`` that says something about the person.
PERSONAL_CONTACT_COLUMNS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "country",
    "language",
    "timezone",
    "birth_year",
    "city",
    "gender",
    "interests",
    "tags",
    "attributes",
    "source",
    "topics",
    "paused_until",
)
PERSONAL_EVENT_COLUMNS = ("ip", "user_agent", "url", "body")
# An SMTP error can quote the address ("550 <alice@...>: no such user").
PERSONAL_OUTBOX_COLUMNS = ("to_address", "subject", "body_text", "body_html", "headers", "error")


def key_hash(workspace: Workspace, email: str | None, phone: str | None) -> str | None:
    """The hash that names an erased person: of the email, else of the phone."""
    if email:
        return address_hash(workspace, "email", email)
    if phone:
        return address_hash(workspace, "sms", phone)
    return None


@contextmanager
def erasing(engine: Engine) -> Iterator[Connection]:
    """A transaction for erasing: on SQLite, with ``secure_delete`` on, so what it frees
    is overwritten with zeros rather than left in free space."""
    with engine.connect() as connection:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            connection.exec_driver_sql("PRAGMA secure_delete=ON")
            connection.commit()
        try:
            with connection.begin():
                yield connection
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA secure_delete=OFF")
                connection.commit()


def reclaim_space(engine: Engine) -> bool:
    """After an erasure on SQLite: rebuild the database file (``VACUUM``: no old copy of a
    row stays in a free page or in the slack of a page written before ``secure_delete``)
    and empty the write-ahead log, whose old frames still hold the erased rows. Returns
    False when the log could not be emptied (another process, such as ``winback serve``,
    was reading): the erasure is done, but old copies stay in the log until it is."""
    if engine.dialect.name != "sqlite":
        return True
    with engine.connect() as connection:
        raw = connection.execution_options(isolation_level="AUTOCOMMIT")
        raw.exec_driver_sql("VACUUM")
        busy, _, _ = raw.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    return not busy


def erase_contacts(
    connection: Connection,
    workspace: Workspace,
    contact_ids: Sequence[int],
    *,
    now: datetime,
    actor: str,
    reason: str,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Erase these contacts (those not erased already) in the caller's transaction, with
    an ``erase`` audit record each. Returns how many were erased; ``progress`` is called
    with the count after each chunk."""
    erased = 0
    stamp = to_db(now)
    for batch in chunks(sorted(set(contact_ids))):
        people = connection.execute(
            select(contacts.c.id, contacts.c.email, contacts.c.phone).where(
                contacts.c.id.in_(batch), contacts.c.erased_at.is_(None)
            )
        ).all()
        ids = [row.id for row in people]
        if not ids:
            continue
        for channel in ("email", "sms"):
            suppress_contacts(
                connection, workspace, ids, channel=channel, reason="erased", now=now, actor=actor
            )
        keys = [{"_id": row.id, "key": key_hash(workspace, row.email, row.phone)} for row in people]
        _end_journeys(connection, ids, now, actor)
        connection.execute(
            update(outbox)
            .where(outbox.c.contact_id.in_(ids), outbox.c.status == "queued")
            .values(status="cancelled")
        )
        connection.execute(
            update(outbox)
            .where(outbox.c.contact_id.in_(ids))
            .values(dict.fromkeys(PERSONAL_OUTBOX_COLUMNS))
        )
        connection.execute(
            update(events)
            .where(events.c.contact_id.in_(ids))
            .values(dict.fromkeys(PERSONAL_EVENT_COLUMNS))
        )
        connection.execute(
            update(survey_answers).where(survey_answers.c.contact_id.in_(ids)).values(text=None)
        )
        connection.execute(delete(contact_scores).where(contact_scores.c.contact_id.in_(ids)))
        connection.execute(
            update(contacts)
            .where(contacts.c.id == bindparam("_id"))
            .values(
                {name: None for name in PERSONAL_CONTACT_COLUMNS}
                | {"erased_at": stamp, "updated_at": stamp, "key_hash": bindparam("key")}
            ),
            keys,
        )
        connection.execute(
            update(audit)
            .where(audit.c.contact_id == bindparam("_id"), audit.c.contact_key.is_(None))
            .values(contact_key=bindparam("key")),
            keys,
        )
        record(
            connection,
            (
                audit_row(
                    at=now,
                    actor=actor,
                    action="erase",
                    contact_id=key["_id"],
                    contact_key=key["key"],
                    reason=reason,
                )
                for key in keys
            ),
        )
        erased += len(ids)
        if progress is not None:
            progress(erased)
    return erased


def _end_journeys(connection: Connection, ids: Sequence[int], now: datetime, actor: str) -> None:
    """End the active enrollments of erased contacts, each with an ``exit`` record."""
    active = and_(enrollments.c.contact_id.in_(ids), enrollments.c.status == "active")
    ending = connection.execute(
        select(enrollments.c.id, enrollments.c.contact_id).where(active)
    ).all()
    if not ending:
        return
    connection.execute(
        update(enrollments)
        .where(active)
        .values(status="exited", outcome="erased", ended_at=to_db(now), next_due_at=None)
    )
    record(
        connection,
        (
            audit_row(
                at=now,
                actor=actor,
                action="exit",
                contact_id=contact_id,
                reason="erased",
                details={"enrollment": enrollment_id},
            )
            for enrollment_id, contact_id in ending
        ),
    )
