"""The web app in-process: httpx against the ASGI app, with its lifespan (so its writer)
running, a clock the test moves, and messages in the outbox for the links to point at."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, func, insert, select

from tests.builders import add_contact, day
from winback.clock import to_db
from winback.links import Links
from winback.store.schema import audit, contacts, events, outbox, suppressions
from winback.web import create_app
from winback.web.server import Server
from winback.workspace import Workspace

BASE = "http://127.0.0.1:8025"
NOW = datetime.fromisoformat("2025-06-02T10:00:00+00:00")

# Real user agents, as the server receives them.
APPLE_PROXY = "Mozilla/5.0"
APPLE_MAIL_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"  # noqa: E501
IPHONE_SAFARI = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"  # noqa: E501
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
BING_PREVIEW = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) BingPreview/1.0b"  # noqa: E501
HEADLESS = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.109 Safari/537.36"  # noqa: E501


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    """The app's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Site:
    workspace: Workspace
    client: httpx.AsyncClient
    links: Links
    clock: Clock
    server: Server

    async def settled(self) -> None:
        """Wait until the writer has written everything queued so far."""
        await self.server.write(lambda _connection: None)

    def path(self, url: str) -> str:
        return url.removeprefix(BASE)

    def rows(self, table: Any, **where: Any) -> list[dict[str, Any]]:
        query = select(table).order_by(table.c.id)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        with self.workspace.engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def events(self, **where: Any) -> list[dict[str, Any]]:
        return self.rows(events, **where)

    def contact(self, contact_id: int) -> dict[str, Any]:
        return self.rows(contacts, id=contact_id)[0]

    def suppressions(self) -> list[dict[str, Any]]:
        return self.rows(suppressions)

    def audit(self, **where: Any) -> list[dict[str, Any]]:
        return self.rows(audit, **where)


@pytest.fixture
async def site(workspace: Workspace) -> AsyncIterator[Site]:
    async for made in open_site(workspace):
        yield made


async def open_site(workspace: Workspace) -> AsyncGenerator[Site, None]:
    """The app of ``workspace`` with its lifespan running, and a client for it."""
    clock = Clock(NOW)
    app = create_app(workspace, clock=clock)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 51000))
    async with (
        app.api.router.lifespan_context(app.api),
        httpx.AsyncClient(transport=transport, base_url=BASE) as client,
    ):
        yield Site(workspace, client, Links.of(workspace), clock, app.server)


def sent_message(
    connection: Connection,
    contact_id: int,
    message_id: str,
    *,
    sent_at: datetime,
    channel: str = "email",
    journey: str | None = "spring",
    provider_id: str | None = None,
) -> int:
    """An outbox row as dispatch leaves it once the message went out."""
    result = connection.execute(
        insert(outbox).returning(outbox.c.id),
        {
            "idempotency_key": f"test:{message_id}",
            "contact_id": contact_id,
            "journey": journey,
            "step_id": "miss-you",
            "channel": channel,
            "status": "sent",
            "message_id": message_id,
            "provider_id": provider_id,
            "created_at": to_db(sent_at),
            "due_at": to_db(sent_at),
            "sent_at": to_db(sent_at),
        },
    )
    return int(result.scalar_one())


def tracked_messages(workspace: Workspace, count: int, sent_at: datetime) -> list[str]:
    """``count`` contacts with one message each, sent at ``sent_at``: the paths of each
    message's open pixel and of a click link to a shop page."""
    links = Links.of(workspace)
    paths = []
    with workspace.engine.begin() as c:
        for number in range(count):
            contact = add_contact(c, email=f"p{number}@example.com", created_at=day(2024, 1, 5))
            message = f"<load.{number}@news.example.com>"
            sent_message(c, contact, message, sent_at=sent_at)
            clicked = links.click_url(message, f"https://shop.example.com/p/{number}")
            paths += [links.open_url(message), clicked]
    return [url.removeprefix(links.base) for url in paths]


def recorded_events(workspace: Workspace) -> int:
    """How many events the store holds."""
    with workspace.engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(events)).scalar_one())
