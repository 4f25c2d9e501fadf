"""The one door through which the event history is read, outside scoring and ingest.

Tick reactions, journey results, the kept figures, the base's health, the retention
purge, the models' purchase history, the GDPR export, ``contact show`` and the soft-bounce
count all read events here, so the choice of the store that holds them is made in one
module. Today the history is the ``events`` table of the operational store, and
:func:`events_slice` hands it back (filtered when bounds are given); when the history
lives elsewhere, this module is the one to change: a slice can then be a temporary table
filled with just the events within its bounds, which is why callers state the bounds
they know as constants (types, times, contacts, ids) rather than filtering on their own.

Writes are not here: :func:`winback.events.record_events` is the one path that stores
events, erasure blanks their personal columns (:mod:`winback.compliance.erasure`).
``tests/test_history_reader.py`` checks that no other module selects from the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, FromClause, Select, func, select

from winback.clock import to_db
from winback.store.chunks import chunks
from winback.store.schema import events

#: A set of ids: a list, or a select of one column of ids.
Ids = Sequence[int] | Select[Any]


def events_slice(
    connection: Connection | None,
    *,
    contacts: Ids | None = None,
    contact_id: int | None = None,
    types: Iterable[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int | None = None,
    up_to_id: int | None = None,
) -> FromClause:
    """The events within these bounds, as something to select from, join and group on
    with the columns of ``events``: those of ``contacts`` (or of ``contact_id``), of
    ``types``, that occurred from ``since`` to ``until`` (aware, both included), whose id
    is above ``after_id`` and at most ``up_to_id``. Every bound is optional.

    With no bound it is the table itself, so that the caller's joins keep its indexes;
    with bounds a subquery, which SQLite and PostgreSQL fold into the caller's query (the
    same plans as the conditions written on the table). ``connection`` is where the slice
    will be read: a store that is not this database fills it there; None when another
    engine reads it (the history's copy seen as the ``events`` table, in DuckDB).

    For example, what each contact of a list spent in the last 30 days::

        bought = events_slice(
            connection, contacts=ids, types=["purchase"], since=now - timedelta(days=30)
        )
        select(bought.c.contact_id, func.sum(bought.c.amount)).group_by(bought.c.contact_id)
    """
    bounds: list[ColumnElement[bool]] = []
    if contacts is not None:
        bounds.append(events.c.contact_id.in_(contacts))
    if contact_id is not None:
        bounds.append(events.c.contact_id == contact_id)
    if types is not None:
        bounds.append(events.c.type.in_(sorted(str(kind) for kind in types)))
    if since is not None:
        bounds.append(events.c.occurred_at >= to_db(since))
    if until is not None:
        bounds.append(events.c.occurred_at <= to_db(until))
    if after_id is not None:
        bounds.append(events.c.id > after_id)
    if up_to_id is not None:
        bounds.append(events.c.id <= up_to_id)
    if not bounds:
        return events
    return select(events).where(*bounds).subquery("event_slice")


def high_water(connection: Connection) -> int:
    """The highest event id stored (0 when there is none): events are only ever added,
    so what came after a mark is what has a higher id."""
    return int(connection.execute(select(func.max(events.c.id))).scalar() or 0)


def stored_keys(connection: Connection, keys: Sequence[bytes]) -> set[bytes]:
    """Those of the digests ``keys`` (``dedup_key``) that a stored event has."""
    found: set[bytes] = set()
    for part in chunks(sorted(set(keys))):
        query = select(events.c.dedup_key).where(events.c.dedup_key.in_(part))
        found.update(bytes(key) for key in connection.execute(query).scalars())
    return found


def event_key(connection: Connection, event_id: int) -> str:
    """The digest that identifies event ``event_id`` (hex; "" when there is none): an id
    names the same event as long as this does."""
    key = connection.execute(select(events.c.dedup_key).where(events.c.id == event_id)).scalar()
    return bytes(key).hex() if key is not None else ""


def contact_events(
    connection: Connection, contact_id: int, limit: int | None = None
) -> list[dict[str, Any]]:
    """A contact's events, newest first (the ``limit`` newest, or all of them)."""
    mine = events_slice(connection, contact_id=contact_id)
    query = select(mine).order_by(mine.c.occurred_at.desc(), mine.c.id.desc()).limit(limit)
    return [dict(row) for row in connection.execute(query).mappings()]
