"""What the routes of ``winback serve`` share: the :class:`Server` (the workspace, its
links, the one :class:`~winback.web.writer.Writer`, the clock, the pages) and the reading
of a posted body or form, bounded by ``web.max_body_bytes`` and checked for its CSRF
value. The errors it raises are answered by the app (:func:`winback.web.app.create_app`):
413, 400, 403.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import HTMLResponse

from winback.links import Links
from winback.web.csrf import csrf_ok
from winback.web.texts import TEXTS, language_of
from winback.web.writer import Writer
from winback.workspace import Workspace

T = TypeVar("T")

NO_CACHE = {"Cache-Control": "no-store, max-age=0", "Pragma": "no-cache"}
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
# Most fields in a posted form (the preference centre has a few dozen at most).
_MAX_FIELDS = 1000


class BodyTooLarge(Exception):
    """A request body over ``web.max_body_bytes``: answered 413 unread."""


class BadForm(Exception):
    """A posted form that cannot be parsed (a broken multipart body, a file, too many
    fields): answered 400."""


class CsrfRefused(Exception):
    """A posted form without its page's CSRF value: answered 403, in the language of the
    contact whose link the page was for (``contact_id``), when the link named one."""

    def __init__(self, contact_id: int | None = None) -> None:
        super().__init__("no CSRF value of the page")
        self.contact_id = contact_id


class Server:
    """The state the routes share: the workspace, its links, the writer, the clock."""

    def __init__(self, workspace: Workspace, clock: Callable[[], datetime]) -> None:
        self.workspace = workspace
        self.config = workspace.config
        self.links = Links.of(workspace)
        self.clock = clock
        self.writer = Writer(workspace)
        self.pages = Environment(loader=PackageLoader("winback.web", "templates"), autoescape=True)
        self.brand = {
            "name": self.config.workspace.brand_name,
            "color": self.config.workspace.brand_color,
        }

    # -- helpers ----------------------------------------------------------------------

    async def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in the writer and wait until it is committed."""
        return await asyncio.wrap_future(self.writer.submit(work))

    async def read(self, work: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self.workspace.engine.connect() as connection:
                return work(connection)

        return await run_in_threadpool(run)

    def text(self, language: str | None, key: str) -> Any:
        """The words of ``key`` in the contact's ``language`` (or the workspace's)."""
        return TEXTS[language_of(language, self.config.workspace.language)][key]

    def page(
        self, template: str, language: str | None, title: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        lang = language_of(language, self.config.workspace.language)
        t = TEXTS[lang]
        html = self.pages.get_template(f"{template}.html.j2").render(
            lang=lang, t=t, title=t[title], brand=self.brand, **context
        )
        return HTMLResponse(html, status_code=status, headers=NO_CACHE)

    def message(
        self, language: str | None, title: str, text: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        return self.page(
            "message", language, title, status, message=self.text(language, text), **context
        )

    def check_csrf(
        self, link_token: str, fields: dict[str, list[str]], contact_id: int | None = None
    ) -> None:
        """Raise :class:`CsrfRefused` unless the form carries the page's CSRF value;
        ``contact_id``: whom the page's link is for (the refusal speaks their language)."""
        if not csrf_ok(self.workspace.secret, link_token, first_field(fields, "csrf")):
            raise CsrfRefused(contact_id)

    async def checked_form(
        self, link_token: str, request: Request, contact_id: int | None = None
    ) -> dict[str, list[str]]:
        """The fields of a form posted from the page of ``link_token``, once its CSRF
        value is checked (:meth:`check_csrf`)."""
        fields = await self.form(request)
        self.check_csrf(link_token, fields, contact_id)
        return fields

    def bad_link(self) -> HTMLResponse:
        return self.message(None, "bad_link_title", "bad_link", 400)

    def gone(self) -> HTMLResponse:
        return self.message(None, "bad_link_title", "gone", 404)

    async def form(self, request: Request) -> dict[str, list[str]]:
        """The fields of a posted form (urlencoded or multipart, with a length or
        chunked), read as it arrives and refused past ``web.max_body_bytes``: memory
        stays bounded whatever the client sends. A form takes no files."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in _FORMS:
            return {}
        if kind == "multipart/form-data":
            parser = MultiPartParser(
                request.headers, self._stream(request), max_files=0, max_fields=_MAX_FIELDS
            )
            try:
                parsed = await parser.parse()
            except MultiPartException as exc:
                raise BadForm(exc.message) from None
            fields: dict[str, list[str]] = {}
            for name, value in parsed.multi_items():
                if isinstance(value, str):
                    fields.setdefault(name, []).append(value)
            return fields
        body = await self.body(request)
        return parse_qs(
            body.decode("utf-8", errors="replace"),
            keep_blank_values=True,
            max_num_fields=_MAX_FIELDS,
        )

    async def body(self, request: Request) -> bytes:
        """The raw body, refused past ``web.max_body_bytes`` without reading it all."""
        chunks = [chunk async for chunk in self._stream(request)]
        return b"".join(chunks)

    async def _stream(self, request: Request) -> AsyncGenerator[bytes, None]:
        """The body as it arrives; :class:`BodyTooLarge` once it passes
        ``web.max_body_bytes`` (announced or counted: a chunked body has no length)."""
        limit = self.config.web.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            yield chunk


def first_field(fields: dict[str, list[str]], name: str) -> str | None:
    """The first value of a form field, or None when the form has none."""
    values = fields.get(name)
    return values[0] if values else None
