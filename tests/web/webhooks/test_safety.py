"""What a webhook refuses before it reads anything (issue 15): bodies nested past any
parser's stack (400, not 500, with or without credentials), signatures older than
``web.webhook_max_age`` (401), a Mailgun signature used again with another event (401,
also after a restart), and values out of range (400: never 500)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.web.conftest import NOW, Site, open_site
from tests.web.webhooks.conftest import configured
from tests.web.webhooks.providers import (
    BREVO_TOKEN,
    POSTMARK_TOKEN,
    Keys,
    basic,
    brevo_events,
    mailgun,
    mailgun_event,
    post,
    postmark_records,
    sendgrid,
    sendgrid_events,
    ses_event,
    sns,
)
from winback.config import load_config
from winback.errors import ConfigError
from winback.store.schema import webhook_tokens
from winback.workspace import Workspace

pytestmark = pytest.mark.anyio

DEEP = b"[" * 100_000
OLD = NOW - timedelta(days=400)


def bounce(timestamp: str = "2025-06-02T09:00:00.669Z") -> dict[str, Any]:
    return ses_event("Bounce", bounce={
        "bounceType": "Permanent", "timestamp": timestamp,
        "bouncedRecipients": [{"emailAddress": "dave@example.com"}]})  # fmt: skip


async def test_deep_bodies_are_refused_unread(
    site: Site, people: dict[str, int], keys: Keys
) -> None:
    for provider, kind in (("mailgun", "application/json"), ("ses", "text/plain")):
        answer = await site.client.post(
            f"/webhooks/{provider}", content=DEEP, headers={"Content-Type": kind}
        )
        assert answer.status_code == 400, provider
    signed = sendgrid(keys, None, body=DEEP)  # a valid signature over the deep body
    assert (await post(site, "sendgrid", signed)).status_code == 400
    for provider, secret in (("postmark", POSTMARK_TOKEN), ("brevo", BREVO_TOKEN)):
        headers = {"Content-Type": "application/json", **basic(secret)}
        request = {"content": DEEP, "headers": headers}
        assert (await post(site, provider, request)).status_code == 400
    await site.settled()
    assert site.events() == []


async def test_values_out_of_range_are_refused(
    site: Site, people: dict[str, int], keys: Keys
) -> None:
    requests: list[tuple[str, dict[str, Any]]] = [
        ("mailgun", mailgun(mailgun_event("delivered"), timestamp="1e20")),
        ("mailgun", mailgun(mailgun_event("delivered"), timestamp="NaN")),
        ("mailgun", mailgun(mailgun_event("delivered", timestamp=1e20))),
        ("sendgrid", sendgrid(keys, [{**sendgrid_events()[1], "timestamp": 1e300}])),
        ("ses", sns(keys, bounce("9999-12-31T23:59:59.000Z"))),
    ]
    brevo = {**brevo_events()[0], "ts_event": 1e300}
    requests.append(("brevo", {"json": brevo, "headers": basic(BREVO_TOKEN)}))
    postmark = {**postmark_records()[0], "DeliveredAt": "9999-12-31T23:59:59Z"}
    requests.append(("postmark", {"json": postmark, "headers": basic(POSTMARK_TOKEN)}))
    for provider, request in requests:
        answer = await post(site, provider, request)
        assert answer.status_code == 400, (provider, answer.text)
        assert "out of range" in answer.json()["error"]
    await site.settled()
    assert site.events() == []


async def test_old_signatures_are_refused(site: Site, people: dict[str, int], keys: Keys) -> None:
    old = str(int(OLD.timestamp()))
    stale = [
        ("mailgun", mailgun(mailgun_event("complained"), timestamp=old)),
        ("sendgrid", sendgrid(keys, sendgrid_events(), timestamp=old)),
        ("ses", sns(keys, bounce(), timestamp=OLD.isoformat().replace("+00:00", "Z"))),
    ]
    for provider, request in stale:
        answer = await post(site, provider, request)
        assert answer.status_code == 401, provider
        assert "webhook_max_age" in answer.json()["error"]
    await site.settled()
    assert site.events() == []
    assert site.contact(people["dave"])["email_status"] == "subscribed"
    # The same requests are taken while they are fresh.
    site.clock.now = OLD + timedelta(hours=1)
    for provider, request in stale:
        assert (await post(site, provider, request)).status_code == 200, provider


async def test_the_freshness_window_is_configured(sqlite_workspace: Workspace, keys: Keys) -> None:
    workspace = configured(sqlite_workspace, keys, webhook_max_age='"30min"')
    try:
        async for site in open_site(workspace):
            # Signed an hour before NOW: inside the default day, outside 30 minutes.
            answer = await post(site, "mailgun", mailgun(mailgun_event("delivered")))
            assert answer.status_code == 401
    finally:
        workspace.close()


async def test_a_mailgun_token_is_taken_once_even_after_a_restart(
    site: Site, people: dict[str, int]
) -> None:
    first = mailgun(mailgun_event("delivered"))
    assert (await post(site, "mailgun", first)).status_code == 200
    # Mailgun's retry of the same request is recorded once.
    retry = await post(site, "mailgun", first)
    assert (retry.status_code, retry.json()["duplicates"]) == (200, 1)
    forged = {"json": {**first["json"], "event-data": mailgun_event("complained")}}
    async for restarted in open_site(site.workspace):
        answer = await post(restarted, "mailgun", forged)
        assert answer.status_code == 401
        assert "used already" in answer.json()["error"]
    assert site.contact(people["dave"])["email_status"] == "subscribed"
    # Past the window the token is refused for its age, and its row is pruned.
    site.clock.now = NOW + timedelta(days=1)
    fresh = mailgun(mailgun_event("opened"), timestamp=str(int(site.clock.now.timestamp())))
    assert (await post(site, "mailgun", fresh)).status_code == 200
    with site.workspace.engine.connect() as c:
        tokens = list(c.execute(select(webhook_tokens.c.token)).scalars())
    assert tokens == [fresh["json"]["signature"]["token"]]


def test_webhook_settings_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "winback.toml"
    config.write_text('[web]\nwebhook_max_age = "soon"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"web\.webhook_max_age"):
        load_config(config)
    config.write_text(
        '[web]\ntopics = ["news"]\nsendgrid_groups = {"77" = "sales"}\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"web\.sendgrid_groups: .*group 77 .*'sales'"):
        load_config(config)
