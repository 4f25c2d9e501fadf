"""The journeys page reads each journey's results as kept by the last score or run, not
the history of the base: the kept figures are those ``winback journey show`` computes
live, after a journey was played through its real paths (enrolment, tick, dispatch,
tracking hits on the web app, a purchase in the attribution window, a coupon redeemed by
an events import), and the journey's status shows its controls' effect at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.builders import add_event
from tests.journeys.conftest import SIMPLE, START, add, scored
from tests.web.conftest import CHROME, Site
from winback.cli import app
from winback.journeys import enrol, tick
from winback.journeys.controls import pause_journey
from winback.journeys.dispatcher import dispatch, tick_and_dispatch
from winback.reports.results import journey_results
from winback.reports.views import journeys_view
from winback.scoring.run import score
from winback.store.schema import contacts, offers, outbox
from winback.web.dashboard_words import WORDS

pytestmark = pytest.mark.anyio

DAYS = timedelta(days=1)
#: The offer first, so that each message carries a coupon code; about a third in the holdout.
JOURNEY = SIMPLE.replace("holdout: 0", "holdout: 0.3").replace(
    "template: miss_you", "template: offer\n        offer: {percent: 20, valid_days: 30}"
)
SHOP = "https://shop.example.com/sale"


def kept(site: Site, now_days: int) -> dict[str, Any]:
    """The journeys page's view of spring."""
    ws = site.workspace
    words = WORDS[ws.config.workspace.language]
    [item] = journeys_view(ws, START + now_days * DAYS, words)["journeys"]
    return dict(item)


async def test_kept_results_are_the_live_ones_after_a_played_journey(
    site: Site, cli: CliRunner
) -> None:
    ws = site.workspace
    language = ws.config.workspace.language
    add(ws, JOURNEY)
    with ws.engine.begin() as connection:
        for n in range(12):
            scored(connection, email=f"c{n}@example.com")
    enrol(ws, "spring", now=START)
    tick(ws, now=START)
    dispatch(ws, now=START, dry_run=True)
    # Kept at the dispatch: equal to the live results at that moment.
    first = kept(site, 0)
    assert first["as_of"] == START.strftime("%Y-%m-%d %H:%M")
    assert first["result"] == journey_results(ws, "spring", START, language)
    treated = first["result"]["enrolled"] - first["result"]["holdout"]
    assert first["result"]["steps"][0]["sent"] == treated >= 3

    with ws.engine.connect() as connection:
        messages = connection.execute(
            select(outbox.c.message_id, contacts.c.email, offers.c.code)
            .join(contacts, contacts.c.id == outbox.c.contact_id)
            .join(offers, offers.c.enrollment_id == outbox.c.enrollment_id)
            .where(outbox.c.status == "sent")
            .order_by(contacts.c.email)
        ).all()
    (m1, _, _), (m2, e2, code2), (_, e3, _) = messages[:3]
    site.clock.now = START + 1 * DAYS
    await site.client.get(site.path(site.links.open_url(m1)), headers={"User-Agent": CHROME})
    await site.client.get(site.path(site.links.open_url(m2)), headers={"User-Agent": CHROME})
    await site.client.get(site.path(site.links.click_url(m2, SHOP)), headers={"User-Agent": CHROME})
    await site.settled()
    with ws.engine.begin() as connection:
        buyer = connection.execute(select(contacts.c.id).where(contacts.c.email == e3)).scalar_one()
        add_event(connection, buyer, "purchase", START + 2 * DAYS, amount=35.0)
    orders = ws.path / "orders.csv"
    orders.write_text(
        f"email,type,occurred_at,amount,code\n{e2},purchase,2025-03-05T10:00:00Z,60,{code2}\n",
        encoding="utf-8",
    )
    imported = cli.invoke(
        app, ["import", "events", str(orders), "--now", "2025-03-06", "-w", str(ws.path)]
    )
    assert imported.exit_code == 0, imported.output

    # Until the next score or run, the page shows the figures it kept.
    assert kept(site, 10)["result"] == first["result"]
    later = START + 10 * DAYS
    tick_and_dispatch(ws, now=later, dry_run=True)
    after = kept(site, 10)
    live = journey_results(ws, "spring", later, language)
    assert after["result"] == live
    assert after["as_of"] == later.strftime("%Y-%m-%d %H:%M")
    step = live["steps"][0]
    assert (step["opened"], step["clicked"], step["redeemed"]) == (2, 1, 1)
    assert (step["conversions"], step["revenue"]) == (2, 95.0)

    # A score keeps them too; a control's new status shows at once, figures unchanged.
    scored_at = START + 11 * DAYS
    score(ws, now=scored_at)
    assert kept(site, 11)["result"] == journey_results(ws, "spring", scored_at, language)
    pause_journey(ws, "spring", now=scored_at)
    paused = kept(site, 11)
    assert paused["result"]["status"] == "paused"
    assert paused["as_of"] == scored_at.strftime("%Y-%m-%d %H:%M")


async def test_a_journey_added_since_the_last_run_is_computed_live(site: Site) -> None:
    ws = site.workspace
    add(ws, JOURNEY)
    with ws.engine.begin() as connection:
        contact = scored(connection, email="ann@example.com")
        add_event(connection, contact, "visit", START)
    item = kept(site, 1)
    assert item["as_of"] is None
    assert item["result"] == journey_results(
        ws, "spring", START + DAYS, ws.config.workspace.language
    )
