"""The old links of an erased person: the pixel and the redirect still answer, but
nothing about the person is recorded, only an anonymous count per day and step."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.builders import add_contact, day
from tests.web.conftest import CHROME, NOW, Site, sent_message
from winback.compliance.erasure import erase_contacts
from winback.store.schema import erased_hits
from winback.web.tracking import PIXEL

pytestmark = pytest.mark.anyio

MESSAGE = "<20250601.9@news.example.com>"
OTHER = "<20250601.10@news.example.com>"
SALE = "https://shop.example.com/sale"


def anonymous_counts(site: Site) -> list[dict[str, Any]]:
    with site.workspace.engine.connect() as c:
        return [dict(row) for row in c.execute(select(erased_hits)).mappings()]


async def test_hits_on_an_erased_contacts_links_are_only_counted(site: Site) -> None:
    with site.workspace.engine.begin() as c:
        gone = add_contact(c, email="frank@example.com", created_at=day(2024, 1, 5))
        kept = add_contact(c, email="grace@example.com", created_at=day(2024, 1, 5))
        sent_message(c, gone, MESSAGE, sent_at=NOW - timedelta(days=1))
        sent_message(c, kept, OTHER, sent_at=NOW - timedelta(days=1))
    opened = site.path(site.links.open_url(MESSAGE))
    # Read once before the erasure (the recorder has looked the message up by then).
    await site.client.get(opened, headers={"User-Agent": CHROME})
    await site.settled()
    with site.workspace.engine.begin() as c:
        erase_contacts(c, site.workspace, [gone], now=NOW, actor="test", reason="request")
    before = site.events(contact_id=gone)

    for _ in range(2):
        pixel = await site.client.get(opened, headers={"User-Agent": CHROME})
        assert (pixel.status_code, pixel.content) == (200, PIXEL)
    click = await site.client.get(
        site.path(site.links.click_url(MESSAGE, SALE)), headers={"User-Agent": CHROME}
    )
    assert (click.status_code, click.headers["location"]) == (302, SALE)
    await site.client.get(site.path(site.links.open_url(OTHER)), headers={"User-Agent": CHROME})
    await site.settled()

    after = site.events(contact_id=gone)
    assert after == before  # no new event, and the old one holds no ip or agent
    assert all(row["ip"] is None and row["user_agent"] is None for row in after)
    counts = {
        (r["day"], r["journey"], r["step_id"], r["type"]): r["hits"] for r in anonymous_counts(site)
    }
    assert counts == {
        (date(2025, 6, 2), "spring", "miss-you", "open"): 2,
        (date(2025, 6, 2), "spring", "miss-you", "click"): 1,
    }
    assert [e["ip"] for e in site.events(contact_id=kept)] == ["203.0.113.7"]
