"""``winback simulate`` (nothing written, figures that follow the rates) and the other
journey commands as a user types them."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.journeys.conftest import SIMPLE, START, add, journey_file, scored
from winback.cli import app
from winback.journeys.engine import tick
from winback.journeys.enrolment import enrol
from winback.journeys.simulator import simulate
from winback.store.schema import audit, enrollments, outbox
from winback.workspace import Workspace


def rates(ws: Workspace, **values: float) -> Workspace:
    config = ws.path / "winback.toml"
    text = config.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"\n{key} = ", f"\n{key} = {value} #", 1)
    config.write_text(text, encoding="utf-8")
    return Workspace.open(ws.path)


def test_simulation_writes_nothing_and_follows_the_rates(ws: Workspace) -> None:
    add(ws, SIMPLE.replace("holdout: 0", "holdout: 0.2"))
    with ws.engine.begin() as c:
        for n in range(500):
            scored(c, email=f"p{n}@example.com")
    quiet = rates(ws, email_open_rate=0, email_click_rate=0, purchase_rate=0, unsubscribe_rate=0)
    result = simulate(quiet, "spring", 120, now=START).as_dict()
    treated = 500 - sum(result["outcomes"]["holdout"].values())
    assert result["outcomes"]["treated"] == {"sunset": treated}
    assert result["messages"] == {"email": 4 * treated}
    assert result["cost"] == round(4 * treated * 0.001, 2) and result["lift"] == 0
    with ws.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(enrollments)).scalar_one() == 0
        assert c.execute(select(func.count()).select_from(outbox)).scalar_one() == 0
        assert c.execute(select(func.count()).select_from(audit)).scalar_one() == 0

    eager = rates(ws, email_click_rate=1, offer_boost=1)
    clicked = simulate(eager, "spring", 120, now=START).as_dict()
    assert clicked["outcomes"]["treated"] == {"reactivated": treated}
    assert clicked["steps"]["miss-you"]["clicked"] == treated and "offer" not in clicked["steps"]

    # 30 days only: everyone is still waiting after the first step.
    short = simulate(quiet, "spring", 20, now=START).as_dict()
    assert short["outcomes"]["treated"] == {"active": treated}
    assert (
        simulate(ws, "spring", 120, now=START, seed=4).as_dict()
        == simulate(ws, "spring", 120, now=START, seed=4).as_dict()
    )
    quiet.close()
    eager.close()


def test_the_journey_commands(ws: Workspace, cli: CliRunner) -> None:
    w = ["-w", str(ws.path)]
    new = cli.invoke(app, ["journey", "new", "--from", "starter", *w])
    assert new.exit_code == 0 and (ws.path / "templates" / "goodbye.fr.mjml").exists()
    # The user's own copy wins over the starter set.
    own = ws.path / "templates" / "goodbye.fr.mjml"
    own.write_text(
        own.read_text(encoding="utf-8").replace("Il est temps", "C'est l'heure"), encoding="utf-8"
    )
    added = cli.invoke(app, ["journey", "add", str(ws.path / "journeys" / "winback.yaml"), *w])
    assert added.exit_code == 0, added.output
    assert "Added journey winback (6 steps)" in added.output

    bad = cli.invoke(
        app, ["journey", "add", str(journey_file(ws, SIMPLE.replace("30d", "thirty days", 1))), *w]
    )
    assert bad.exit_code == 2 and "steps[0].wait: 'thirty days' is not a duration" in bad.output

    with ws.engine.begin() as c:
        scored(c, email="one@example.com", phone="+33611111111", sms_status="subscribed")
    listed = json.loads(cli.invoke(app, ["journey", "list", *w, "--json"]).output)
    assert listed[0]["name"] == "winback" and listed[0]["channels"] == ["email", "sms"]
    missing = cli.invoke(app, ["journey", "enroll", "nope", *w])
    assert missing.exit_code == 4 and "no journey named 'nope' (known: winback)" in missing.output

    when = START.isoformat()
    assert (
        "Enrolled 1 of 1"
        in cli.invoke(app, ["journey", "enroll", "winback", *w, "--now", when]).output
    )
    ran = cli.invoke(app, ["run", *w, "--now", when, "--dry-run", "--json"])
    assert ran.exit_code == 0, ran.output
    report = json.loads(ran.output)
    holdout = report["tick"]["holdout_steps"] == 1
    assert report["dispatch"]["sent"] == (0 if holdout else 1)
    if not holdout:
        assert len(list((ws.path / "outbox-files").glob("*.eml"))) == 1
    counts = json.loads(cli.invoke(app, ["outbox", *w, "--json"]).output)
    assert counts == ({} if holdout else {"sent": 1})
    unknown = cli.invoke(app, ["outbox", "--unknown", *w])
    assert unknown.exit_code == 0 and "0 messages may or may not have gone out" in unknown.output
    shown = json.loads(cli.invoke(app, ["journey", "show", "winback", *w, "--json"]).output)
    assert shown["steps"][0]["id"] == "miss-you"
    simulated = cli.invoke(app, ["simulate", "winback", "--days", "120", *w, "--now", when])
    assert simulated.exit_code == 0 and "reactivations:" in simulated.output


def test_offer_codes_export_and_pool_import(ws: Workspace, cli: CliRunner) -> None:
    w = ["-w", str(ws.path)]
    add(ws, SIMPLE.replace("template: miss_you", "template: offer\n        offer: {amount: 10}"))
    with ws.engine.begin() as c:
        scored(c, email="a@example.com")
    enrol(ws, "spring", now=START)
    tick(ws, now=START)
    assert cli.invoke(app, ["dispatch", *w, "--now", START.isoformat(), "--dry-run"]).exit_code == 0
    out = ws.path / "codes.csv"
    exported = cli.invoke(app, ["offers", "export", "--out", str(out), *w])
    assert exported.exit_code == 0 and "1 codes written" in exported.output
    header, line = out.read_text(encoding="utf-8").splitlines()
    assert header == "code,percent,amount,expires_at,email,journey,step,assigned_at,redeemed_at"
    assert line.split(",")[2:5] == ["10.0", "2025-04-02T09:00:00+00:00", "a@example.com"]

    pool = ws.path / "pool.csv"
    pool.write_text("code,percent\nX1,20\n,30\n", encoding="utf-8")
    refused = cli.invoke(app, ["offers", "import", str(pool), *w])
    assert refused.exit_code == 3 and f"{pool}:3: each row needs a code" in refused.output
