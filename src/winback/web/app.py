"""The app of ``winback serve``: a thin HTTP face over :mod:`winback.links` (which token
opens what), :mod:`winback.web.choices` (what a person decides) and
:mod:`winback.web.webhooks` (what the ESPs report). Every write goes through the server's
one :class:`~winback.web.writer.Writer` (:class:`~winback.web.server.Server`).

The open pixel and the click links are answered in plain ASGI by
:class:`~winback.web.tracking.WinbackApp` (they are hit for every message read); the
pages and webhooks by the FastAPI app behind it, built here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from winback.clock import local_date, utcnow, written_date
from winback.domain import SENDING_CHANNELS
from winback.errors import ConfigError, NotFoundError
from winback.links import BadToken
from winback.web import choices
from winback.web.csrf import csrf_token
from winback.web.dashboard import dashboard_router
from winback.web.server import (
    NO_CACHE,
    BadForm,
    BodyTooLarge,
    CsrfRefused,
    Server,
    first_field,
)
from winback.web.texts import language_of
from winback.web.tracking import WinbackApp
from winback.web.webhooks import WebhookError, WebhookRequest, parser_for, record_webhook
from winback.workspace import Workspace

log = logging.getLogger("winback.web")

_ONE_CLICK = "One-Click"


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
    async def csrf_refused(_request: Request, exc: Exception) -> Response:
        language = None
        contact_id = exc.contact_id if isinstance(exc, CsrfRefused) else None
        if contact_id is not None:
            try:
                contact = await server.read(lambda c: choices.page_contact(c, contact_id))
                language = contact["language"]
            except NotFoundError:  # erased meanwhile: the workspace's language
                pass
        return server.message(language, "bad_link_title", "csrf", 403)

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
            server.check_csrf(token, fields, link.contact_id)
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
        await server.checked_form(token, request, link.contact_id)
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
        fields = await server.checked_form(token, request, link.contact_id)
        try:
            frequency = choices.Frequency(first_field(fields, "frequency") or "")
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
        fields = await server.checked_form(token, request, link.contact_id)
        contact = await server.read(lambda c: choices.page_contact(c, link.contact_id))
        language = contact["language"]
        try:
            reason = choices.SurveyReason(first_field(fields, "reason") or "")
        except ValueError:
            return survey_form(token, language, "choose_reason", 400)
        text = (first_field(fields, "text") or "").strip() or None
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
        return JSONResponse({"winback": "ok"}, headers=NO_CACHE)

    app.include_router(dashboard_router(server))
    return WinbackApp(server, app)
