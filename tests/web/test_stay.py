"""``retention.ask_before_erase``: before the retention purge erases a contact, a last
message asks whether they want to stay, and only their yes on the page keeps them. Who is
asked and by which channel, what arrives, and who is erased when. On SQLite and
PostgreSQL, with a real SMTP server and the app over HTTP (in-process)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.builders import add_contact, add_event
from tests.channels.smtp_server import RecordingHandler, body_of
from tests.web.conftest import NOW, Site, open_site
from winback.compliance.retention import purge
from winback.compliance.suppression import suppress
from winback.journeys.dispatcher import dispatch
from winback.store.schema import outbox
from winback.web.csrf import csrf_token
from winback.workspace import Workspace

pytestmark = pytest.mark.anyio

DAY = timedelta(days=1)
THREE_YEARS = 3 * 365 * DAY  # erase_after = "3y"; ask_ahead is 4 weeks
OLD = NOW - 4 * 365 * DAY
STAY_LINK = re.compile(r"http://127\.0\.0\.1:8025/k/[\w.-]+")


@pytest.fixture
async def site(workspace: Workspace) -> AsyncIterator[Site]:
    """The app of a workspace that asks before it erases."""
    config = workspace.path / "winback.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("ask_before_erase = false", "ask_before_erase = true"), encoding="utf-8"
    )
    asking = Workspace.open(workspace.path)
    try:
        async for made in open_site(asking):
            yield made
    finally:
        asking.close()


def _people(site: Site) -> dict[str, int]:
    with site.workspace.engine.begin() as c:

        def person(name: str, **fields: object) -> int:
            return add_contact(
                c,
                email=f"{name}@example.com",
                created_at=OLD,
                language="en",
                first_name=name.title(),
                **fields,  # type: ignore[arg-type]
            )

        people = {
            "soon": person("soon"),  # their clock runs out in two weeks
            "later": person("later"),  # in six weeks: not asked yet
            "overdue": person("overdue"),  # ran out long ago, never asked
            "gone": person("gone", email_status="unsubscribed"),  # may not be written to
            "texter": add_contact(c, phone="+33612345678", created_at=OLD, language="en"),
        }
        add_event(c, people["soon"], "click", NOW - THREE_YEARS + 14 * DAY)
        add_event(c, people["later"], "purchase", NOW - THREE_YEARS + 42 * DAY, amount=20.0)
    return people


def _asks(site: Site) -> dict[int, str]:
    return {
        row["contact_id"]: row["channel"]
        for row in site.rows(outbox, step_id="retention-ask")
        if row["journey"] is None
    }


def _erased(site: Site, people: dict[str, int]) -> set[str]:
    return {name for name, cid in people.items() if site.contact(cid)["erased_at"] is not None}


async def test_asked_first_erased_without_a_yes_kept_with_one(
    site: Site, smtp: RecordingHandler
) -> None:
    people = _people(site)
    ws = site.workspace

    first = purge(ws, now=NOW)
    # Due: overdue, gone, texter. Asked: whoever runs out within four weeks and can be
    # written to (by email, else SMS); gone cannot be, so it is erased at once.
    assert (first.due, first.asked, first.waiting, first.erased) == (3, 3, 2, 1)
    assert _erased(site, people) == {"gone"}
    assert _asks(site) == {
        people["soon"]: "email",
        people["overdue"]: "email",
        people["texter"]: "sms",
    }
    assert [a["reason"] for a in site.audit(contact_id=people["soon"])] == [
        "no contact from the person since 2022-07-01: erased unless they say they want to stay"
    ]

    sent = dispatch(ws, now=NOW)
    assert sent.sent == 3 and sent.failed == 0
    by_rcpt = {r.rcpt_tos[0]: r.message for r in smtp.received}
    assert set(by_rcpt) == {"soon@example.com", "overdue@example.com"}
    message = by_rcpt["soon@example.com"]
    assert message["Subject"] == "Shall we keep your data, Soon?"
    assert message["X-Winback-Step"] == "retention-ask"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = body_of(message, "plain")
    html = body_of(message, "html")
    assert "June 30, 2025" in text  # sent on June 2, answered within four weeks
    [stay_url] = set(STAY_LINK.findall(text))
    assert stay_url in html  # the page's own link, not a tracked redirect

    # A second run the next day asks nobody twice and erases nobody still waiting.
    again = purge(ws, now=NOW + DAY)
    assert (again.asked, again.erased) == (0, 0)

    # Soon says yes; overdue's link is only looked at (a scanner, or a person who
    # does not press the button): a look is no yes.
    site.clock.now = NOW + 3 * DAY
    token = stay_url.rsplit("/", 1)[1]
    page = await site.client.get(f"/k/{token}")
    assert page.status_code == 200 and "Yes, I want to stay" in page.text
    refused = await site.client.post(f"/k/{token}", data={})
    assert refused.status_code == 403
    answer = await site.client.post(f"/k/{token}", data={"csrf": csrf_token(ws.secret, token)})
    assert answer.status_code == 200 and "we keep your data" in answer.text
    overdue_text = body_of(by_rcpt["overdue@example.com"], "plain")
    [overdue_url] = set(STAY_LINK.findall(overdue_text))
    assert (await site.client.get(site.path(overdue_url))).status_code == 200

    # Four weeks after the question: the silent ones go, the one who said yes stays;
    # later's clock now runs out within four weeks, so it is asked.
    last = purge(ws, now=NOW + 29 * DAY)
    assert (last.erased, last.asked) == (2, 1)
    assert _erased(site, people) == {"gone", "overdue", "texter"}
    assert people["later"] in _asks(site)
    actions = [a["action"] for a in site.audit(contact_id=people["soon"])]
    assert actions == ["retention_ask", "send", "stay"]


async def test_an_ask_that_cannot_go_out_does_not_hold_the_erasure(site: Site) -> None:
    people = _people(site)
    ws = site.workspace
    assert purge(ws, now=NOW).waiting == 2
    # Overdue's address is suppressed before the question leaves: dispatch cancels it,
    # and nothing is owed to a person we may not write to.
    with ws.engine.begin() as c:
        suppress(
            c,
            ws,
            channel="email",
            reason="manual",
            now=NOW,
            actor="user",
            contact_id=people["overdue"],
            address="overdue@example.com",
        )
    dispatch(ws, now=NOW, dry_run=True)
    assert site.rows(outbox, contact_id=people["overdue"])[0]["status"] == "cancelled"
    result = purge(ws, now=NOW + DAY)
    assert result.erased == 1 and _erased(site, people) == {"gone", "overdue"}


async def test_without_the_option_nobody_is_asked(workspace: Workspace) -> None:
    async for plain in open_site(workspace):
        people = _people(plain)
        result = purge(workspace, now=NOW)
        assert (result.asked, result.waiting, result.erased) == (0, 0, 3)
        assert _asks(plain) == {}
        assert _erased(plain, people) == {"overdue", "gone", "texter"}
