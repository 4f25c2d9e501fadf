"""``winback score``: per-contact facts, RFM and stages for the whole base, in SQL.

Why SQL in the store, and not DuckDB. The bulk work runs as a handful of set-based
statements inside the store (SQLite or PostgreSQL), built with SQLAlchemy Core so one
definition compiles for both. Measured on 1M contacts / 20M events in SQLite (2 cores):
DuckDB would first have to read the events out of SQLite: reading the 12.7M events the
facts need through Python's ``sqlite3`` takes about a minute, through ADBC into Arrow
27 s, through DuckDB's own ``sqlite`` extension (1.5.5, from the PyPI package
``duckdb-extension-sqlite-scanner``) 11.3 s, and the facts query run by DuckDB on the
SQLite file 16.3 to 18.6 s; SQLite's own scan of the events takes 5 s, and the grouped
aggregation of the interaction events, sorted rather than walked through the (contact,
time) index, fits in the full score's budget (see bench/score.py and the README).
The costly part was the machine-open rule: one look-up of the delivery per unflagged
open. It seeks the (contact, time) index over a window of a few seconds, which holds
almost nothing, rather than every event of the message. On PostgreSQL the same
statements run as parallel hash aggregates.

The pipeline (one transaction):

1. *facts* per contact into a temporary table: last human interaction overall and per
   channel, first/last purchase, purchase count and spend, and the day of the last
   customer activity (the customer clock's anchor). Machine opens are left out with the
   rule of :mod:`winback.scoring.machine_open`, written here in SQL;
2. quintile breakpoints of recency, frequency and monetary value over the customers;
3. the derived row of every contact (clock, stage, RFM, spend level, flags, the day of
   the next threshold), computed by ``CASE`` expressions that mirror
   :mod:`winback.scoring.stages`, with the estimates of the latest model fit
   (:func:`winback.models.apply.fill_estimates`) joined in;
4. the rows are written; every stage change is appended to ``stage_history`` and the
   audit log, dated with ``now``'s local date.

Incremental rescoring. Each run leaves an audit record (action ``score_run``) holding the
highest event id it saw, a fingerprint of the policy and the RFM breakpoints. The next
run, under the same policy, rewrites only the contacts it must (``score_touch``):

- those with events newer than the last run's;
- those whose clock reached its next threshold: every row stores the day that happens
  (``next_threshold_on``, indexed), so they are found without reading the others;
- with a model fit, every customer who has estimates: they move with each day of silence;
- those whose contact record changed since the last run (a refusal or a new consent, a
  journey that let them go, a paid subscription, a creation date, an erasure) and those
  added since: triggers on ``contacts`` note them in ``score_changes`` as they are
  written, whoever writes them (migration 0004); a run removes the notes it found when
  it started (those written while it runs wait for the next one). Without
  the triggers (a SQLite migration that rebuilt ``contacts`` drops them) the run is a
  full one and says why.

Their facts are the stored ones merged with those of the new events (latest of two
times, sum of two counts; the customer clock's anchor is ``scored_at`` minus
``clock_days``), or all their events read again when a merge cannot be trusted: a
contact without a row, a prospect whose first purchase makes it a customer under a
policy whose customer activity is more than purchases (its past visits or opens are not
stored), and one with a new ``delivered`` event seconds before an open already counted
as human. The RFM quintile breakpoints are those of the last
full score (``winback score --full`` recomputes them over the base of the day); the
policy, zone and machine-open rule are in the fingerprint, so changing them makes the
next run a full one. ``days_inactive`` and ``clock_days`` are as of the row's
``scored_at``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    true,
    union,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from winback.clock import to_db
from winback.compliance.audit import audit_row, record, record_selected
from winback.config import Config, ModelsSection
from winback.domain import INTERACTIONS, REFUSED_STATUSES, Channel, ChannelStatus, EventType, Stage
from winback.models.apply import fill_estimates, model_estimates
from winback.scoring.machine_open import proxy_user_agent_sql
from winback.scoring.sql import day_date, local_day, seconds_between, shifted
from winback.scoring.stages import (
    CONSENT_PRECEDENCE,
    WINBACK_STAGES,
    Policy,
    day_number,
    from_day_number,
)
from winback.store.engine import BULK_CACHE_SIZE, bulk_transaction
from winback.store.schema import (
    audit,
    contact_scores,
    contacts,
    events,
    score_changes,
    stage_history,
)

RUN_ACTION = "score_run"
# The triggers of migration 0004 that note changed contacts in ``score_changes``.
CHANGE_TRIGGERS = ("score_changes_insert", "score_changes_update")
ACTOR = "score"
CHANNEL_COLUMNS = tuple(channel.value for channel in Channel)
# What a stored row carries from the facts.
LAST_SEEN_COLUMNS = ("last_interaction_at", *(f"last_{c}_at" for c in CHANNEL_COLUMNS))
TIME_COLUMNS = (*LAST_SEEN_COLUMNS, "first_purchase_at", "last_purchase_at")
FACT_COLUMNS = (*TIME_COLUMNS, "purchases", "total_spend")
# What an incremental run compares to tell whether a touched contact's row changed: all
# but the clocks and the event watermark, which are as of the row's ``scored_at``.
KEPT_COLUMNS = tuple(
    c.name
    for c in contact_scores.columns
    if c.name not in ("contact_id", "scored_at", "last_event_id", "days_inactive", "clock_days")
)
_NO_BREAKPOINTS = (0.0, 0.0, 0.0, 0.0)
_temp = MetaData()
score_facts = Table(
    "score_facts",
    _temp,
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
    _temp,
    *(Column(c.name, c.type, primary_key=c.primary_key) for c in score_facts.columns),
    prefixes=["TEMPORARY"],
)
score_redo = Table(
    "score_redo",
    _temp,
    Column("contact_id", Integer, primary_key=True),
    prefixes=["TEMPORARY"],
)
# The contacts ``score_changes`` notes when the run starts: the ones it empties at the end
# (on PostgreSQL, another transaction may note more while it runs).
score_noted = Table(
    "score_noted",
    _temp,
    Column("contact_id", Integer, primary_key=True),
    prefixes=["TEMPORARY"],
)
score_touch = Table(
    "score_touch",
    _temp,
    Column("contact_id", Integer, primary_key=True),
    Column("unscored", Boolean, nullable=False),
    prefixes=["TEMPORARY"],
)
score_new = Table(
    "score_new",
    _temp,
    *(
        Column(c.name, c.type, primary_key=c.primary_key)
        for c in contact_scores.columns
        if c.name != "contact_id"
    ),
    Column("contact_id", Integer, primary_key=True),
    Column("old_stage", String(16)),
    prefixes=["TEMPORARY"],
)
_TEMP_TABLES = (
    score_facts,
    score_delta,
    score_redo,
    score_noted,
    score_touch,
    score_new,
    model_estimates,
)


@dataclass
class ScoreResult:
    """What a scoring run did: ``mode`` is ``full`` or ``incremental``."""

    now: datetime
    mode: str
    reason: str
    contacts: int
    rewritten: int
    stage_changes: int
    new_events: int | None
    stages: dict[str, int] = field(default_factory=dict)
    models: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "now": self.now.isoformat()}


@dataclass(frozen=True)
class _Run:
    """The fixed inputs of one run."""

    policy: Policy
    timezone: str
    machine_open_seconds: int
    now: datetime
    models: ModelsSection = field(default_factory=ModelsSection)

    @property
    def now_day(self) -> int:
        return day_number(self.now, ZoneInfo(self.timezone))

    def fingerprint(self) -> str:
        """What stored rows depend on (the facts, and the stages of the contacts an
        incremental run does not rewrite): a change forces a full score."""
        policy = {k: v for k, v in asdict(self.policy).items() if k != "customer_activity"}
        text = json.dumps(
            {
                "activity": sorted(self.policy.customer_activity),
                "policy": policy,
                "tz": self.timezone,
                "machine_open_seconds": self.machine_open_seconds,
                "version": 4,
            },
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def score_base(engine: Engine, config: Config, now: datetime, *, full: bool = False) -> ScoreResult:
    """Score every contact of the base at ``now`` (aware). Incremental when a previous run
    under the same policy exists, unless ``full``. One transaction: readers see the old
    scores or the new ones."""
    run = _Run(
        policy=Policy.from_config(config.policy),
        timezone=config.workspace.timezone,
        machine_open_seconds=config.scoring.machine_open_seconds,
        now=now,
        models=config.models,
    )
    # The rows a run rewrites lie all over contact_scores and its indexes: the bulk page
    # cache keeps them until the commit. Only the cache: with its scratch tables in
    # memory as well (temp_store), the full score on a million contacts took 10 s longer.
    with bulk_transaction(engine, {"cache_size": BULK_CACHE_SIZE}) as connection:
        return _score(connection, run, full=full)


def _score(connection: Connection, run: _Run, *, full: bool = False) -> ScoreResult:
    """:func:`score_base` inside the caller's transaction."""
    for table in _TEMP_TABLES:
        table.drop(connection, checkfirst=True)
        table.create(connection)
    try:
        connection.execute(
            insert(score_noted).from_select(["contact_id"], select(score_changes.c.contact_id))
        )
        high_water = connection.execute(select(func.max(events.c.id))).scalar() or 0
        previous = _last_run(connection)
        reason = _full_reason(connection, previous, run, full)
        models = fill_estimates(connection, run.models, run.now)
        if reason:
            mode, new_events = "full", None
            _full_facts(connection, run)
            breakpoints = _breakpoints(connection, run)
        else:
            assert previous is not None
            mode = "incremental"
            new_events = _merged_facts(connection, run, int(previous["high_water"]), high_water)
            reason = f"{new_events} new events since event {previous['high_water']}"
            breakpoints = Breakpoints.from_json(previous["breakpoints"])
        _derive(connection, run, breakpoints, rewrite_all=mode == "full")
        changes, rewritten = _write(connection, run, full=mode == "full")
        # The changes noted when the run started are in the rows now; those noted since
        # wait for the next run.
        connection.execute(
            delete(score_changes).where(
                score_changes.c.contact_id.in_(select(score_noted.c.contact_id))
            )
        )
        stages: dict[Any, Any] = dict(
            connection.execute(
                select(contact_scores.c.stage, func.count()).group_by(contact_scores.c.stage)
            ).all()
        )
        details = {
            "high_water": high_water,
            "fingerprint": run.fingerprint(),
            "mode": mode,
            "rewritten": rewritten,
            "stage_changes": changes,
            "now": run.now.isoformat(),
            "breakpoints": breakpoints.as_json(),
        }
        record(
            connection,
            [
                audit_row(
                    at=run.now,
                    actor=ACTOR,
                    action=RUN_ACTION,
                    reason=f"{mode} score",
                    details=details,
                )
            ],
        )
    finally:
        for table in _TEMP_TABLES:
            table.drop(connection, checkfirst=True)
    return ScoreResult(
        now=run.now,
        mode=mode,
        reason=reason,
        contacts=sum(int(count) for count in stages.values()),
        rewritten=rewritten,
        stage_changes=changes,
        new_events=new_events,
        stages={str(k): int(v) for k, v in sorted(stages.items())},
        models=models,
    )


def _last_run(connection: Connection) -> dict[str, Any] | None:
    details = connection.execute(
        select(audit.c.details)
        .where(audit.c.action == RUN_ACTION, audit.c.contact_id.is_(None))
        .order_by(audit.c.id.desc())
        .limit(1)
    ).scalar()
    return dict(details) if details else None


def _full_reason(
    connection: Connection, previous: dict[str, Any] | None, run: _Run, full: bool
) -> str:
    if full:
        return "full score requested"
    if previous is None:
        return "first score of this base"
    if previous.get("fingerprint") != run.fingerprint():
        return "the policy, time zone or machine-open rule changed since the last score"
    missing = _missing_change_triggers(connection)
    if missing:
        return (
            f"the triggers that note changed contacts are missing ({', '.join(missing)}): "
            "a migration rebuilt the contacts table without them"
        )
    if (
        not previous["breakpoints"]["customers"]
        and connection.execute(
            select(func.count())
            .select_from(events)
            .where(events.c.id > previous["high_water"], events.c.type == EventType.PURCHASE.value)
        ).scalar_one()
    ):
        return "the first customers of the base: the RFM quintiles need a full score"
    return ""


def _missing_change_triggers(connection: Connection) -> list[str]:
    """The triggers on ``contacts`` that fill ``score_changes`` (migration 0004) which the
    database lacks: without them an incremental run would miss changed contacts."""
    if connection.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'contacts'"
    else:
        query = "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass('contacts')"
    present = set(connection.exec_driver_sql(query).scalars())
    return [name for name in CHANGE_TRIGGERS if name not in present]


# --- 1. facts ----------------------------------------------------------------------


def _facts_select(run: _Run, where: Callable[[Any], Sequence[Any]] = lambda e: ()) -> Select[Any]:
    """Per-contact facts from the events for which ``where(e)`` holds (``e``: the alias of
    the events table the query reads)."""
    e = events.alias("e")
    d = events.alias("d")
    delivered_just_before = exists(
        select(literal(1))
        .select_from(d)
        .where(*_delivered_before_open(d, e, run.machine_open_seconds, sought="delivered"))
    )
    machine = or_(
        e.c.machine_open.is_(True),
        and_(
            e.c.machine_open.is_(None),
            or_(
                proxy_user_agent_sql(e.c.user_agent),
                and_(e.c.message_id.is_not(None), delivered_just_before),
            ),
        ),
    )
    human = case(
        (e.c.type == EventType.OPEN.value, case((machine, 0), else_=1)),
        (
            e.c.type == EventType.CLICK.value,
            case((e.c.bot.is_(True), 0), else_=1),
        ),
        (e.c.type.in_(sorted(INTERACTIONS - {EventType.OPEN, EventType.CLICK})), 1),
        else_=0,
    )
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


def _delivered_before_open(
    delivered: Any, opened: Any, seconds: int, *, sought: str
) -> tuple[ColumnElement[bool], ...]:
    """Two aliases of ``events``: ``delivered`` is the delivery of the message that
    ``opened`` opens, at most ``seconds`` before it. ``sought`` (``"delivered"`` or
    ``"opened"``) is the alias the query looks up: the time range is written on its
    column, so the database seeks the (contact, time) index, where a few seconds hold
    almost no event, instead of visiting every event of the message through the
    message-id index."""
    if sought == "delivered":
        window = delivered.c.occurred_at.between(
            shifted(opened.c.occurred_at, -seconds), opened.c.occurred_at
        )
    else:
        window = opened.c.occurred_at.between(
            delivered.c.occurred_at, shifted(delivered.c.occurred_at, seconds)
        )
    return (
        delivered.c.contact_id == opened.c.contact_id,
        window,
        delivered.c.message_id == opened.c.message_id,
        delivered.c.type == EventType.DELIVERED.value,
        seconds_between(delivered.c.occurred_at, opened.c.occurred_at).between(0, seconds),
    )


def _full_facts(connection: Connection, run: _Run) -> None:
    query = _facts_select(run)
    connection.execute(insert(score_facts).from_select(list(query.selected_columns.keys()), query))


def _merged_facts(connection: Connection, run: _Run, since: int, high_water: int) -> int:
    """Facts of the contacts this incremental run rewrites (``score_touch``, see
    :func:`_touch`): the stored facts merged with those of the events
    ``since < id <= high_water``, or all of a contact's events read again when the
    stored facts cannot be merged. Returns the number of new events."""
    count = connection.execute(
        select(func.count())
        .select_from(events)
        .where(events.c.id > since, events.c.id <= high_water)
    ).scalar_one()
    delta = _facts_select(run, lambda e: (e.c.id > since, e.c.id <= high_water))
    connection.execute(insert(score_delta).from_select(list(delta.selected_columns.keys()), delta))
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
                    *_delivered_before_open(dd, o, run.machine_open_seconds, sought="opened"),
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
    again = _facts_select(run, lambda e: (e.c.contact_id.in_(select(score_redo.c.contact_id)),))
    connection.execute(insert(score_facts).from_select(list(again.selected_columns.keys()), again))

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
    connection.execute(insert(score_facts).from_select(list(keep.selected_columns.keys()), keep))
    return int(count)


def _stored_anchor(run: _Run) -> ColumnElement[Any]:
    """The day a stored row's clock runs from (its clock is as of its ``scored_at``)."""
    return local_day(contact_scores.c.scored_at, run.timezone) - contact_scores.c.clock_days


def _touch(connection: Connection, run: _Run) -> None:
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


# --- 2. RFM breakpoints ------------------------------------------------------------


@dataclass(frozen=True)
class Breakpoints:
    """Quintile breakpoints (20/40/60/80th percentiles, ``percentile_disc``) over the
    ``customers``: recency on the day of the last purchase, frequency on the number of
    purchases, monetary on the total spend.

    A full score sets them; incremental runs keep them (they are stored in the run's
    audit record), so a contact whose facts did not change keeps its R, F and M, and one
    whose facts changed is placed against the same breakpoints. ``winback score --full``
    recomputes them over the base of the day."""

    customers: int
    recency: tuple[float, ...]
    frequency: tuple[float, ...]
    monetary: tuple[float, ...]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Breakpoints:
        return cls(
            customers=int(data["customers"]),
            **{name: tuple(data[name]) for name in ("recency", "frequency", "monetary")},
        )


def _breakpoints(connection: Connection, run: _Run) -> Breakpoints:
    f = score_facts.c
    customers = connection.execute(
        select(func.count()).select_from(score_facts).where(f.purchases > 0)
    ).scalar_one()
    if not customers:
        return Breakpoints(0, _NO_BREAKPOINTS, _NO_BREAKPOINTS, _NO_BREAKPOINTS)
    ranks = [math.ceil(p * customers) for p in (0.2, 0.4, 0.6, 0.8)]
    result = []
    for value in (local_day(f.last_purchase_at, run.timezone), f.purchases, f.total_spend):
        ranked = (
            select(value.label("value"), func.row_number().over(order_by=value).label("rank"))
            .where(f.purchases > 0)
            .subquery()
        )
        rows = dict(
            connection.execute(
                select(ranked.c.rank, ranked.c.value).where(ranked.c.rank.in_(ranks))
            ).all()
        )
        result.append(tuple(float(rows[rank]) for rank in ranks))
    return Breakpoints(int(customers), *result)


# --- 3. derived rows -----------------------------------------------------------------


def every_address_refused(
    email_status: ColumnElement[Any], sms_status: ColumnElement[Any]
) -> ColumnElement[bool]:
    """SQL for the consent rule of :func:`winback.scoring.stages.consent_stage`: the
    contact has at least one address, and every address it has is refused."""
    refused = sorted(REFUSED_STATUSES)
    none = ChannelStatus.NONE.value
    email_known, sms_known = email_status != none, sms_status != none
    return and_(
        or_(email_known, sms_known),
        or_(not_(email_known), email_status.in_(refused)),
        or_(not_(sms_known), sms_status.in_(refused)),
    )


def _consent_stage(
    email_status: ColumnElement[Any], sms_status: ColumnElement[Any]
) -> ColumnElement[Any]:
    """The consent stage of a contact whose every address is refused."""
    *stronger, weakest = CONSENT_PRECEDENCE
    return case(
        *(
            (or_(email_status == stage.value, sms_status == stage.value), stage.value)
            for stage in stronger
        ),
        else_=weakest.value,
    )


def _lost_by_journey(
    lost_at: ColumnElement[Any], last_interaction_at: ColumnElement[Any]
) -> ColumnElement[bool]:
    """A finished win-back journey let the contact go and it has not interacted since."""
    return and_(
        lost_at.is_not(None),
        or_(last_interaction_at.is_(None), last_interaction_at <= lost_at),
    )


def _protected(
    policy: Policy, subscription_active: ColumnElement[Any], stage: ColumnElement[Any]
) -> ColumnElement[bool]:
    """The ``dormant_subscriber`` flag."""
    return and_(
        literal(policy.protect_subscribers),
        subscription_active.is_(True),
        stage.in_(sorted(s.value for s in WINBACK_STAGES)),
    )


def _prospect_anchor(
    created_day: ColumnElement[Any], interaction_day: ColumnElement[Any]
) -> ColumnElement[Any]:
    """A prospect's clock runs from the later of its creation and its last interaction."""
    return case(
        (and_(interaction_day.is_not(None), interaction_day > created_day), interaction_day),
        else_=created_day,
    )


def _quintile(value: ColumnElement[Any], points: Sequence[float]) -> ColumnElement[Any]:
    score: ColumnElement[Any] = literal(1)
    for point in points:
        score = score + case((value > point, 1), else_=0)
    return score


def _derive(connection: Connection, run: _Run, points: Breakpoints, *, rewrite_all: bool) -> None:
    """Fill ``score_new`` with the rows to write: every contact's with ``rewrite_all``
    (a full score), else those of the contacts in ``score_touch``."""
    policy, tz = run.policy, run.timezone
    c, f, old = contacts, score_facts, contact_scores
    today = from_day_number(run.now_day)
    # IN rather than a join: SQLite then looks the touched contacts up by id instead of
    # scanning them all.
    scored = [] if rewrite_all else [c.c.id.in_(select(score_touch.c.contact_id))]
    base = (
        select(
            c.c.id.label("contact_id"),
            *(f.c[name] for name in TIME_COLUMNS),
            func.coalesce(f.c.purchases, 0).label("purchases"),
            func.coalesce(f.c.total_spend, 0.0).label("total_spend"),
            f.c.activity_day,
            f.c.last_event_id,
            local_day(c.c.created_at, tz).label("created_day"),
            local_day(f.c.last_interaction_at, tz).label("interaction_day"),
            local_day(f.c.last_purchase_at, tz).label("purchase_day"),
            c.c.email_status,
            c.c.sms_status,
            c.c.lost_by_journey_at,
            c.c.subscription_active,
            old.c.stage.label("old_stage"),
            old.c.stage_since.label("old_stage_since"),
            model_estimates.c.p_alive,
            model_estimates.c.stage_p_alive,
            model_estimates.c.expected_purchases_90d,
            model_estimates.c.expected_value_12m,
        )
        .select_from(
            c.outerjoin(f, f.c.contact_id == c.c.id)
            .outerjoin(old, old.c.contact_id == c.c.id)
            .outerjoin(model_estimates, model_estimates.c.contact_id == c.c.id)
        )
        .where(c.c.erased_at.is_(None), *scored)
        .subquery("a")
    )
    a = base.c
    is_customer = a.purchases > 0
    anchor = case(
        (and_(is_customer, a.activity_day.is_not(None)), a.activity_day),
        else_=_prospect_anchor(a.created_day, a.interaction_day),
    )
    clock_days = literal(run.now_day) - anchor
    # winback.scoring.stages.clock_stage and p_alive_stage, in SQL.
    by_clock = case(
        *((clock_days >= days, stage.value) for days, stage in policy.clock_thresholds()),
        (is_customer, Stage.ACTIVE.value),
        else_=Stage.PROSPECT.value,
    )
    whens: list[tuple[Any, Any]] = [
        (
            every_address_refused(a.email_status, a.sms_status),
            _consent_stage(a.email_status, a.sms_status),
        ),
        (_lost_by_journey(a.lost_by_journey_at, a.last_interaction_at), Stage.LOST.value),
    ]
    if policy.clock == "p_alive":
        by_p_alive = case(
            *(
                (a.stage_p_alive < bound, stage.value)
                for bound, stage in policy.p_alive_thresholds()
            ),
            else_=Stage.ACTIVE.value,
        )
        whens.append((and_(is_customer, a.stage_p_alive.is_not(None)), by_p_alive))
    stage = case(*whens, else_=by_clock)
    staged = select(
        base,
        clock_days.label("clock_days"),
        (literal(run.now_day) - a.interaction_day).label("days_inactive"),
        stage.label("stage"),
        case((is_customer, _quintile(a.purchase_day, points.recency))).label("recency_score"),
        case((is_customer, _quintile(a.purchases, points.frequency))).label("frequency_score"),
        case((is_customer, _quintile(a.total_spend, points.monetary))).label("monetary_score"),
    ).subquery("b")
    b = staged.c
    spend = case(
        (b.monetary_score <= 2, "low"),
        (b.monetary_score <= 4, "medium"),
        (b.monetary_score.is_not(None), "high"),
    )
    thresholds = sorted(days for days, _ in policy.clock_thresholds())
    next_threshold = case(
        *(
            (b.clock_days < days, day_date(literal(run.now_day + days) - b.clock_days))
            for days in thresholds
        )
    )
    final = select(
        b.contact_id,
        literal(to_db(run.now)).label("scored_at"),
        *(b[name] for name in FACT_COLUMNS),
        b.last_event_id,
        b.days_inactive,
        case((b.purchases > 0, b.total_spend / b.purchases)).label("avg_spend"),
        b.recency_score,
        b.frequency_score,
        b.monetary_score,
        spend.label("spend_level"),
        b.clock_days,
        b.stage,
        case((b.old_stage == b.stage, b.old_stage_since), else_=literal(today)).label(
            "stage_since"
        ),
        _protected(policy, b.subscription_active, b.stage).label("dormant_subscriber"),
        b.p_alive,
        b.expected_purchases_90d,
        b.expected_value_12m,
        next_threshold.label("next_threshold_on"),
        b.old_stage,
    )
    connection.execute(insert(score_new).from_select(list(final.selected_columns.keys()), final))


# --- 4. writing ------------------------------------------------------------------------


def _write(connection: Connection, run: _Run, *, full: bool) -> tuple[int, int]:
    """Replace the stored rows of the contacts in ``score_new`` (every row on a ``full``
    score, else those of ``score_touch`` that changed: an erased contact's row goes
    without a new one), and record the stage changes. Returns (stage changes, rows
    written)."""
    n = score_new.c
    today = from_day_number(run.now_day)
    changed = or_(n.old_stage.is_(None), n.old_stage != n.stage)
    connection.execute(
        insert(stage_history).from_select(
            ["contact_id", "from_stage", "to_stage", "changed_on"],
            select(n.contact_id, n.old_stage, n.stage, literal(today, Date)).where(changed),
        )
    )
    record_selected(
        connection,
        select(
            n.contact_id,
            (func.coalesce(n.old_stage, "none") + literal(" -> ") + n.stage).label("reason"),
        ).where(changed),
        at=run.now,
        actor=ACTOR,
        action="stage_change",
    )
    columns = [column.name for column in contact_scores.columns]
    rows = select(*(n[name] for name in columns))
    if full:
        connection.execute(delete(contact_scores))
        connection.execute(insert(contact_scores).from_select(columns, rows))
    else:
        # An upsert rewrites each touched row where it lies; a delete then an insert
        # would visit every page twice.
        connection.execute(
            delete(contact_scores).where(
                contact_scores.c.contact_id.in_(select(score_touch.c.contact_id)),
                contact_scores.c.contact_id.not_in(select(n.contact_id)),
            )
        )
        # A row that would come out the same but for its clocks (as of ``scored_at``)
        # stays as it is: new events that were sends, machine opens or older than what
        # the row already knows change nothing, and every row not written is a page
        # the commit does not write.
        same = [n[name].is_not_distinct_from(contact_scores.c[name]) for name in KEPT_COLUMNS]
        connection.execute(
            delete(score_new).where(
                exists(select(literal(1)).where(contact_scores.c.contact_id == n.contact_id, *same))
            )
        )
        upsert = _dialect_insert(connection)(contact_scores).from_select(
            columns, rows.where(true())
        )
        connection.execute(
            upsert.on_conflict_do_update(
                index_elements=[contact_scores.c.contact_id],
                set_={name: upsert.excluded[name] for name in columns if name != "contact_id"},
            )
        )
    changes, rewritten = connection.execute(
        select(func.coalesce(func.sum(case((changed, 1), else_=0)), 0), func.count()).select_from(
            score_new
        )
    ).one()
    return int(changes), int(rewritten)


def _dialect_insert(connection: Connection) -> Any:
    """The ``insert`` of the connection's dialect, which knows ``ON CONFLICT``."""
    return sqlite_insert if connection.dialect.name == "sqlite" else postgresql_insert
