"""The figures kept at score time (reports/aggregates.py) against the direct computation
over the history: contacts per stage month by month, the moves between stages, bounces
and complaints per week, refreshed in two steps (the second one adding rows on and
before the day of the first); the erosion chart on a hand-built base; and ``winback
score`` keeping them, with the base page saying so when the base was never scored."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from markupsafe import escape
from sqlalchemy import Connection, func, insert, select
from typer.testing import CliRunner

from tests.builders import add_contact, add_event, day
from winback.cli import app
from winback.clock import local_date, to_db
from winback.domain import Stage
from winback.reports import charts, trends, views
from winback.reports.aggregates import health_snapshot, refresh_figures
from winback.reports.health import health_figures
from winback.store.schema import events, outbox, stage_history
from winback.web.dashboard_words import WORDS
from winback.workspace import Workspace

NOW = day(2026, 3, 15, 18)
STAGES = [stage.value for stage in Stage]
KINDS = ("bounce_hard", "bounce_soft", "complaint", "open")


def direct_stages(connection: Connection, days: list[date]) -> dict[str, list[int]]:
    """Contacts per stage at the end of each day, read from the whole stage history."""
    latest = select(
        stage_history.c.contact_id,
        stage_history.c.to_stage,
        func.row_number()
        .over(
            partition_by=stage_history.c.contact_id,
            order_by=(stage_history.c.changed_on.desc(), stage_history.c.id.desc()),
        )
        .label("rank"),
    )
    series: dict[str, list[int]] = {stage: [] for stage in STAGES}
    for on in days:
        ranked = latest.where(stage_history.c.changed_on <= on).subquery()
        counts: dict[Any, Any] = dict(
            connection.execute(
                select(ranked.c.to_stage, func.count())
                .where(ranked.c.rank == 1)
                .group_by(ranked.c.to_stage)
            ).all()
        )
        for stage, values in series.items():
            values.append(int(counts.get(stage, 0)))
    return series


def direct_flows(connection: Connection, since: date, until: date) -> set[tuple[str, str, int]]:
    h = stage_history.c
    return {
        (source, target, int(count))
        for source, target, count in connection.execute(
            select(h.from_stage, h.to_stage, func.count())
            .where(h.changed_on >= since, h.changed_on <= until, h.from_stage.is_not(None))
            .group_by(h.from_stage, h.to_stage)
        )
    }


def history(connection: Connection, rng: random.Random, contacts: list[int], first: date) -> None:
    """Random stage changes from ``first`` on: some contacts change twice in a day, some
    come back to the stage they left."""
    for contact in contacts:
        on, stage = first + timedelta(days=rng.randrange(60)), None
        for _ in range(rng.randrange(1, 6)):
            for _ in range(rng.choice((1, 1, 1, 2))):
                target = rng.choice(STAGES)
                connection.execute(
                    insert(stage_history),
                    {"contact_id": contact, "from_stage": stage, "to_stage": target,
                     "changed_on": on},
                )  # fmt: skip
                stage = target
            on += timedelta(days=rng.randrange(0, 90))


def sending(connection: Connection, rng: random.Random, contacts: list[int], first: date) -> None:
    """Messages sent and the bounces, complaints and opens that follow, in late hours
    too (a day boundary in Paris is not UTC's)."""
    for n in range(120):
        contact = rng.choice(contacts)
        at = datetime(first.year, first.month, first.day, 21, tzinfo=NOW.tzinfo) + timedelta(
            days=rng.randrange(100), hours=rng.randrange(6)
        )
        connection.execute(
            insert(outbox),
            {"idempotency_key": f"{first}:{n}", "contact_id": contact, "channel": "email",
             "status": rng.choice(("sent", "sent", "failed")), "created_at": to_db(at),
             "due_at": to_db(at), "sent_at": to_db(at)},
        )  # fmt: skip
        for kind in rng.sample(KINDS, rng.randrange(3)):
            add_event(connection, contact, kind, at + timedelta(minutes=5))


def paris(ws: Workspace) -> Workspace:
    config = ws.path / "winback.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace('timezone = "UTC"', 'timezone = "Europe/Paris"'),
        encoding="utf-8",
    )
    return Workspace.open(ws.path)


def test_the_kept_figures_are_the_history_s(workspace: Workspace) -> None:
    ws = paris(workspace)
    rng = random.Random(16)
    today = local_date(NOW, ws.config.workspace.tz)
    with ws.engine.begin() as c:
        people = [
            add_contact(c, email=f"p{n}@example.com", created_at=day(2024, 1, 1)) for n in range(40)
        ]
        history(c, rng, people, date(2025, 1, 1))
        sending(c, rng, people, date(2025, 12, 1))
        refresh_figures(c, ws.config, NOW)
        last_day = c.execute(select(func.max(stage_history.c.changed_on))).scalar_one()
        # Then more: the same day as the last refresh's latest change, and earlier ones.
        history(c, rng, people[::3], last_day - timedelta(days=30))
        busy = c.execute(select(func.min(stage_history.c.changed_on))).scalar_one()
        for on in (last_day, busy):
            c.execute(
                insert(stage_history),
                [{"contact_id": contact, "from_stage": None, "to_stage": "lost", "changed_on": on}
                 for contact in people[5:8]],
            )  # fmt: skip
        history(c, rng, people[1::3], last_day)
        sending(c, rng, people, date(2026, 1, 20))
        refresh_figures(c, ws.config, NOW)

        days = [date.fromisoformat(on) for on in trends.stages_over_time(c, today)["days"]]
        assert trends.stages_over_time(c, today)["stages"] == direct_stages(c, days)
        for since, until in ((date(2025, 1, 1), today), (last_day - timedelta(days=10), today)):
            kept = trends.stage_flows(c, since, until)
            assert {(f["from"], f["to"], f["contacts"]) for f in kept} == direct_flows(
                c, since, until
            )
            assert [f["contacts"] for f in kept] == sorted(
                (f["contacts"] for f in kept), reverse=True
            )

        weekly = trends.deliverability(c, NOW, "Europe/Paris")
        assert sum(weekly["bounced"]) + sum(weekly["complained"]) > 0
        start = date.fromisoformat(weekly["weeks"][0])
        expected: dict[str, list[int]] = {
            "sent": [0] * 12,
            "bounced": [0] * 12,
            "complained": [0] * 12,
        }
        tz = ws.config.workspace.tz
        messages = select(outbox.c.status, outbox.c.sent_at)
        for kind, at in c.execute(messages.union_all(select(events.c.type, events.c.occurred_at))):
            week = (local_date(at, tz) - start).days // 7
            key = {"sent": "sent", "bounce_hard": "bounced", "bounce_soft": "bounced",
                   "complaint": "complained"}.get(kind)  # fmt: skip
            if key and 0 <= week < 12:
                expected[key][week] += 1
        assert {key: weekly[key] for key in expected} == expected
    ws.close()


def test_a_move_undone_the_same_day_leaves_the_day_s_figures_as_before(
    workspace: Workspace,
) -> None:
    """Two scores in one day: the first moves ann to at risk, the second brings her back
    to active. The day's kept change comes back to nothing, and the figures are still the
    history's."""
    today = local_date(NOW, workspace.config.workspace.tz)
    with workspace.engine.begin() as c:
        ann = add_contact(c, email="ann@example.com", created_at=day(2024, 1, 1))
        moves = [(None, "active", today - timedelta(days=3)), ("active", "at_risk", today),
                 ("at_risk", "active", today)]  # fmt: skip
        for source, target, on in moves:
            c.execute(
                insert(stage_history),
                {"contact_id": ann, "from_stage": source, "to_stage": target, "changed_on": on},
            )
            refresh_figures(c, workspace.config, NOW)
        days = [date.fromisoformat(on) for on in trends.stages_over_time(c, today)["days"]]
        assert trends.stages_over_time(c, today)["stages"] == direct_stages(c, days)
        assert direct_stages(c, [today])["active"] == [1]


def test_the_erosion_chart_counts_the_base_lost_since_a_year(
    sqlite_workspace: Workspace,
) -> None:
    """Nine contacts in play at the end of March 2025 (a tenth was lost before): one lost
    in June, one unsubscribed in September, one gone dormant in May then lost in March
    2026; a newcomer first scored lost counts for nothing."""
    ws = sqlite_workspace
    today = date(2026, 3, 15)

    def change(c: Connection, contact: int, before: str | None, after: str, on: date) -> None:
        c.execute(
            insert(stage_history),
            {"contact_id": contact, "from_stage": before, "to_stage": after, "changed_on": on},
        )

    with ws.engine.begin() as c:
        people = [
            add_contact(c, email=f"e{n}@example.com", created_at=day(2024, 6, 1)) for n in range(11)
        ]
        for contact in people[:10]:
            change(c, contact, None, "active", date(2025, 1, 10))
        change(c, people[9], "active", "lost", date(2025, 2, 1))
        change(c, people[0], "active", "lost", date(2025, 6, 15))
        change(c, people[1], "active", "unsubscribed", date(2025, 9, 2))
        change(c, people[2], "active", "dormant", date(2025, 5, 1))
        change(c, people[2], "dormant", "lost", date(2026, 3, 1))
        change(c, people[10], None, "lost", date(2025, 10, 1))
        refresh_figures(c, ws.config, NOW)
        eroded = trends.erosion(c, today)
    assert eroded["since"] == "2025-03-31" and eroded["base"] == 9
    assert eroded["days"][0] == "2025-04-30" and eroded["days"][-1] == "2026-03-15"
    by_day = dict(zip(eroded["days"], eroded["eroded"], strict=True))
    assert [by_day[d] for d in ("2025-05-31", "2025-06-30", "2025-09-30", "2026-02-28")] == [
        0, 1, 2, 2,
    ]  # fmt: skip
    assert by_day["2026-03-15"] == 3 and eroded["share"][-1] == 3 / 9
    assert eroded["usual"][-1] == 0.25 * 349 / 365
    chart = charts.erosion(eroded, WORDS["en"])
    assert [trace["y"][-1] for trace in chart["data"]] == pytest.approx([100 / 3, 25 * 349 / 365])


def test_score_keeps_the_figures_and_an_unscored_base_says_so(
    sqlite_workspace: Workspace, cli: CliRunner
) -> None:
    ws = sqlite_workspace
    w = ["-w", str(ws.path), "--now", NOW.isoformat()]
    out = ws.path / "report.html"
    made = cli.invoke(app, ["report", "--out", str(out), *w])
    assert made.exit_code == 0, made.output
    unscored = str(escape(WORDS[ws.config.workspace.language]["not_scored"]))
    assert unscored in out.read_text(encoding="utf-8")
    assert views.base_view(ws, NOW, WORDS["en"])["health"] is None

    with ws.engine.begin() as c:
        ann = add_contact(c, email="ann@example.com", created_at=day(2024, 1, 5))
        bob = add_contact(c, email="bob@example.com", created_at=day(2025, 11, 5))
        add_event(c, ann, "purchase", day(2024, 2, 1), amount=20.0)
        add_event(c, bob, "complaint", day(2026, 3, 2))
    assert cli.invoke(app, ["score", *w]).exit_code == 0
    view = views.base_view(ws, NOW, WORDS["en"])
    with ws.engine.connect() as c:
        assert health_snapshot(c) == view["health"] == health_figures(c, ws.config, NOW)
    assert view["health"]["contacts"] == 2
    assert sum(stages[-1] for stages in trends_of(ws)["stages"].values()) == 2
    weekly = views.deliverability_view(ws, NOW, WORDS["en"])["weekly"]
    assert sum(weekly["complained"]) == 1
    made = cli.invoke(app, ["report", "--out", str(out), *w])
    assert made.exit_code == 0 and unscored not in out.read_text(encoding="utf-8")


def trends_of(ws: Workspace) -> dict[str, Any]:
    with ws.engine.connect() as c:
        return trends.stages_over_time(c, NOW.date())


def test_an_incremental_score_takes_the_health_again_only_on_a_new_day(
    sqlite_workspace: Workspace, cli: CliRunner
) -> None:
    """The health reads the whole base: a second score on the same day keeps the one the
    day's first score took; the next day's score, or a full one, takes it again."""
    ws = sqlite_workspace
    with ws.engine.begin() as c:
        add_contact(c, email="ann@example.com", created_at=day(2024, 1, 5))

    def score(moment: datetime, *flags: str) -> int:
        """Score at ``moment``; the contacts the kept health counts."""
        done = cli.invoke(app, ["score", "-w", str(ws.path), "--now", moment.isoformat(), *flags])
        assert done.exit_code == 0, done.output
        with ws.engine.connect() as c:
            health = health_snapshot(c)
        assert health is not None
        return int(health["contacts"])

    assert score(NOW) == 1
    with ws.engine.begin() as c:
        add_contact(c, email="bob@example.com", created_at=day(2024, 1, 5))
    later = NOW + timedelta(hours=2)
    assert score(later) == 1
    assert score(later, "--full") == 2
    with ws.engine.begin() as c:
        add_contact(c, email="cy@example.com", created_at=day(2024, 1, 5))
    assert score(later) == 2
    assert score(NOW + timedelta(days=1)) == 3
