"""The app of ``winback serve``: a thin HTTP face over :mod:`winback.links` (which token
opens what), :mod:`winback.web.choices` (what a person decides) and
:mod:`winback.web.webhooks` (what the ESPs report). Every write goes through the app's one
:class:`~winback.web.writer.Writer`.

The open pixel and the click links are answered by :class:`WinbackApp` in plain ASGI (they
are hit for every message read); the pages and webhooks by the FastAPI app behind it. The
pixel answers its GIF whatever happens, even for a broken token, so a mail client never
shows a broken image.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote

from fastapi import FastAPI
from jinja2 import Environment, PackageLoader
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

from winback.clock import local_date, utcnow, written_date
from winback.domain import SENDING_CHANNELS, EventType
from winback.errors import ConfigError, NotFoundError
from winback.links import BadToken, Links
from winback.web import choices
from winback.web.csrf import csrf_ok, csrf_token
from winback.web.dashboard import dashboard_router
from winback.web.texts import TEXTS, language_of
from winback.web.webhooks import WebhookError, WebhookRequest, parser_for, record_webhook
from winback.web.writer import Writer, WriterClosed
from winback.workspace import Workspace

T = TypeVar("T")
log = logging.getLogger("winback.web")

# The smallest transparent GIF: 1×1, one colour, transparent.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_CACHE = {"Cache-Control": "no-store, max-age=0", "Pragma": "no-cache"}
_RAW_NO_CACHE = [(name.lower().encode(), value.encode()) for name, value in _NO_CACHE.items()]
_PIXEL_HEADERS = [
    (b"content-type", b"image/gif"),
    (b"content-length", str(len(PIXEL)).encode()),
    *_RAW_NO_CACHE,
]
_REDIRECT_HEADERS = [(b"content-length", b"0"), *_RAW_NO_CACHE]
# What Starlette's RedirectResponse leaves unquoted in a Location header.
_URL_SAFE = ":/%#?=@[]!$&'()*+,;"
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
# Most fields in a posted form (the preference centre has a few dozen at most).
_MAX_FIELDS = 1000
_ONE_CLICK = "One-Click"


class BodyTooLarge(Exception):
    """A request body over ``web.max_body_bytes``: answered 413 unread."""


class BadForm(Exception):
    """A posted form that cannot be parsed (a broken multipart body, a file, too many
    fields): answered 400."""


class CsrfRefused(Exception):
    """A posted form without its page's CSRF value: answered 403."""


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
        return HTMLResponse(html, status_code=status, headers=_NO_CACHE)

    def message(
        self, language: str | None, title: str, text: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        return self.page(
            "message", language, title, status, message=self.text(language, text), **context
        )

    def check_csrf(self, link_token: str, fields: dict[str, list[str]]) -> None:
        """Raise :class:`CsrfRefused` unless the form carries the page's CSRF value."""
        if not csrf_ok(self.workspace.secret, link_token, _first(fields, "csrf")):
            raise CsrfRefused

    async def checked_form(self, link_token: str, request: Request) -> dict[str, list[str]]:
        """The fields of a form posted from the page of ``link_token``, once its CSRF
        value is checked (:meth:`check_csrf`)."""
        fields = await self.form(request)
        self.check_csrf(link_token, fields)
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


class WinbackApp:
    """The ASGI app: the open pixel and the click links, answered here in a few
    microseconds, in front of the FastAPI app (``api``) that serves everything else.

    The pixel and the links are hit for every message read; going through FastAPI's
    middleware, routing and response objects cost several times what verifying the token
    does, so these two paths speak ASGI directly."""

    def __init__(self, server: Server, api: FastAPI) -> None:
        self.server = server
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path: str = scope["path"]
            if path.startswith("/o/"):
                await self.open_pixel(scope, send, path[3:])
                return
            if path.startswith("/c/"):
                await self.click(scope, receive, send, path[3:])
                return
        await self.api(scope, receive, send)

    async def _hit(
        self, scope: Scope, kind: EventType, message_id: str, now: datetime, url: str | None
    ) -> None:
        """Journal a hit and wait until it is on disk: only then is it answered."""
        user_agent = None
        for name, value in scope["headers"]:
            if name == b"user-agent":
                user_agent = value.decode("latin-1")
                break
        client = scope.get("client")
        ip = client[0] if client else None
        try:
            synced = self.server.writer.hit(kind.value, message_id, now, user_agent, ip, url)
        except WriterClosed:
            log.warning("%s on %s not recorded: shutting down", kind.value, message_id)
            return
        await synced

    async def open_pixel(self, scope: Scope, send: Send, token: str) -> None:
        """The GIF, whatever the token; a GET with a good token is an open (a HEAD is a
        link checker's look: no mail client fetches an image that way)."""
        if scope["method"] == "GET":
            now = self.server.clock()
            try:
                opened = self.server.links.verify_open(token, now=now)
            except BadToken:
                pass
            else:
                await self._hit(scope, EventType.OPEN, opened.message_id, now, None)
        await send({"type": "http.response.start", "status": 200, "headers": _PIXEL_HEADERS})
        await send({"type": "http.response.body", "body": PIXEL})

    async def click(self, scope: Scope, receive: Receive, send: Send, token: str) -> None:
        """302 to the URL the token carries, and nowhere else; a bad token gets 400."""
        now = self.server.clock()
        try:
            clicked = self.server.links.verify_click(token, now=now)
        except BadToken:
            await self.server.bad_link()(scope, receive, send)
            return
        if scope["method"] == "GET":  # a HEAD is a link checker's look, not a click
            await self._hit(scope, EventType.CLICK, clicked.message_id, now, clicked.url)
        location = quote(clicked.url, safe=_URL_SAFE).encode("ascii")
        headers = [(b"location", location), *_REDIRECT_HEADERS]
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def create_app(workspace: Workspace, *, clock: Callable[[], datetime] = utcnow) -> WinbackApp:
    """The tracking and preference server of ``workspace``, as an ASGI app (run it with
    ``winback serve`` or any ASGI server). ``clock`` gives the time of each request;
    tests pass a fixed one. The app's lifespan starts the writer and, at shutdown,
    writes everything still queued."""
    server = Server(workspace, clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        server.writer.start()
        try:
            yield
        finally:
            await run_in_threadpool(server.writer.close)

    app = FastAPI(
        title="winback", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )

    # The page routes raise these rather than answer them one by one.
    @app.exception_handler(BadToken)
    async def bad_token(_request: Request, _exc: Exception) -> Response:
        return server.bad_link()

    @app.exception_handler(NotFoundError)
    async def not_found(_request: Request, _exc: Exception) -> Response:
        return server.gone()

    @app.exception_handler(BodyTooLarge)
    async def too_large(_request: Request, _exc: Exception) -> Response:
        return Response("body too large", status_code=413)

    @app.exception_handler(BadForm)
    async def bad_form(_request: Request, exc: Exception) -> Response:
        return Response(
            f"the form could not be read: {exc}", status_code=400, media_type="text/plain"
        )

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(_request: Request, _exc: Exception) -> Response:
        return server.message(None, "bad_link_title", "csrf", 403)

    # -- unsubscribe ------------------------------------------------------------------

    @app.get("/u/{token}", response_class=HTMLResponse)
    async def unsubscribe_page(token: str) -> Response:
        link = server.links.verify_unsubscribe(token, now=server.clock())
        contact = await server.read(lambda c: choices.page_contact(c, link.contact_id))
        language = contact["language"]
        address = choices.subscribed_address(contact, link.channel)
        if address is None:
            return server.message(language, "unsubscribe_title", "unsubscribe_done")
        question = server.text(language, "unsubscribe_ask")[link.channel.value]
        return server.page(
            "confirm",
            language,
            "unsubscribe_title",
            csrf=csrf_token(workspace.secret, token),
            question=question.format(address=address),
            button=server.text(language, "unsubscribe_button"),
            preferences_url=server.links.preferences_url(link.contact_id),
        )

    @app.post("/u/{token}", response_class=HTMLResponse)
    async def unsubscribe(token: str, request: Request) -> Response:
        now = server.clock()
        link = server.links.verify_unsubscribe(token, now=now)
        fields = await server.form(request)
        # RFC 8058: the mailbox provider's one-click POST carries no CSRF value; the
        # signed token is the proof, and that POST can only unsubscribe.
        one_click = fields.get("List-Unsubscribe") == [_ONE_CLICK]
        if not one_click:
            server.check_csrf(token, fields)
        how = "one-click" if one_click else "form"
        contact = await server.read(lambda c: choices.page_contact(c, link.contact_id))
        await server.write(
            lambda c: choices.unsubscribe(c, workspace, link.contact_id, link.channel, now, how=how)
        )
        return server.message(contact["language"], "unsubscribe_title", "unsubscribe_done")

    # -- the retention purge's last question ------------------------------------------

    @app.get("/k/{token}", response_class=HTMLResponse)
    async def stay_page(token: str) -> Response:
        link = server.links.verify_stay(token, now=server.clock())
        contact = await server.read(lambda c: choices.page_contact(c, link.contact_id))
        language = contact["language"]
        return server.page(
            "confirm",
            language,
            "stay_title",
            csrf=csrf_token(workspace.secret, token),
            question=server.text(language, "stay_ask"),
            button=server.text(language, "stay_button"),
        )

    @app.post("/k/{token}", response_class=HTMLResponse)
    async def stay(token: str, request: Request) -> Response:
        now = server.clock()
        link = server.links.verify_stay(token, now=now)
        await server.checked_form(token, request)
        contact = await server.read(lambda c: choices.page_contact(c, link.contact_id))
        await server.write(lambda c: choices.stay(c, link.contact_id, now))
        return server.message(contact["language"], "stay_title", "stay_done")

    # -- preference centre ------------------------------------------------------------

    def preferences_form(
        token: str, contact: dict[str, Any], notice: str | None = None
    ) -> Response:
        shown, paused_until = choices.current_preferences(contact, server.clock())
        tz = server.config.workspace.tz
        return server.page(
            "preferences",
            contact["language"],
            "preferences_title",
            csrf=csrf_token(workspace.secret, token),
            frequency=shown.frequency.value,
            paused_until=(
                written_date(
                    local_date(paused_until, tz),
                    language_of(contact["language"], server.config.workspace.language),
                )
                if paused_until
                else None
            ),
            channels=[channel.value for channel in SENDING_CHANNELS if channel in shown.channels],
            topics=[(topic, topic in shown.topics) for topic in server.config.web.topics],
            notice=notice,
        )

    @app.get("/p/{token}", response_class=HTMLResponse)
    async def preferences_page(token: str) -> Response:
        link = server.links.verify_preferences(token, now=server.clock())
        contact = await server.read(lambda c: choices.page_contact(c, link.contact_id))
        return preferences_form(token, contact)

    @app.post("/p/{token}", response_class=HTMLResponse)
    async def save_preferences(token: str, request: Request) -> Response:
        now = server.clock()
        link = server.links.verify_preferences(token, now=now)
        fields = await server.checked_form(token, request)
        try:
            frequency = choices.Frequency(_first(fields, "frequency") or "")
        except ValueError:
            return Response("choose a frequency: normal, monthly or pause", status_code=400)
        choice = choices.Preferences(
            frequency=frequency,
            channels=choices.parse_channels(fields.get("channels", [])),
            topics=tuple(fields.get("topics", [])),
        )
        await server.write(
            lambda c: choices.save_preferences(c, workspace, link.contact_id, choice, now)
        )
        contact = await server.read(lambda c: choices.page_contact(c, link.contact_id))
        return preferences_form(token, contact, server.text(contact["language"], "saved"))

    # -- survey -----------------------------------------------------------------------

    def survey_form(
        token: str, language: str | None, notice: str | None = None, status: int = 200
    ) -> Response:
        return server.page(
            "survey",
            language,
            "survey_title",
            status,
            csrf=csrf_token(workspace.secret, token),
            reasons=[reason.value for reason in choices.SurveyReason],
            notice=notice and server.text(language, notice),
        )

    @app.get("/s/{token}", response_class=HTMLResponse)
    async def survey_page(token: str) -> Response:
        link = server.links.verify_survey(token, now=server.clock())
        contact = await server.read(lambda c: choices.page_contact(c, link.contact_id))
        return survey_form(token, contact["language"])

    @app.post("/s/{token}", response_class=HTMLResponse)
    async def answer_survey(token: str, request: Request) -> Response:
        now = server.clock()
        link = server.links.verify_survey(token, now=now)
        fields = await server.checked_form(token, request)
        contact = await server.read(lambda c: choices.page_contact(c, link.contact_id))
        language = contact["language"]
        try:
            reason = choices.SurveyReason(_first(fields, "reason") or "")
        except ValueError:
            return survey_form(token, language, "choose_reason", 400)
        text = (_first(fields, "text") or "").strip() or None
        if text is not None and len(text) > choices.MAX_ANSWER_CHARS:
            return survey_form(token, language, "too_long", 400)
        await server.write(
            lambda c: choices.save_survey_answer(
                c,
                workspace,
                link.contact_id,
                survey=link.survey,
                reason=reason,
                text=text,
                message_id=link.message_id,
                now=now,
            )
        )
        return server.message(language, "survey_title", "thanks", answer=text)

    # -- ESP webhooks -----------------------------------------------------------------

    @app.post("/webhooks/{provider}")
    async def webhook(provider: str, request: Request) -> Response:
        now = server.clock()
        try:
            webhook = parser_for(provider, request.headers.get("content-type", ""))
            body = await server.body(request)
            headers = {name.lower(): value for name, value in request.headers.items()}
            found = webhook.parse(workspace, WebhookRequest(headers, body, received_at=now))
            result = await server.write(
                lambda c: record_webhook(c, workspace, provider, found, now)
            )
        except BodyTooLarge:
            return JSONResponse({"error": "body too large"}, status_code=413)
        except WebhookError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except ConfigError as exc:
            log.error("webhook %s: %s", provider, exc)
            return JSONResponse({"error": str(exc)}, status_code=503)
        for warning in result.warnings:
            log.warning("webhook %s: %s", provider, warning)
        return JSONResponse(result.as_dict())

    @app.get("/healthz")
    async def healthz() -> Response:
        """For `winback doctor` and load balancers: the server is up and is winback."""
        return JSONResponse({"winback": "ok"}, headers=_NO_CACHE)

    app.include_router(dashboard_router(server))
    return WinbackApp(server, app)


def _first(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None
