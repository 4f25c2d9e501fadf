"""``winback score``: per-contact facts, RFM and stages for the whole base, in SQL.

:func:`score` is the operation: ``score(workspace, now=now)``.

Why SQL in the store, and not DuckDB. The bulk work runs as a handful of set-based
statements inside the store (SQLite or PostgreSQL), built with SQLAlchemy Core so one
definition compiles for both. DuckDB would first have to read the events out of SQLite,
by any route (``sqlite3``, ADBC, its own ``sqlite`` extension), which costs more than
SQLite's own scan of them; the grouped aggregation of the interaction events, sorted
rather than walked through the (contact, time) index, fits in the full score's budget
(figures in bench/RESULTS.md, "Figures moved from docstrings"; bench/score.py).
The costly part was the machine-open rule: one look-up of the delivery per unflagged
open. It seeks the (contact, time) index over a window of a few seconds, which holds
almost nothing, rather than every event of the message. On PostgreSQL the same
statements run as parallel hash aggregates.

The pipeline (one transaction):

1. *facts* per contact into a temporary table (:mod:`winback.scoring.facts`): last human
   interaction overall and per channel, first/last purchase, purchase count and spend,
   and the day of the last customer activity (the customer clock's anchor). The filler is
   replaceable: another engine may compute the same facts (the ``facts_filler`` of
   :func:`score`);
2. quintile breakpoints of recency, frequency and monetary value over the customers
   (:mod:`winback.scoring.rfm`);
3. the derived row of every contact (clock, stage, RFM, spend level, flags, the day of
   the next threshold), with the SQL twins of the rules, then the write
   (:mod:`winback.scoring.derive`).

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

Their facts are the stored ones merged with those of the new events, or read again
(:func:`winback.scoring.facts.merge_facts`). The RFM quintile breakpoints are those of the last
full score (``winback score --full`` recomputes them over the base of the day); the
policy, zone and machine-open rule are in the fingerprint, so changing them makes the
next run a full one. ``days_inactive`` and ``clock_days`` are as of the row's
``scored_at``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, delete, func, insert, select

from winback.compliance.audit import audit_row, record
from winback.config import Config, ModelsSection
from winback.domain import EventType
from winback.models.apply import fill_estimates, model_estimates
from winback.scoring.derive import ACTOR, derive_and_write, score_new, write_rows
from winback.scoring.facts import (
    FillFacts,
    fill_facts,
    merge_facts,
    score_delta,
    score_facts,
    score_noted,
    score_redo,
    score_touch,
)
from winback.scoring.rfm import Breakpoints, breakpoints_of
from winback.scoring.stages import Policy, day_number
from winback.store.engine import BULK_CACHE_SIZE, bulk_transaction
from winback.store.schema import audit, contact_scores, events, score_changes

if TYPE_CHECKING:
    from winback.workspace import Workspace

RUN_ACTION = "score_run"
# The triggers of migration 0004 that note changed contacts in ``score_changes``.
CHANGE_TRIGGERS = ("score_changes_insert", "score_changes_update")
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
class ScoreRun:
    """The fixed inputs of one run: what the facts select and the derived rows read."""

    policy: Policy
    timezone: str
    machine_open_seconds: int
    now: datetime
    models: ModelsSection = field(default_factory=ModelsSection)

    @classmethod
    def from_config(cls, config: Config, now: datetime) -> ScoreRun:
        return cls(
            policy=Policy.from_config(config.policy),
            timezone=config.workspace.timezone,
            machine_open_seconds=config.scoring.machine_open_seconds,
            now=now,
            models=config.models,
        )

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


@dataclass(frozen=True)
class Derived:
    """What another engine that derived a full run's rows hands back: the highest event
    id it saw, the RFM breakpoints, and the parts of the base's health it computed
    (:func:`winback.reports.health.scored_figures`, of the new rows) or None."""

    high_water: int
    breakpoints: Breakpoints
    health: dict[str, Any] | None = None


#: Fills ``score_new`` with the rows of a full run that changed and ``score_touch`` with
#: them and the stored rows to delete, computed by another engine.
DeriveRows = Callable[[Connection, ScoreRun], Derived]


def score(
    workspace: Workspace,
    *,
    now: datetime,
    full: bool = False,
    facts_filler: FillFacts | None = None,
    rows_filler: DeriveRows | None = None,
    health_later: bool = False,
) -> ScoreResult:
    """Score every contact of the base at ``now`` (aware). Incremental when a previous run
    under the same policy exists, unless ``full``. One transaction: readers see the old
    scores or the new ones.

    ``facts_filler(connection, run)`` replaces :func:`winback.scoring.facts.fill_facts`
    in a full run: it fills :data:`winback.scoring.facts.score_facts` (created empty) by
    other means, e.g. another engine running :func:`winback.scoring.facts.facts_select`
    elsewhere. An incremental run merges the new events' facts in the store.
    ``rows_filler`` (:data:`DeriveRows`) goes further: it hands over the full run's
    changed rows, written as an incremental run's are. ``health_later``: an
    incremental run leaves the base's health to the caller, after the commit."""
    run = ScoreRun.from_config(workspace.config, now)
    # The rows a run rewrites lie all over contact_scores and its indexes: the bulk page
    # cache keeps them until the commit. Only the cache: with its scratch tables in
    # memory as well (temp_store), the full score was slower (see bench/RESULTS.md).
    from winback.reports.aggregates import refresh_figures  # reports read what scoring writes

    # The write lock from the start: a command that writes meanwhile waits for the
    # score, instead of the score failing at its end.
    pragmas = {"cache_size": BULK_CACHE_SIZE}
    with bulk_transaction(workspace.engine, pragmas, writer=True) as connection:
        result, health = _score(
            connection, run, full=full, facts_filler=facts_filler, rows_filler=rows_filler
        )
        refresh_figures(
            connection,
            workspace.config,
            now,
            full=result.mode == "full",
            health=health,
            health_later=health_later and result.mode == "incremental",
        )
        return result


def _score(
    connection: Connection,
    run: ScoreRun,
    *,
    full: bool = False,
    facts_filler: FillFacts | None = None,
    rows_filler: DeriveRows | None = None,
) -> tuple[ScoreResult, dict[str, Any] | None]:
    """:func:`score` inside the caller's transaction; with the parts of the health
    the rows filler computed, if any."""
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
        health = None
        if reason and rows_filler:
            mode, new_events = "full", None
            derived = rows_filler(connection, run)
            high_water, breakpoints, health = (
                derived.high_water,
                derived.breakpoints,
                derived.health,
            )
            changes, rewritten = write_rows(connection, run, full=False)
        else:
            if reason:
                mode, new_events = "full", None
                seen = (facts_filler or fill_facts)(connection, run)
                high_water = high_water if seen is None else seen
                breakpoints = breakpoints_of(connection, score_facts, run.timezone)
            else:
                assert previous is not None
                mode = "incremental"
                new_events = merge_facts(connection, run, int(previous["high_water"]), high_water)
                reason = f"{new_events} new events since event {previous['high_water']}"
                breakpoints = Breakpoints.from_json(previous["breakpoints"])
            changes, rewritten = derive_and_write(connection, run, breakpoints, full=mode == "full")
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
    result = ScoreResult(
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
    return result, health


def _last_run(connection: Connection) -> dict[str, Any] | None:
    details = connection.execute(
        select(audit.c.details)
        .where(audit.c.action == RUN_ACTION, audit.c.contact_id.is_(None))
        .order_by(audit.c.id.desc())
        .limit(1)
    ).scalar()
    return dict(details) if details else None


def _full_reason(
    connection: Connection, previous: dict[str, Any] | None, run: ScoreRun, full: bool
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
