"""What a broken link or a hostile client sends: mangled tokens, forms without a length
or far over the limit, and random bodies on every form route. The server answers the
pixel, a 400 page or a 413, never a 500, and reads no more of a body than its limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import add_contact, day
from tests.web.conftest import NOW, Site, open_site, sent_message
from winback.domain import Channel
from winback.links import Links
from winback.web.csrf import csrf_token
from winback.web.tracking import PIXEL
from winback.workspace import Workspace

pytestmark = pytest.mark.anyio

MESSAGE = "<20250602.7@news.example.com>"
PAGES = ("u", "p", "s", "k")
# Mangled signatures as mail clients and copy-pastes leave them: a non-ASCII letter
# percent-encoded, raw, or the signature of a fullwidth form.
MANGLED = ("abc.%C3%A9", "abc.é", "eyJwIjoibyJ9.%EF%BC%A1%EF%BC%A2", "%C3%A9.abc")


@pytest.fixture
def contact(site: Site) -> int:
    with site.workspace.engine.begin() as c:
        contact = add_contact(c, email="dana@example.com", created_at=day(2024, 1, 5))
        sent_message(c, contact, MESSAGE, sent_at=NOW)
    return contact


@pytest.mark.parametrize("token", MANGLED)
async def test_a_mangled_token_gets_the_pixel_or_a_400_page(site: Site, token: str) -> None:
    pixel = await site.client.get(f"/o/{token}")
    assert (pixel.status_code, pixel.content) == (200, PIXEL)
    assert pixel.headers["content-type"] == "image/gif"
    click = await site.client.get(f"/c/{token}")
    assert click.status_code == 400 and "<html" in click.text
    for page in PAGES:
        shown = await site.client.get(f"/{page}/{token}")
        assert shown.status_code == 400 and "<html" in shown.text, page
        posted = await site.client.post(f"/{page}/{token}", data={"csrf": "x"})
        assert posted.status_code == 400, page
    await site.settled()
    assert site.events() == []


def unsubscribe_form(site: Site, contact: int) -> tuple[str, str]:
    token = site.links.unsubscribe_token(contact, Channel.EMAIL)
    return token, csrf_token(site.workspace.secret, token)


class Feed:
    """A request body that counts how much of it the server pulled."""

    def __init__(self, chunks: int, chunk: bytes) -> None:
        self.chunks = chunks
        self.chunk = chunk
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += len(self.chunk)
            yield self.chunk


async def test_a_chunked_multipart_form_is_refused_past_the_limit_unread(
    site: Site, contact: int
) -> None:
    token, csrf = unsubscribe_form(site, contact)
    boundary = "winbackboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{csrf}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
    ).encode()

    class Multipart(Feed):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield head
            async for chunk in super().__aiter__():
                yield chunk

    body = Multipart(200, b"x" * 1_000_000)  # a 200 MB part, sent without a length
    answer = await site.client.post(
        f"/u/{token}",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert answer.status_code == 413
    limit = site.workspace.config.web.max_body_bytes
    assert body.pulled <= limit + len(body.chunk)
    assert site.contact(contact)["email_status"] == "subscribed"


async def test_a_chunked_urlencoded_form_is_refused_past_the_limit_unread(
    site: Site, contact: int
) -> None:
    token, _csrf = unsubscribe_form(site, contact)
    body = Feed(200, b"a=" + b"x" * 999_998)
    answer = await site.client.post(
        f"/u/{token}",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 413
    assert body.pulled <= site.workspace.config.web.max_body_bytes + len(body.chunk)


async def test_a_form_with_a_file_or_a_broken_boundary_is_a_400(site: Site, contact: int) -> None:
    token, csrf = unsubscribe_form(site, contact)
    with_file = await site.client.post(
        f"/u/{token}", data={"csrf": csrf}, files={"upload": ("a.txt", b"hello")}
    )
    assert with_file.status_code == 400
    broken = await site.client.post(
        f"/u/{token}",
        content=b"--nothing here",
        headers={"Content-Type": "multipart/form-data"},
    )
    assert broken.status_code == 400
    assert site.contact(contact)["email_status"] == "subscribed"


@pytest.mark.parametrize("body", [b"csrf=%C2%80", "csrf=é".encode()])
async def test_a_non_ascii_csrf_value_is_refused_not_a_500(
    site: Site, contact: int, body: bytes
) -> None:
    token, _csrf = unsubscribe_form(site, contact)
    answer = await site.client.post(
        f"/u/{token}", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert answer.status_code == 403
    assert site.contact(contact)["email_status"] == "subscribed"


async def test_a_chunked_form_under_the_limit_is_read(site: Site, contact: int) -> None:
    token, csrf = unsubscribe_form(site, contact)
    body = Feed(1, f"csrf={csrf}".encode())
    answer = await site.client.post(
        f"/u/{token}",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    assert site.contact(contact)["email_status"] == "unsubscribed"


# -- the fuzz: every form route, any body, any declared type ----------------------------

CONTENT_TYPES = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=latin-1",
        "multipart/form-data; boundary=xyz",
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "text/plain",
        "application/json",
        "",
    ]
)
FIELD = st.sampled_from(["csrf", "frequency", "channels", "topics", "reason", "text", "x"])
FIELD_VALUE = st.text(max_size=40)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["raw", "urlencoded", "multipart"]))
    if kind == "raw":
        return draw(st.binary(max_size=300))
    fields = draw(st.lists(st.tuples(FIELD, FIELD_VALUE), max_size=6))
    if kind == "urlencoded":
        return str(httpx.QueryParams(tuple(fields))).encode()
    parts = [
        f'--xyz\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields
    ]
    ending = draw(st.sampled_from(["--xyz--\r\n", "", "--xy"]))
    return ("".join(parts) + ending).encode("utf-8", errors="surrogatepass")


@pytest.mark.slow
def test_no_form_post_gives_a_500(sqlite_workspace: Workspace) -> None:
    workspace = sqlite_workspace
    with workspace.engine.begin() as c:
        contact = add_contact(c, email="erin@example.com", created_at=day(2024, 1, 5))
        sent_message(c, contact, MESSAGE, sent_at=NOW)
    links = Links.of(workspace)
    tokens = {
        "u": links.unsubscribe_token(contact, Channel.EMAIL),
        "p": links.preferences_url(contact).rsplit("/", 1)[1],
        "s": links.survey_url(contact, "winback", message_id=MESSAGE).rsplit("/", 1)[1],
        "k": links.stay_url(contact).rsplit("/", 1)[1],
    }
    # One app (and one hit recorder) for every example: the loop runs between them.
    with asyncio.Runner() as runner:
        opened = open_site(workspace)
        site = runner.run(opened.__anext__())

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            page=st.sampled_from(PAGES),
            token=st.one_of(st.just("good"), st.sampled_from(MANGLED), st.text(max_size=30)),
            content_type=CONTENT_TYPES,
            body=bodies(),
            chunked=st.booleans(),
        )
        def post(page: str, token: str, content_type: str, body: bytes, chunked: bool) -> None:
            real = tokens[page] if token == "good" else quote(token, safe="")
            headers = {"Content-Type": content_type} if content_type else {}
            content: Any = Feed(1, body) if chunked else body
            answer = runner.run(
                site.client.post(f"/{page}/{real}", content=content, headers=headers)
            )
            assert answer.status_code < 500, (page, token, content_type, body)

        try:
            post()
        finally:
            runner.run(opened.aclose())
