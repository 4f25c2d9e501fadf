"""Segments, base health and the commands, through the CLI as a user runs them."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from tests.builders import add_contact, add_event, day
from winback.cli import app
from winback.workspace import Workspace

NOW = day(2025, 6, 1, 0)


def _base(ws: Workspace) -> dict[str, int]:
    with ws.engine.begin() as c:
        ids = {
            "vip": add_contact(
                c,
                email="vip@example.com",
                created_at=NOW - timedelta(days=800),
                country="FR",
                birth_year=1990,
                tags=["vip", "wine"],
            ),
            "sleeper": add_contact(
                c,
                email="sleeper@example.com",
                phone="+33611111111",
                created_at=NOW - timedelta(days=800),
                country="BE",
                birth_year=1960,
            ),
            "gone": add_contact(
                c,
                email="gone@example.com",
                created_at=NOW - timedelta(days=800),
                email_status="unsubscribed",
                email_status_at=(NOW - timedelta(days=20)).replace(tzinfo=None),
            ),
            "fresh": add_contact(c, email="fresh@example.com", created_at=NOW - timedelta(days=5)),
        }
        add_event(c, ids["vip"], "purchase", NOW - timedelta(days=10), amount=500.0)
        add_event(c, ids["vip"], "purchase", NOW - timedelta(days=40), amount=300.0)
        add_event(c, ids["sleeper"], "purchase", NOW - timedelta(days=200), amount=20.0)
        for back in (3, 10, 17):
            add_event(c, ids["sleeper"], "sent", NOW - timedelta(days=back), channel="email")
            add_event(c, ids["sleeper"], "sent", NOW - timedelta(days=back), channel="sms")
        add_event(c, ids["gone"], "purchase", NOW - timedelta(days=400), amount=20.0)
    return ids


def _invoke(cli: CliRunner, ws: Workspace, *args: str, dated: bool = True) -> str:
    result = cli.invoke(app, [*args, "-w", str(ws.path), *(["--now", "2025-06-01"] * dated)])
    assert result.exit_code == 0, result.output
    return result.output


def test_score_then_segments_then_status(
    sqlite_workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    ids = _base(ws)
    scored = json.loads(_invoke(cli, ws, "score", "--json"))
    assert scored["mode"] == "full"
    assert scored["stages"] == {"active": 1, "dormant": 1, "prospect": 1, "unsubscribed": 1}

    _invoke(
        cli,
        ws,
        "segment",
        "save",
        "quiet",
        "--where",
        "stage=dormant,at_risk",
        "--where",
        "days_inactive=150..400",
    )
    _invoke(
        cli,
        ws,
        "segment",
        "save",
        "best",
        "--where",
        "monetary_score>=4",
        "--where",
        "tags=vip",
        "--where",
        "age_band=35-44",
        "--where",
        "country=fr",
    )
    assert json.loads(_invoke(cli, ws, "segment", "count", "quiet", "--json"))["count"] == 1
    assert _invoke(cli, ws, "segment", "count", "best").strip() == "1"
    assert _invoke(cli, ws, "segment", "count", "--where", "spend_level=low").strip() == "2"
    names = [
        s["name"] for s in json.loads(_invoke(cli, ws, "segment", "list", "--json", dated=False))
    ]
    assert names == ["best", "quiet"]

    out = tmp_path / "quiet.csv"
    _invoke(cli, ws, "segment", "export", "quiet", "--csv", str(out))
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["email"], r["stage"], r["days_inactive"]) for r in rows] == [
        ("sleeper@example.com", "dormant", "200")
    ]

    report = json.loads(_invoke(cli, ws, "status", "--json"))
    assert set(report) >= {"stages", "channels", "inactivity_buckets", "erosion", "cost"}
    assert report["stages"]["dormant"] == {"count": 1, "share": 0.25}
    assert report["channels"]["email"]["statuses"]["unsubscribed"]["count"] == 1
    assert report["channels"]["email"]["reachable"] == 3
    assert report["inactivity_buckets"]["0-3"]["count"] == 1
    assert report["inactivity_buckets"]["6-9"]["count"] == 1
    assert report["inactivity_buckets"]["never"]["count"] == 1
    # three emails and three SMS to the dormant sleeper within 30 days, default prices
    assert report["cost"]["dormant"] == {
        "email_sent": 3,
        "sms_sent": 3,
        "cost": round(3 * 0.001 + 3 * 0.045, 2),
    }
    # three contacts were in the base a year ago; "gone" unsubscribed 20 days ago
    assert report["erosion"]["base_12_months_ago"] == 3
    assert report["erosion"]["became_unreachable"] == 1
    assert report["erosion"]["rate"] == round(1 / 3, 4)
    assert "contacts at 2025-06-01" in _invoke(cli, ws, "status")

    _invoke(cli, ws, "segment", "delete", "best", dated=False)
    missing = cli.invoke(app, ["segment", "count", "best", "-w", str(ws.path)])
    assert missing.exit_code == 4
    assert "no segment named 'best'" in missing.output
    assert ids


def test_a_filter_on_an_unknown_field_lists_the_known_fields(
    sqlite_workspace: Workspace, cli: CliRunner
) -> None:
    result = cli.invoke(
        app, ["segment", "save", "x", "--where", "shoe_size>=42", "-w", str(sqlite_workspace.path)]
    )
    assert result.exit_code == 2
    assert "unknown segment field 'shoe_size'" in result.output
    assert all(f" {name}," in result.output for name in ("stage", "recency_score", "tags"))
    bad = cli.invoke(
        app, ["segment", "save", "x", "--where", "stage=sleeping", "-w", str(sqlite_workspace.path)]
    )
    assert bad.exit_code == 2
    assert "unknown value(s) sleeping" in bad.output


def test_segments_on_both_engines(workspace: Workspace) -> None:
    from winback.scoring import score
    from winback.scoring.segments import count_segment, parse_conditions

    _base(workspace)
    score(workspace, now=NOW)
    with workspace.engine.connect() as c:
        tz = workspace.config.workspace.timezone
        count = count_segment(c, parse_conditions(["tags=wine,beer", "age_band=35-44"]), NOW, tz)
        inactive = count_segment(c, parse_conditions(["days_inactive>=180"]), NOW, tz)
    assert (count, inactive) == (1, 2)


def test_status_on_an_unscored_base_says_to_score(
    sqlite_workspace: Workspace, cli: CliRunner
) -> None:
    _base(sqlite_workspace)
    shown = _invoke(cli, sqlite_workspace, "status")
    assert "not scored yet: run `winback score`" in shown
    _invoke(cli, sqlite_workspace, "score")
    assert "not scored yet" not in _invoke(cli, sqlite_workspace, "status")
