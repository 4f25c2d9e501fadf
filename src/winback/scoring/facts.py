"""The per-contact facts a score is derived from, in a temporary table.

Per contact: the last human interaction overall and per channel (the rule of
:mod:`winback.scoring.interaction`, machine opens told apart by
:mod:`winback.scoring.machine_open`), the first and last purchase, the purchase count and
spend, the day of the last customer activity (the customer clock's anchor) and the
highest event id read.

:func:`facts_select` is the one query that computes them from the events; a full score
runs it over every event (:func:`fill_facts`). Another engine may compute the same facts
elsewhere (the same select compiled for Spark SQL) and fill :data:`score_facts` itself:
:func:`winback.scoring.run.score` takes that filler in place of :func:`fill_facts`.

An incremental run (:func:`merge_facts`) fills the table only for the contacts it
rewrites (``score_touch``): their stored facts merged with those of the new events
(latest of two times, sum of two counts; the customer clock's anchor is ``scored_at``
minus ``clock_days``), or all their events read again when a merge cannot be trusted: a
contact without a row, a prospect whose first purchase makes it a customer under a
policy whose customer activity is more than purchases (its past visits or opens are not
stored), and one with a new ``delivered`` event seconds before an open already counted
as human.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Float,
    Integer,
    MetaData,
    Select,
    Table,
    and_,
    case,
    column,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    table,
    union,
)

from winback.domain import INTERACTIONS, Channel, EventType
from winback.models.apply import model_estimates
from winback.scoring.interaction import human_interaction_sql
from winback.scoring.machine_open import delivered_before_open, machine_open_sql
from winback.scoring.sql_functions import local_day
from winback.scoring.stages import from_day_number
from winback.store.schema import contact_scores, contacts, events

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa

    from winback.scoring.run import ScoreRun

CHANNEL_COLUMNS = tuple(channel.value for channel in Channel)
# What a stored row carries from the facts.
LAST_SEEN_COLUMNS = ("last_interaction_at", *(f"last_{c}_at" for c in CHANNEL_COLUMNS))
TIME_COLUMNS = (*LAST_SEEN_COLUMNS, "first_purchase_at", "last_purchase_at")
FACT_COLUMNS = (*TIME_COLUMNS, "purchases", "total_spend")
temporary = MetaData()
score_facts = Table(
    "score_facts",
    temporary,
    Column("contact_id", Integer, primary_key=True),
    *(Column(name, DateTime) for name in TIME_COLUMNS),
    Column("purchases", Integer, nullable=False),
    Column("total_spend", Float, nullable=False),
    Column("activity_day", Integer),
    Column("last_event_id", Integer),
    prefixes=["TEMPORARY"],
)
score_delta = Table(
    "score_delta",
    temporary,
    *(Column(c.name, c.type, primary_key=c.primary_key) for c in score_facts.columns),
    prefixes=["TEMPORARY"],
)
score_redo = Table(
    "score_redo",
    temporary,
    Column("contact_id", Integer, primary_key=True),
    prefixes=["TEMPORARY"],
)
# The contacts ``score_changes`` notes when the run starts: the ones it empties at the end
# (on PostgreSQL, another transaction may note more while it runs).
score_noted = Table(
    "score_noted",
    temporary,
    Column("contact_id", Integer, primary_key=True),
    prefixes=["TEMPORARY"],
)
score_touch = Table(
    "score_touch",
    temporary,
    Column("contact_id", Integer, primary_key=True),
    Column("unscored", Boolean, nullable=False),
    prefixes=["TEMPORARY"],
)

#: Fills :data:`score_facts` for a full run; returns the highest event id the facts saw
#: when that is not the store's (another engine's snapshot), else None.
FillFacts = Callable[[Connection, "ScoreRun"], int | None]


def insert_facts(connection: Connection, facts: pa.Table, scratch: Path) -> None:
    """Write into :data:`score_facts` the facts another engine computed (an Arrow table
    of its columns), each column as the store keeps it
    (:func:`winback.store.arrow.stored`).

    On SQLite the table goes in through a scratch database in the ``scratch`` folder
    (:func:`winback.store.arrow.attach_arrow`); on PostgreSQL the rows go
    through the driver's ``executemany``, without SQLAlchemy's per-row work."""
    from winback.store.arrow import attach_arrow, stored

    if not facts.num_rows:
        return
    sqlite = connection.dialect.name == "sqlite"
    names = facts.column_names
    ready = stored(facts, score_facts.columns, sqlite=sqlite)
    if not sqlite:
        statement = insert(score_facts).compile(dialect=connection.dialect, column_keys=names)
        connection.exec_driver_sql(str(statement), ready.to_pylist())
        return
    schema = attach_arrow(connection, scratch, "facts", {"facts": ready})
    ingested = table("facts", *(column(name) for name in names), schema=schema)
    connection.execute(insert(score_facts).from_select(names, select(ingested)))


def facts_select(
    run: ScoreRun,
    where: Callable[[Any], Sequence[Any]] = lambda e: (),
    *,
    machine_resolved: bool = False,
) -> Select[Any]:
    """Per-contact facts (the columns of :data:`score_facts`) from the events for which
    ``where(e)`` holds (``e``: the alias of the events table the query reads).
    ``machine_resolved``: the events' ``machine_open`` flag already holds the rule's
    answer (the Parquet export), so the query reads it instead of looking up deliveries
    (a look-up Spark plans as a nested loop)."""
    e = events.alias("e")
    machine = (
        e.c.machine_open.is_(True)
        if machine_resolved
        else machine_open_sql(e, events.alias("d"), run.machine_open_seconds)
    )
    human = human_interaction_sql(e.c.type, machine_open=machine, bot=e.c.bot)
    activity_types = sorted(run.policy.customer_activity)
    relevant = sorted({str(t) for t in INTERACTIONS} | run.policy.customer_activity)
    inner = (
        select(
            e.c.id,
            # +0: group by a value, not the column, so SQLite sorts the matching rows
            # instead of walking the whole (contact, time) index with a table lookup each.
            (e.c.contact_id + 0).label("contact_id"),
            e.c.type,
            e.c.channel,
            e.c.occurred_at,
            e.c.amount,
            human.label("human"),
        )
        .where(e.c.type.in_(relevant), *where(e))
        # OFFSET 0 keeps this a subquery (SQLite would otherwise inline it and run the
        # machine-open test once per aggregate that reads ``human``).
        .offset(0)
        .subquery("x")
    )
    x = inner.c
    is_purchase = x.type == EventType.PURCHASE.value
    interaction_types = sorted(str(t) for t in INTERACTIONS)
    activity = and_(
        x.type.in_(activity_types),
        or_(x.human == 1, not_(x.type.in_(interaction_types))),
    )
    columns: list[ColumnElement[Any]] = [
        x.contact_id.label("contact_id"),
        func.max(case((x.human == 1, x.occurred_at))).label("last_interaction_at"),
    ]
    for channel in CHANNEL_COLUMNS:
        columns.append(
            func.max(case((and_(x.human == 1, x.channel == channel), x.occurred_at))).label(
                f"last_{channel}_at"
            )
        )
    columns += [
        func.min(case((is_purchase, x.occurred_at))).label("first_purchase_at"),
        func.max(case((is_purchase, x.occurred_at))).label("last_purchase_at"),
        func.sum(case((is_purchase, 1), else_=0)).label("purchases"),
        func.coalesce(func.sum(case((is_purchase, x.amount))), 0.0).label("total_spend"),
        local_day(func.max(case((activity, x.occurred_at))), run.timezone).label("activity_day"),
        func.max(x.id).label("last_event_id"),
    ]
    return select(*columns).group_by(x.contact_id)


def _insert_select(connection: Connection, table: Table, query: Select[Any]) -> None:
    connection.execute(insert(table).from_select(list(query.selected_columns.keys()), query))


def fill_facts(connection: Connection, run: ScoreRun) -> None:
    """Fill :data:`score_facts` with the facts of every contact that has events (a full
    score); the store's events, read by :func:`facts_select`."""
    _insert_select(connection, score_facts, facts_select(run))


def merge_facts(connection: Connection, run: ScoreRun, since: int, high_water: int) -> int:
    """Facts of the contacts this incremental run rewrites (``score_touch``, see
    :func:`_touch`): the stored facts merged with those of the events
    ``since < id <= high_water``, or all of a contact's events read again when the
    stored facts cannot be merged. Returns the number of new events."""
    count = connection.execute(
        select(func.count())
        .select_from(events)
        .where(events.c.id > since, events.c.id <= high_water)
    ).scalar_one()
    _insert_select(
        connection, score_delta, facts_select(run, lambda e: (e.c.id > since, e.c.id <= high_water))
    )
    _touch(connection, run)

    old = contact_scores
    o = events.alias("o")
    dd = events.alias("dd")
    # A new delivery seconds before an unflagged open makes it a machine open: when that
    # open was counted as human, the contact's facts must be read again. (Asking for
    # opens older than the new events as well would steer SQLite to the message-id
    # index; re-reading a contact whose new open follows a new delivery is harmless.)
    reclassified = (
        select(dd.c.contact_id)
        .where(
            dd.c.id > since,
            dd.c.id <= high_water,
            dd.c.type == EventType.DELIVERED.value,
            dd.c.message_id.is_not(None),
            exists(
                select(literal(1))
                .select_from(o)
                .where(
                    *delivered_before_open(dd, o, run.machine_open_seconds, sought="opened"),
                    o.c.type == EventType.OPEN.value,
                    o.c.machine_open.is_(None),
                )
            ),
        )
        .distinct()
    )
    unscored = select(score_touch.c.contact_id).where(score_touch.c.unscored.is_(True))
    redo_parts = [reclassified, unscored]
    if run.policy.customer_activity != {EventType.PURCHASE.value}:
        # A prospect's past customer activity (its visits, its opens...) is not stored:
        # a first purchase re-reads it. When only purchases count, a prospect has none.
        redo_parts.append(
            select(score_delta.c.contact_id).where(
                score_delta.c.purchases > 0,
                exists(
                    select(literal(1)).where(
                        old.c.contact_id == score_delta.c.contact_id, old.c.purchases == 0
                    )
                ),
            )
        )
    redo = union(*redo_parts).subquery()
    connection.execute(insert(score_redo).from_select(["contact_id"], select(redo.c[0])))
    _insert_select(
        connection,
        score_facts,
        facts_select(run, lambda e: (e.c.contact_id.in_(select(score_redo.c.contact_id)),)),
    )

    d = score_delta.c
    old_anchor = case((old.c.purchases > 0, _stored_anchor(run)))
    merged: list[ColumnElement[Any]] = [old.c.contact_id]
    for name in LAST_SEEN_COLUMNS:
        merged.append(_later(old.c[name], d[name]).label(name))
    merged += [
        _earlier(old.c.first_purchase_at, d.first_purchase_at).label("first_purchase_at"),
        _later(old.c.last_purchase_at, d.last_purchase_at).label("last_purchase_at"),
        (old.c.purchases + func.coalesce(d.purchases, 0)).label("purchases"),
        (old.c.total_spend + func.coalesce(d.total_spend, 0.0)).label("total_spend"),
        _later(old_anchor, d.activity_day).label("activity_day"),
        _later(old.c.last_event_id, d.last_event_id).label("last_event_id"),
    ]
    keep = (
        select(*merged)
        .select_from(old.outerjoin(score_delta, score_delta.c.contact_id == old.c.contact_id))
        .where(
            old.c.contact_id.in_(select(score_touch.c.contact_id)),
            old.c.contact_id.not_in(select(score_redo.c.contact_id)),
        )
    )
    _insert_select(connection, score_facts, keep)
    return int(count)


def _stored_anchor(run: ScoreRun) -> ColumnElement[Any]:
    """The day a stored row's clock runs from (its clock is as of its ``scored_at``)."""
    return local_day(contact_scores.c.scored_at, run.timezone) - contact_scores.c.clock_days


def _touch(connection: Connection, run: ScoreRun) -> None:
    """Fill ``score_touch`` with the contacts an incremental run rewrites: those whose
    record changed or that were added since the last run (``score_noted``: an erased
    one loses its row), those with new events (``score_delta``), those whose clock
    reached its next threshold (found through the index on ``next_threshold_on``) and,
    with a model fit, every customer who has estimates. ``unscored`` marks the ones
    without a stored row, whose facts are read again."""
    old, noted = contact_scores, score_noted.c.contact_id
    # Look-ups from the (short) list of changes: a join would let SQLite, which has no
    # statistics on that table, walk every contact instead.
    erased = exists(
        select(literal(1)).where(contacts.c.id == noted, contacts.c.erased_at.is_not(None))
    )
    unscored = and_(not_(erased), not_(exists(select(literal(1)).where(old.c.contact_id == noted))))
    connection.execute(
        insert(score_touch).from_select(["contact_id", "unscored"], select(noted, unscored))
    )
    due = old.c.next_threshold_on <= from_day_number(run.now_day)
    # A customer's model estimates move with every day of silence: with a fit, every
    # customer who has them is rewritten.
    news = (
        select(score_delta.c.contact_id)
        .union(select(old.c.contact_id).where(due), select(model_estimates.c.contact_id))
        .subquery()
    )
    connection.execute(
        insert(score_touch).from_select(
            ["contact_id", "unscored"],
            select(news.c[0], literal(False)).where(
                news.c[0].not_in(select(score_touch.c.contact_id))
            ),
        )
    )


def _later(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    """The greater of two nullable values (NULL only when both are)."""
    return case((b.is_(None), a), (a.is_(None), b), (b > a, b), else_=a)


def _earlier(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((b.is_(None), a), (a.is_(None), b), (b < a, b), else_=a)
