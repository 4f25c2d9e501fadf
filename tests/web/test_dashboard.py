"""The dashboard through HTTP, in-process: the login and its defences, every page on a
scored base with a played journey, a contact's timeline, export and erasure."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from tests.builders import add_contact, add_event
from tests.web.conftest import NOW, Site, open_site, sent_message
from winback.scoring import score
from winback.store.schema import contacts
from winback.web.auth import COOKIE, add_user
from winback.workspace import Workspace

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery"


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


async def log_in(client: httpx.AsyncClient, email: str = "boss@example.com") -> httpx.Response:
    form = await client.get("/dashboard/login")
    return await client.post(
        "/dashboard/login",
        data={"email": email, "password": PASSWORD, "csrf": csrf_of(form.text)},
    )


@pytest.fixture
async def board(workspace: Workspace) -> Site:
    add_user(workspace, "Boss@Example.com", PASSWORD, NOW)
    with workspace.engine.begin() as c:
        alice = add_contact(c, email="alice@example.com", created_at=NOW - timedelta(days=800),
                            first_name="<b>Alice</b>")  # fmt: skip
        add_event(c, alice, "purchase", NOW - timedelta(days=400), amount=30.0)
        sent_message(c, alice, "m-1@example.com", sent_at=NOW - timedelta(days=3))
        add_event(c, alice, "bounce_soft", NOW - timedelta(days=3))
    score(workspace, now=NOW)
    return workspace  # type: ignore[return-value]


async def test_pages_need_a_login(board: Workspace) -> None:
    async for site in open_site(board):
        for path in ("/dashboard", "/dashboard/journeys", "/dashboard/contact?q=a@example.com"):
            response = await site.client.get(path)
            assert response.status_code == 303
            assert response.headers["location"] == "/dashboard/login"
        site.client.cookies.set(COOKIE, "Ym9zc3wxOTk5OTk5OTk5.x", path="/dashboard")
        forged = await site.client.get("/dashboard")
        assert forged.status_code == 303


async def test_login_sets_a_safe_cookie_and_opens_every_page(board: Workspace) -> None:
    async for site in open_site(board):
        response = await log_in(site.client)
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
        assert "Secure" not in cookie  # public_url is http here
        base = await site.client.get("/dashboard")
        assert base.status_code == 200
        assert "chart-data-1" in base.text and "plotly.min.js" in base.text
        assert "dormant" in base.text or "lost" in base.text
        for path in ("/dashboard/journeys", "/dashboard/deliverability", "/dashboard/survey"):
            page = await site.client.get(path)
            assert page.status_code == 200, path
            assert page.headers["cache-control"] == "no-store"
        script = await site.client.get("/dashboard/static/plotly.min.js")
        assert script.status_code == 200 and b"plotly" in script.content[:2000].lower()


async def test_a_wrong_password_and_a_missing_csrf_value_are_refused(board: Workspace) -> None:
    async for site in open_site(board):
        form = await site.client.get("/dashboard/login")
        wrong = await site.client.post(
            "/dashboard/login",
            data={"email": "boss@example.com", "password": "guess", "csrf": csrf_of(form.text)},
        )
        assert wrong.status_code == 401 and COOKIE not in wrong.headers.get("set-cookie", "")
        no_csrf = await site.client.post(
            "/dashboard/login", data={"email": "boss@example.com", "password": PASSWORD}
        )
        assert no_csrf.status_code == 403
        assert (await site.client.get("/dashboard")).status_code == 303


async def test_repeated_failures_are_slowed_even_with_the_right_password(
    board: Workspace,
) -> None:
    async for site in open_site(board):
        for _ in range(3):
            form = await site.client.get("/dashboard/login")
            await site.client.post(
                "/dashboard/login",
                data={"email": "boss@example.com", "password": "nope", "csrf": csrf_of(form.text)},
            )
        slowed = await log_in(site.client)
        assert slowed.status_code == 429
        assert "seconds" in slowed.text or "secondes" in slowed.text
        site.clock.now = NOW + timedelta(minutes=10)
        assert (await log_in(site.client)).status_code == 303


async def test_the_session_cookie_is_secure_behind_https(board: Workspace) -> None:
    config = board.path / "winback.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'public_url = "http://127.0.0.1:8025"', 'public_url = "https://t.example.com"'
        ),
        encoding="utf-8",
    )
    secured = Workspace.open(board.path)
    try:
        async for site in open_site(secured):
            response = await log_in(site.client)
            assert "Secure" in response.headers["set-cookie"]
    finally:
        secured.close()


async def test_a_contact_timeline_escapes_what_the_person_wrote(board: Workspace) -> None:
    async for site in open_site(board):
        await log_in(site.client)
        page = await site.client.get("/dashboard/contact", params={"q": "alice@example.com"})
        assert page.status_code == 200
        assert "purchase" in page.text and "bounce_soft" in page.text
        assert "<b>Alice</b>" not in page.text
        missing = await site.client.get("/dashboard/contact", params={"q": "nobody@example.com"})
        assert "No contact" in missing.text or "Aucun contact" in missing.text
        export = await site.client.get(
            "/dashboard/contact/export", params={"q": "alice@example.com"}
        )
        assert export.json()["contact"]["email"] == "alice@example.com"


async def test_erasure_asks_to_type_the_address(board: Workspace) -> None:
    async for site in open_site(board):
        await log_in(site.client)
        page = await site.client.get("/dashboard/contact", params={"q": "alice@example.com"})
        token = csrf_of(page.text)
        form = {"address": "alice@example.com", "csrf": token}
        kept = await site.client.post("/dashboard/contact/erase", data={**form, "confirm": "alice"})
        assert kept.status_code == 200
        assert site.rows(contacts)[0]["email"] == "alice@example.com"
        forged = await site.client.post(
            "/dashboard/contact/erase", data={**form, "csrf": "x", "confirm": "alice@example.com"}
        )
        assert forged.status_code == 403
        erased = await site.client.post(
            "/dashboard/contact/erase", data={**form, "confirm": "alice@example.com"}
        )
        assert erased.status_code == 200
        assert site.rows(contacts)[0]["email"] is None


async def test_healthz_says_it_is_winback(board: Workspace) -> None:
    async for site in open_site(board):
        response = await site.client.get("/healthz")
        assert response.json() == {"winback": "ok"}


async def test_a_journey_is_paused_and_resumed_from_its_page(board: Workspace) -> None:
    from tests.journeys.conftest import SIMPLE, add

    add(board, SIMPLE)
    async for site in open_site(board):
        await log_in(site.client)
        page = await site.client.get("/dashboard/journeys")
        assert 'data-action="pause"' in page.text
        token = csrf_of(page.text)
        refused = await site.client.post("/dashboard/journeys/spring/pause", data={"csrf": "x"})
        assert refused.status_code == 403
        paused = await site.client.post("/dashboard/journeys/spring/pause", data={"csrf": token})
        assert paused.status_code == 303
        page = await site.client.get("/dashboard/journeys")
        assert 'data-action="resume"' in page.text and 'data-action="pause"' not in page.text
        twice = await site.client.post("/dashboard/journeys/spring/pause", data={"csrf": token})
        assert twice.status_code == 409
        resumed = await site.client.post("/dashboard/journeys/spring/resume", data={"csrf": token})
        assert resumed.status_code == 303
        assert 'data-action="pause"' in (await site.client.get("/dashboard/journeys")).text


async def test_the_period_of_stage_moves_is_chosen_on_the_base_page(board: Workspace) -> None:
    async for site in open_site(board):
        await log_in(site.client)
        chosen = await site.client.get("/dashboard", params={"since": "2024-01-31"})
        assert chosen.status_code == 200 and 'value="2024-01-31"' in chosen.text
        mistyped = await site.client.get("/dashboard", params={"since": "31/01/2024"})
        assert mistyped.status_code == 200 and 'name="since"' in mistyped.text
