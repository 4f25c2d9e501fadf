"""What each page of the dashboard shows, as plain data and charts: the dashboard
(:mod:`winback.web.dashboard`) and the standalone report (``winback report``) render the
same views, so they always agree."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from winback.clock import local_date
from winback.reports import charts, trends
from winback.reports.aggregates import health_snapshot, journey_snapshot
from winback.reports.results import results_on
from winback.store.schema import journeys
from winback.workspace import Workspace


def base_view(
    workspace: Workspace, now: datetime, t: Mapping[str, str], since: date | None = None
) -> dict[str, Any]:
    """The base page: health as of the last score, stages over time, erosion month by
    month, flows between stages since ``since`` (90 days by default). On a base never
    scored, ``health`` is None and there is nothing to draw."""
    today = local_date(now, workspace.config.workspace.tz)
    start = since or today - timedelta(days=90)
    with workspace.engine.connect() as connection:
        health = health_snapshot(connection)
        if health is None:
            return {"health": None, "flows": [], "flows_since": start.isoformat(), "charts": []}
        trend = trends.stages_over_time(connection, today)
        eroded = trends.erosion(connection, today)
        flows = trends.stage_flows(connection, start, today)
    return {
        "health": health,
        "erosion": eroded,
        "flows": flows,
        "flows_since": start.isoformat(),
        "charts": [
            charts.stages_over_time(trend, t),
            charts.erosion(eroded, t),
            charts.inactivity(health, t),
            charts.channels(health, t),
        ],
    }


def journeys_view(workspace: Workspace, now: datetime, t: Mapping[str, str]) -> dict[str, Any]:
    """The journeys page: each journey's results, funnel and lift, as kept by the last
    score or run (``as_of``, naive UTC; :mod:`winback.reports.aggregates`), with its
    status read live. A journey added since is computed at ``now`` (``as_of`` None)."""
    config = workspace.config
    results: list[dict[str, Any]] = []
    times: list[str | None] = []
    with workspace.engine.connect() as connection:
        found = connection.execute(
            select(journeys.c.id, journeys.c.name, journeys.c.status).order_by(journeys.c.name)
        ).all()
        for journey_id, name, status in found:
            kept = journey_snapshot(connection, journey_id)
            if kept is None:
                language = config.workspace.language
                results.append(results_on(connection, config, name, now, language))
                times.append(None)
            else:
                results.append({**kept[1], "status": status})
                times.append(kept[0].strftime("%Y-%m-%d %H:%M"))
    drawn = [[charts.funnel(result, t), charts.lift(result, t)] for result in results]
    return {
        "journeys": [
            {"result": result, "charts": pair, "as_of": as_of}
            for result, pair, as_of in zip(results, drawn, times, strict=True)
        ],
        "charts": [chart for pair in drawn for chart in pair],
    }


def deliverability_view(
    workspace: Workspace, now: datetime, t: Mapping[str, str]
) -> dict[str, Any]:
    """The deliverability page: weekly bounce and complaint rates, suppressions."""
    with workspace.engine.connect() as connection:
        weekly = trends.deliverability(connection, now, workspace.config.workspace.timezone)
        reasons = trends.suppressions_by_reason(connection)
    return {
        "weekly": weekly,
        "suppressions": reasons,
        "charts": [
            charts.deliverability(weekly, t),
            charts.counts(reasons, t["suppressions"], t),
        ],
    }


def survey_view(workspace: Workspace, t: Mapping[str, str]) -> dict[str, Any]:
    """The survey page: answers per reason and the latest free texts."""
    from winback.web.choices import survey_report

    report = survey_report(workspace, latest=50)
    return {"report": report, "charts": [charts.counts(report["reasons"], t["answers"], t)]}
