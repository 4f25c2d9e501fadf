"""Unsubscribe: GET only asks, the form's POST and the RFC 8058 one-click POST
unsubscribe at once and idempotently, suppress the address, and the journey sends
nothing more. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.journeys.conftest import SIMPLE, START, add, delivered, outbox_rows, scored
from tests.web.conftest import Site
from winback.compliance.suppression import is_suppressed
from winback.domain import Channel
from winback.journeys.engine import tick
from winback.journeys.enrolment import enrol
from winback.web.csrf import csrf_token

pytestmark = pytest.mark.anyio

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def contact(site: Site) -> int:
    with site.workspace.engine.begin() as c:
        return scored(c, email="Bob@Example.com".lower(), phone="+33612345678", language="fr")


def unchanged(site: Site, contact: int) -> bool:
    row = site.contact(contact)
    return (
        row["email_status"] == "subscribed"
        and site.events() == []
        and site.suppressions() == []
        and not site.audit(contact_id=contact)
    )


async def test_get_asks_and_changes_nothing(site: Site, contact: int) -> None:
    url = site.path(site.links.unsubscribe_url(contact, Channel.EMAIL))
    answer = await site.client.get(url)
    assert answer.status_code == 200
    assert '<html lang="fr">' in answer.text
    assert "bob@example.com" in answer.text
    assert 'method="post"' in answer.text
    await site.client.head(url)
    await site.settled()
    assert unchanged(site, contact)


@pytest.mark.parametrize("how", ["form", "one-click"])
async def test_post_unsubscribes_at_once_and_idempotently(
    site: Site, contact: int, how: str
) -> None:
    token = site.links.unsubscribe_token(contact, Channel.EMAIL)
    form = ONE_CLICK if how == "one-click" else {"csrf": csrf_token(site.workspace.secret, token)}
    for _ in range(2):
        answer = await site.client.post(f"/u/{token}", data=form)
        assert answer.status_code == 200
        assert "vous ne recevrez plus" in answer.text
    # No settling needed: the answer comes once the unsubscribe is committed.
    row = site.contact(contact)
    assert (row["email_status"], row["sms_status"]) == ("unsubscribed", "subscribed")
    [event] = site.events()
    assert (event["type"], event["channel"], event["source"]) == (
        "unsubscribe",
        "email",
        f"web:{how}",
    )
    with site.workspace.engine.connect() as c:
        assert is_suppressed(c, site.workspace, "email", "bob@example.com")
        assert not is_suppressed(c, site.workspace, "sms", "+33612345678")
    actions = [(a["action"], a["reason"]) for a in site.audit(contact_id=contact)]
    assert actions == [("status_change", "email unsubscribed"), ("suppress", "unsubscribe")]
    # The page of an unsubscribed address says so instead of asking again.
    again = await site.client.get(f"/u/{token}")
    assert "vous ne recevrez plus" in again.text and 'method="post"' not in again.text


async def test_one_click_as_multipart_and_for_sms(site: Site, contact: int) -> None:
    token = site.links.unsubscribe_token(contact, Channel.SMS)
    answer = await site.client.post(f"/u/{token}", files={"List-Unsubscribe": (None, "One-Click")})
    assert answer.status_code == 200
    assert site.contact(contact)["sms_status"] == "unsubscribed"


async def test_a_post_without_csrf_changes_nothing(site: Site, contact: int) -> None:
    token = site.links.unsubscribe_token(contact, Channel.EMAIL)
    other = site.links.unsubscribe_token(contact + 1, Channel.EMAIL)
    for form in (
        {},
        {"csrf": "made-up"},
        {"csrf": csrf_token(site.workspace.secret, other)},  # another page's value
        {"List-Unsubscribe": "Yes"},
    ):
        answer = await site.client.post(f"/u/{token}", data=form)
        assert answer.status_code == 403, form
    answer = await site.client.post(
        f"/u/{token}", content=b'{"List-Unsubscribe": "One-Click"}',
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert answer.status_code == 403
    await site.settled()
    assert unchanged(site, contact)


async def test_bad_tokens_get_400(site: Site, contact: int) -> None:
    token = site.links.unsubscribe_token(contact, Channel.EMAIL)
    preferences = site.path(site.links.preferences_url(contact)).removeprefix("/p/")
    for bad in (token[:-2], token.replace(".", "x."), preferences, "x.y"):
        assert (await site.client.get(f"/u/{bad}")).status_code == 400
        assert (await site.client.post(f"/u/{bad}", data=ONE_CLICK)).status_code == 400
    await site.settled()
    assert unchanged(site, contact)


async def test_the_link_works_years_later(site: Site, contact: int) -> None:
    token = site.links.unsubscribe_token(contact, Channel.EMAIL)
    site.clock.now = site.clock.now + timedelta(days=5 * 365)
    answer = await site.client.post(f"/u/{token}", data=ONE_CLICK)
    assert answer.status_code == 200
    assert site.contact(contact)["email_status"] == "unsubscribed"


async def test_the_journey_sends_nothing_after_an_unsubscribe(site: Site) -> None:
    workspace = site.workspace
    add(workspace, SIMPLE)
    with workspace.engine.begin() as c:
        leaving = scored(c, email="leaving@example.com")
        staying = scored(c, email="staying@example.com")
    enrol(workspace, "spring", now=START)
    tick(workspace, now=START)
    delivered(workspace, START)  # the next step waits for the first to go out
    assert len(outbox_rows(workspace, contact_id=leaving)) == 1
    site.clock.now = START + timedelta(days=3)
    token = site.links.unsubscribe_token(leaving, Channel.EMAIL)
    assert (await site.client.post(f"/u/{token}", data=ONE_CLICK)).status_code == 200
    tick(workspace, now=START + timedelta(days=31))
    assert len(outbox_rows(workspace, contact_id=leaving)) == 1  # nothing new
    assert len(outbox_rows(workspace, contact_id=staying)) == 2  # the journey went on
