"""The journeys a workspace knows: adding a journey file, listing them, the funnel of
one, and copying the starter set into the workspace so users edit their own."""

from __future__ import annotations

import shutil
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from winback.clock import to_db
from winback.errors import NotFoundError
from winback.journeys.definition import (
    Journey,
    JourneyError,
    Step,
    dump_definition,
    journey_from_data,
    parse_journey,
)
from winback.journeys.render import STARTER_DIR, TemplateSet, check_template
from winback.json_values import json_record
from winback.store.schema import enrollments, journeys
from winback.workspace import Workspace


def templates_of(workspace: Workspace) -> TemplateSet:
    """The workspace's templates, then the starter set; its language as the fallback."""
    return TemplateSet(workspace.templates_dir, workspace.config.workspace.language)


def load_journeys(
    connection: Connection, name: str | None = None
) -> dict[str, tuple[int, Journey]]:
    """Stored journeys by name (one when ``name`` is given): id and definition."""
    query = select(journeys.c.id, journeys.c.name, journeys.c.definition)
    if name is not None:
        query = query.where(journeys.c.name == name)
    found = {
        row.name: (row.id, journey_from_data(row.definition)) for row in connection.execute(query)
    }
    if name is not None and name not in found:
        known = ", ".join(sorted(connection.execute(select(journeys.c.name)).scalars()))
        raise NotFoundError(
            f"no journey named {name!r} (known: {known or 'none'}); add it with "
            "`winback journey add FILE`"
        )
    return found


def parse_journey_file(workspace: Workspace, path: Path) -> tuple[Journey, str]:
    """Validate a journey file, its templates included."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise JourneyError(f"{path}: cannot read the journey file ({exc.strerror})") from None
    templates = templates_of(workspace)

    def check(step: Step, channel: str) -> str | None:
        return check_template(templates, step.template, channel, step.offer is not None)

    return parse_journey(text, str(path), check), text


@dataclass(frozen=True)
class AddedJourney:
    """What ``winback journey add`` did: the journey stored, and whether it is new (else
    an update of the journey of that name)."""

    journey: Journey
    new: bool


def add_journey(workspace: Workspace, path: Path, *, now: datetime) -> AddedJourney:
    """Store (or update) a journey from its file. An update may not drop a step that
    enrollments are waiting on."""
    journey, text = parse_journey_file(workspace, path)
    with workspace.engine.begin() as connection:
        row = connection.execute(
            select(journeys.c.id).where(journeys.c.name == journey.name)
        ).first()
        values = {"source": text, "definition": dump_definition(journey), "updated_at": to_db(now)}
        if row is None:
            connection.execute(
                insert(journeys), {"name": journey.name, "created_at": to_db(now), **values}
            )
            return AddedJourney(journey, new=True)
        kept = {step.id for step in journey.all_steps}
        waiting = connection.execute(
            select(enrollments.c.step_id)
            .distinct()
            .where(
                enrollments.c.journey_id == row.id,
                enrollments.c.status == "active",
                enrollments.c.step_id.is_not(None),
            )
        ).scalars()
        dropped = sorted(set(waiting) - kept)
        if dropped:
            raise JourneyError(
                f"{path}: step {dropped[0]!r} is gone but active enrollments are at it; keep "
                "the step until they move on, or give the new version another name"
            )
        connection.execute(update(journeys).where(journeys.c.id == row.id).values(values))
        return AddedJourney(journey, new=False)


@dataclass(frozen=True)
class JourneySummary:
    """A stored journey as ``winback journey list`` shows it."""

    name: str
    status: str
    steps: tuple[str, ...]
    channels: tuple[str, ...]
    enrollments: dict[str, int]  # status -> enrollments in it (the statuses that have any)

    def as_dict(self) -> dict[str, Any]:
        return json_record(self)


def list_journeys(workspace: Workspace) -> list[JourneySummary]:
    """Every journey, by name, with its steps and how many enrollments are in each
    status."""
    with workspace.engine.connect() as connection:
        stored = load_journeys(connection)
        counts: dict[int, dict[str, int]] = defaultdict(dict)
        rows = connection.execute(
            select(enrollments.c.journey_id, enrollments.c.status, func.count()).group_by(
                enrollments.c.journey_id, enrollments.c.status
            )
        )
        for journey_id, status, count in rows:
            counts[journey_id][status] = count
        states = dict(connection.execute(select(journeys.c.id, journeys.c.status)).all())
    return [
        JourneySummary(
            name=name,
            status=states.get(journey_id, "active"),
            steps=tuple(step.id for step in journey.steps),
            channels=tuple(sorted(journey.channels)),
            enrollments=counts.get(journey_id, {}),
        )
        for name, (journey_id, journey) in sorted(stored.items())
    ]


def copy_starter(workspace: Workspace, *, force: bool = False) -> list[Path]:
    """Copy the starter templates and the example journey into the workspace, keeping
    any file the user already has unless ``force``. Returns the files written."""
    written = []
    for folder, target in (
        (STARTER_DIR / "templates", workspace.templates_dir),
        (STARTER_DIR / "journeys", workspace.journeys_dir),
    ):
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted(folder.iterdir()):
            if not source.is_file():
                continue
            destination = target / source.name
            if destination.exists() and not force:
                continue
            shutil.copyfile(source, destination)
            written.append(destination)
    return written
