"""A survey answer does what it says (issue 15): it ends the person's journey at once,
"too many messages" sets a monthly frequency, "not relevant" a pause, and a person's
second answer replaces the first."""

from __future__ import annotations

import pytest

from tests.journeys.conftest import SIMPLE, add, scored
from tests.web.conftest import NOW, Site
from winback.clock import to_db
from winback.journeys.engine import tick
from winback.journeys.enrolment import enrol
from winback.store.schema import enrollments, outbox, survey_answers
from winback.store.survey import survey_counts
from winback.web.csrf import csrf_token
from winback.workspace import Workspace

pytestmark = pytest.mark.anyio


@pytest.fixture
def workspace(sqlite_workspace: Workspace) -> Workspace:
    return sqlite_workspace


async def answer(site: Site, contact: int, reason: str, text: str = "") -> None:
    token = site.links.survey_url(contact, "spring").rsplit("/", 1)[1]
    form = {"csrf": csrf_token(site.workspace.secret, token), "reason": reason, "text": text}
    response = await site.client.post(f"/s/{token}", data=form)
    assert response.status_code == 200, response.text


async def test_too_many_messages_ends_the_journey_and_sets_monthly(site: Site) -> None:
    ws = site.workspace
    add(ws, SIMPLE)
    with ws.engine.begin() as c:
        camille = scored(c, email="camille@example.com", first_name="Camille")
        other = scored(c, email="other@example.com")
    enrol(ws, "spring", now=NOW)
    assert tick(ws, now=NOW).queued == 2

    await answer(site, camille, "too_many", "Une fois par mois suffit.")

    assert site.contact(camille)["frequency"] == "monthly"
    assert site.contact(other)["frequency"] == "normal"
    [mine] = site.rows(enrollments, contact_id=camille)
    assert (mine["status"], mine["outcome"]) == ("exited", "survey: too_many")
    assert [row["status"] for row in site.rows(outbox, contact_id=camille)] == ["cancelled"]
    assert [row["status"] for row in site.rows(outbox, contact_id=other)] == ["queued"]
    [record] = site.audit(action="survey")
    assert record["details"]["exited"] == ["spring"]
    assert record["details"]["applied"] == {"frequency": "monthly", "paused_until": None}
    assert [a["reason"] for a in site.audit(action="exit")] == ["survey: too_many"]
    # The tick does not bring the journey back.
    assert tick(ws, now=NOW).queued == 0


async def test_not_relevant_pauses_and_a_second_answer_replaces_the_first(site: Site) -> None:
    ws = site.workspace
    with ws.engine.begin() as c:
        dana = scored(c, email="dana@example.com")
    await answer(site, dana, "too_many")
    await answer(site, dana, "not_relevant", "Je n'ai plus de chien.")

    [stored] = site.rows(survey_answers)
    assert (stored["reason"], stored["text"]) == ("not_relevant", "Je n'ai plus de chien.")
    with ws.engine.connect() as c:
        assert survey_counts(c) == {"not_relevant": 1}
    pause = ws.config.web.pause
    assert site.contact(dana)["paused_until"] == to_db(NOW + pause)
    assert [a["details"]["replaced"] for a in site.audit(action="survey")] == [0, 1]
