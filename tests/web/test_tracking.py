"""The open pixel and the click links: what is recorded, machine opens and bot clicks,
and the tokens and redirects an attacker might try."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta
from urllib.parse import quote

import pytest

from tests.builders import add_contact, day
from tests.web.conftest import (
    APPLE_MAIL_MAC,
    APPLE_PROXY,
    BING_PREVIEW,
    CHROME,
    GMAIL_PROXY,
    HEADLESS,
    IPHONE_SAFARI,
    NOW,
    Site,
    open_site,
    sent_message,
)
from winback.domain import Channel
from winback.links import Links, Purpose
from winback.web import is_bot_click, is_scanner_user_agent
from winback.web.tracking import PIXEL
from winback.workspace import Workspace

pytestmark = pytest.mark.anyio

MESSAGE = "<20250602.1@news.example.com>"
SALE = "https://shop.example.com/sale?utm_source=winback"
HOUR = timedelta(hours=1)


@pytest.fixture
def message(site: Site) -> int:
    """A contact with one email sent an hour before the clock's now."""
    with site.workspace.engine.begin() as c:
        contact = add_contact(c, email="alice@example.com", created_at=day(2024, 1, 5))
        sent_message(c, contact, MESSAGE, sent_at=NOW - HOUR)
    return contact


def forged_links(site: Site) -> Links:
    return Links(secret=b"another workspace", public_url=site.links.public_url)


async def test_the_pixel_records_an_open_with_time_agent_and_address(
    site: Site, message: int
) -> None:
    answer = await site.client.get(
        site.path(site.links.open_url(MESSAGE)), headers={"User-Agent": CHROME}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/gif"
    assert answer.content == PIXEL
    assert "no-store" in answer.headers["cache-control"]
    await site.settled()
    [opened] = site.events(type="open")
    assert opened["contact_id"] == message
    assert opened["occurred_at"] == NOW.replace(tzinfo=None)
    assert (opened["user_agent"], opened["ip"]) == (CHROME, "203.0.113.7")
    assert opened["message_id"] == MESSAGE
    assert opened["outbox_id"] is not None
    assert opened["campaign"] == "spring"
    assert opened["source"] == "web"
    assert opened["machine_open"] is None  # a person: the scoring counts it


@pytest.mark.parametrize("agent", [APPLE_PROXY, APPLE_MAIL_MAC, GMAIL_PROXY])
async def test_image_proxy_fetches_are_machine_opens(site: Site, message: int, agent: str) -> None:
    await site.client.get(site.path(site.links.open_url(MESSAGE)), headers={"User-Agent": agent})
    await site.settled()
    assert [e["machine_open"] for e in site.events(type="open")] == [True]


async def test_an_open_one_second_after_sending_is_a_machine_open(site: Site, message: int) -> None:
    site.clock.now = NOW - HOUR + timedelta(seconds=1)
    await site.client.get(site.path(site.links.open_url(MESSAGE)), headers={"User-Agent": CHROME})
    await site.settled()
    assert [e["machine_open"] for e in site.events(type="open")] == [True]


async def test_a_person_on_an_iphone_is_not_a_machine_open(site: Site, message: int) -> None:
    await site.client.get(
        site.path(site.links.open_url(MESSAGE)), headers={"User-Agent": IPHONE_SAFARI}
    )
    await site.settled()
    assert [e["machine_open"] for e in site.events(type="open")] == [None]


async def test_the_pixel_answers_its_gif_to_any_token_and_records_nothing(
    site: Site, message: int
) -> None:
    good = site.path(site.links.open_url(MESSAGE)).removeprefix("/o/")
    body, signature = good.split(".")
    bad = [
        "garbage",
        "",
        good[:-3],  # truncated
        body + "." + signature[::-1],  # tampered signature
        body[:-2] + "AA." + signature,  # tampered payload
        forged_links(site).open_url(MESSAGE).rsplit("/", 1)[1],  # another workspace
        site.links.sign(Purpose.CLICK, {"m": MESSAGE, "u": SALE}),  # another page's token
        "%00%ff",
    ]
    for token in bad:
        answer = await site.client.get(f"/o/{token}" if token else "/o/x")
        assert answer.status_code == 200, token
        assert answer.content == PIXEL
    await site.settled()
    assert site.events() == []


async def test_a_click_redirects_to_the_url_the_message_carried(site: Site, message: int) -> None:
    site.clock.now = NOW + HOUR
    link = site.path(site.links.click_url(MESSAGE, SALE))
    answer = await site.client.get(link, headers={"User-Agent": CHROME})
    assert answer.status_code == 302
    assert answer.headers["location"] == SALE
    # Query parameters cannot change where it goes.
    answer = await site.client.get(link + "?url=//evil.example&next=https://evil.example")
    assert answer.headers["location"] == SALE
    await site.settled()
    clicks = site.events(type="click")
    assert [(c["url"], c["contact_id"], c["bot"]) for c in clicks] == [(SALE, message, False)] * 2


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "https://evil.example",
        "javascript:alert(document.cookie)",
        "JaVaScRiPt:alert(1)",
        "%2F%2Fevil.example",
        "/\\evil.example",
        "https:evil.example",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    ],
)
async def test_no_token_but_ours_redirects_anywhere(site: Site, message: int, target: str) -> None:
    good = site.path(site.links.click_url(MESSAGE, SALE)).removeprefix("/c/")
    body, signature = good.split(".")
    forged = forged_links(site).sign(Purpose.CLICK, {"m": MESSAGE, "u": target})
    # Signed by us but not an http(s) link: click_url refuses to make it; the server too.
    ours_unsafe = site.links.sign(Purpose.CLICK, {"m": MESSAGE, "u": target})
    swapped = forged.split(".")[0] + "." + signature  # our signature on another payload
    altered = signature[:-1] + ("B" if signature[-1] == "A" else "A")
    attempts = [forged, swapped, good[:-4], f"{body}.{altered}", quote(target, safe="")]
    if not target.lower().startswith(("http://", "https://")):
        attempts.append(ours_unsafe)
    for token in attempts:
        answer = await site.client.get(f"/c/{token}")
        # 400 for a bad token; 404 when the decoded path is no route at all (//...).
        assert answer.status_code in (400, 404), token
        assert "location" not in answer.headers
    await site.settled()
    assert site.events() == []


async def test_expired_and_foreign_purpose_tokens_are_refused(site: Site, message: int) -> None:
    expired = site.links.sign(
        Purpose.CLICK, {"m": MESSAGE, "u": SALE}, expires_at=NOW - timedelta(days=1)
    )
    assert (await site.client.get(f"/c/{expired}")).status_code == 400
    pixel = site.path(site.links.open_url(MESSAGE)).removeprefix("/o/")
    assert (await site.client.get(f"/c/{pixel}")).status_code == 400
    unsubscribe = site.links.unsubscribe_token(message, Channel.EMAIL)
    assert (await site.client.get(f"/c/{unsubscribe}")).status_code == 400


async def test_link_scanners_are_bot_clicks(site: Site, message: int) -> None:
    other = "https://shop.example.com/new"
    # A gateway on arrival: a browser agent, five seconds after sending.
    site.clock.now = NOW - HOUR + timedelta(seconds=5)
    await site.client.get(
        site.path(site.links.click_url(MESSAGE, SALE)), headers={"User-Agent": CHROME}
    )
    # Known scanners, an hour later.
    site.clock.now = NOW
    for agent in (BING_PREVIEW, HEADLESS, "python-requests/2.32.3"):
        await site.client.get(
            site.path(site.links.click_url(MESSAGE, SALE)), headers={"User-Agent": agent}
        )
    # A walk through every link: two different links one second apart.
    site.clock.now = NOW + HOUR
    await site.client.get(
        site.path(site.links.click_url(MESSAGE, SALE)), headers={"User-Agent": CHROME}
    )
    site.clock.now = NOW + HOUR + timedelta(seconds=1)
    await site.client.get(
        site.path(site.links.click_url(MESSAGE, other)), headers={"User-Agent": CHROME}
    )
    # A person, a day later.
    site.clock.now = NOW + 24 * HOUR
    await site.client.get(
        site.path(site.links.click_url(MESSAGE, other)), headers={"User-Agent": IPHONE_SAFARI}
    )
    await site.settled()
    # By time: one batch of the writer may reach the store in another order.
    clicks = sorted(site.events(type="click"), key=lambda c: c["occurred_at"])
    assert [c["bot"] for c in clicks] == [True, True, True, True, False, True, False]


def test_the_bot_rule_with_real_user_agents() -> None:
    for agent in (
        BING_PREVIEW,
        HEADLESS,
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "curl/8.5.0",
        "",
        None,
    ):
        assert is_scanner_user_agent(agent), agent
    for agent in (CHROME, IPHONE_SAFARI, APPLE_MAIL_MAC):
        assert not is_scanner_user_agent(agent), agent
    sent = NOW
    assert is_bot_click(
        user_agent=CHROME, url=SALE, clicked_at=sent + timedelta(seconds=3), sent_at=sent,
        earlier_clicks=[], bot_click_seconds=10,
    )  # fmt: skip
    assert not is_bot_click(
        user_agent=CHROME, url=SALE, clicked_at=sent + timedelta(minutes=3), sent_at=sent,
        earlier_clicks=[(sent + timedelta(minutes=2), SALE)], bot_click_seconds=10,
    )  # fmt: skip
    assert is_bot_click(
        user_agent=CHROME, url=SALE, clicked_at=sent + timedelta(minutes=3), sent_at=None,
        earlier_clicks=[(sent + timedelta(minutes=3), "https://shop.example.com/other")],
        bot_click_seconds=10,
    )  # fmt: skip


async def test_a_hit_on_a_message_that_is_not_in_the_outbox_is_dropped(site: Site) -> None:
    answer = await site.client.get(site.path(site.links.open_url("<unknown@example.com>")))
    assert answer.content == PIXEL
    await site.settled()
    assert site.events() == []
    assert site.server.writer.unmatched == 1


async def test_head_requests_are_answered_but_not_recorded(site: Site, message: int) -> None:
    pixel = await site.client.head(site.path(site.links.open_url(MESSAGE)))
    assert (pixel.status_code, pixel.headers["content-type"]) == (200, "image/gif")
    click = await site.client.head(site.path(site.links.click_url(MESSAGE, SALE)))
    assert (click.status_code, click.headers["location"]) == (302, SALE)
    await site.settled()
    assert site.events() == []


async def test_a_failing_job_does_not_stop_the_writer(site: Site, message: int) -> None:
    with pytest.raises(ZeroDivisionError):
        await site.server.write(lambda _connection: 1 // 0)
    await site.client.get(site.path(site.links.open_url(MESSAGE)), headers={"User-Agent": CHROME})
    await site.settled()
    assert len(site.events(type="open")) == 1


async def test_the_server_writes_the_hits_a_killed_recorder_left(workspace: Workspace) -> None:
    with workspace.engine.begin() as c:
        contact = add_contact(c, email="alice@example.com", created_at=day(2024, 1, 5))
        sent_message(c, contact, MESSAGE, sent_at=NOW - HOUR)
    async for site in open_site(workspace):
        await site.settled()  # the hit recorder's process is up: it answered the job's barrier
        [recorder] = [p for p in multiprocessing.active_children() if p.name == "winback-hits"]
        recorder.kill()  # as the OOM killer would, while it waits for hits
        recorder.join()
        for _ in range(3):
            answer = await site.client.get(
                site.path(site.links.open_url(MESSAGE)), headers={"User-Agent": CHROME}
            )
            assert answer.content == PIXEL
    # the app has shut down
    assert len(site.events(type="open")) == 3
