"""The marketer's dashboard at ``/dashboard``, behind a login (:mod:`winback.web.auth`):
the base, the journeys, deliverability, the survey and one contact's timeline with the
GDPR export and erasure. Each page renders a view of :mod:`winback.reports.views`; the
charts are drawn by plotly.js, served from the Plotly package itself, so the dashboard
works with no internet access.

Every form carries a CSRF value tied to the session cookie (the login form's to a
pre-session value), and every page answers ``no-store``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from jinja2 import Environment, PackageLoader
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from winback.errors import NotFoundError
from winback.journeys.controls import (
    JourneyStateError,
    pause_journey,
    resume_journey,
    stop_journey,
)
from winback.json_values import json_document
from winback.reports import views
from winback.web.auth import COOKIE, LoginThrottle, check_password, session_cookie, session_user
from winback.web.csrf import csrf_ok, csrf_token
from winback.web.dashboard_words import WORDS
from winback.web.server import Server

ROOT = "/dashboard"
_CONTROLS = {"pause": pause_journey, "resume": resume_journey, "stop": stop_journey}
_PRE_SESSION = "winback_login"
_NO_STORE = {"Cache-Control": "no-store", "X-Frame-Options": "DENY"}
NAV = (
    ("base", ""),
    ("journeys", "/journeys"),
    ("deliverability", "/deliverability"),
    ("survey", "/survey"),
    ("contact", "/contact"),
)


def plotly_js() -> Path:
    """The plotly.js bundle that the Plotly package ships."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def page_templates() -> Environment:
    return Environment(loader=PackageLoader("winback.web", "templates"), autoescape=True)


def dashboard_router(server: Server) -> APIRouter:
    """The dashboard's routes, sharing the app's :class:`~winback.web.server.Server`."""
    router = APIRouter(prefix=ROOT)
    workspace = server.workspace
    secret: bytes = workspace.secret
    language = workspace.config.workspace.language
    words = WORDS[language]
    secure = workspace.config.workspace.public_url.startswith("https://")
    templates = page_templates()
    throttle = LoginThrottle()

    def render(template: str, title: str, status: int = 200, **context: Any) -> HTMLResponse:
        values: dict[str, Any] = {
            "lang": language, "t": words, "title": title, "root": ROOT, "charts": [],
            "nav": NAV, "brand": {"name": server.config.workspace.brand_name,
                                  "color": server.config.workspace.brand_color},
        }  # fmt: skip
        html = templates.get_template(f"dashboard/{template}.html.j2").render({**values, **context})
        return HTMLResponse(html, status_code=status, headers=_NO_STORE)

    def user_of(request: Request) -> str | None:
        return session_user(secret, request.cookies.get(COOKIE), server.clock())

    def login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
        pre = request.cookies.get(_PRE_SESSION) or secrets.token_urlsafe(16)
        response = render(
            "login", words["login"], status, nav=(), error=error, csrf=csrf_token(secret, pre)
        )
        response.set_cookie(
            _PRE_SESSION, pre, httponly=True, samesite="lax", secure=secure, path=ROOT
        )
        return response

    async def page(
        request: Request, key: str, build: Callable[[], Mapping[str, Any]], template: str
    ) -> Response:
        cookie = request.cookies.get(COOKIE) or ""
        if user_of(request) is None:
            return RedirectResponse(f"{ROOT}/login", status_code=303)
        view = await run_in_threadpool(build)
        return render(
            template, words[key], page=key, view=view, charts=view.get("charts", []),
            csrf=csrf_token(secret, cookie),
        )  # fmt: skip

    @router.get("/static/plotly.min.js")
    async def plotly_bundle() -> Response:
        return FileResponse(
            plotly_js(),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        return login_page(request)

    @router.post("/login")
    async def login(request: Request) -> Response:
        fields = await server.form(request)
        pre = request.cookies.get(_PRE_SESSION) or ""
        if not pre or not csrf_ok(secret, pre, _first(fields, "csrf")):
            return login_page(request, words["csrf"], 403)
        email = (_first(fields, "email") or "").strip().lower()
        client = request.client.host if request.client else "?"
        keys = [f"email:{email}", f"ip:{client}"]
        now = server.clock()
        wait = throttle.wait(keys, now)
        if wait > 0:
            return login_page(request, words["slow_down"].format(seconds=int(wait) + 1), 429)
        password = _first(fields, "password") or ""
        ok = await server.read(lambda c: check_password(c, email, password))
        if not ok:
            throttle.failed(keys, now)
            return login_page(request, words["wrong_login"], 401)
        throttle.succeeded(keys)
        response = RedirectResponse(ROOT, status_code=303)
        response.set_cookie(
            COOKIE, session_cookie(secret, email, now), httponly=True, samesite="lax",
            secure=secure, path=ROOT,
        )  # fmt: skip
        response.delete_cookie(_PRE_SESSION, path=ROOT)
        return response

    async def posted(request: Request) -> dict[str, list[str]] | Response:
        """The fields of a form posted by a logged-in user with the session's CSRF value,
        or the answer to give instead (the login page, a 403)."""
        if user_of(request) is None:
            return RedirectResponse(f"{ROOT}/login", status_code=303)
        fields = await server.form(request)
        if not csrf_ok(secret, request.cookies.get(COOKIE) or "", _first(fields, "csrf")):
            return Response(words["csrf"], status_code=403)
        return fields

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        fields = await posted(request)
        if isinstance(fields, Response):
            return fields
        response = RedirectResponse(f"{ROOT}/login", status_code=303)
        response.delete_cookie(COOKIE, path=ROOT)
        return response

    @router.get("", response_class=HTMLResponse)
    async def base(request: Request, since: str | None = None) -> Response:
        try:
            start = date.fromisoformat(since) if since else None
        except ValueError:
            start = None  # a mistyped date: the default period, as if none was given
        return await page(
            request,
            "base",
            lambda: views.base_view(workspace, server.clock(), words, start),
            "base",
        )

    @router.get("/journeys", response_class=HTMLResponse)
    async def journeys(request: Request) -> Response:
        return await page(
            request,
            "journeys",
            lambda: views.journeys_view(workspace, server.clock(), words),
            "journeys",
        )

    @router.post("/journeys/{name}/{action}")
    async def journey_control(request: Request, name: str, action: str) -> Response:
        fields = await posted(request)
        if isinstance(fields, Response):
            return fields
        control = _CONTROLS.get(action)
        if control is None:
            return Response("unknown action", status_code=404)
        try:
            await run_in_threadpool(control, workspace, name, now=server.clock())
        except JourneyStateError as exc:
            return Response(str(exc), status_code=409)
        return RedirectResponse(f"{ROOT}/journeys", status_code=303)

    @router.get("/deliverability", response_class=HTMLResponse)
    async def deliverability(request: Request) -> Response:
        return await page(
            request,
            "deliverability",
            lambda: views.deliverability_view(workspace, server.clock(), words),
            "deliverability",
        )

    @router.get("/survey", response_class=HTMLResponse)
    async def survey(request: Request) -> Response:
        return await page(request, "survey", lambda: views.survey_view(workspace, words), "survey")

    @router.get("/contact", response_class=HTMLResponse)
    async def contact(request: Request, q: str | None = None) -> Response:
        cookie = request.cookies.get(COOKIE)
        if user_of(request) is None or cookie is None:
            return RedirectResponse(f"{ROOT}/login", status_code=303)
        return await contact_page(cookie, q)

    async def contact_page(
        cookie: str, query: str | None, message: str | None = None, good: bool = False
    ) -> Response:
        person = None
        if query and not message:
            person = await run_in_threadpool(_person, workspace, query)
            if person is None:
                message = words["not_found"]
        return render(
            "contact", words["contact"], page="contact", query=query, person=person,
            timeline=_timeline(person, words) if person else [], message=message,
            message_class="ok" if good else "error", csrf=csrf_token(secret, cookie),
        )  # fmt: skip

    @router.get("/contact/export")
    async def contact_export(request: Request, q: str) -> Response:
        if user_of(request) is None:
            return RedirectResponse(f"{ROOT}/login", status_code=303)
        person = await run_in_threadpool(_person, workspace, q)
        if person is None:
            return Response(words["not_found"], status_code=404)
        body = json_document(person)
        return Response(
            body,
            media_type="application/json",
            headers={**_NO_STORE, "Content-Disposition": 'attachment; filename="export.json"'},
        )

    @router.post("/contact/erase", response_class=HTMLResponse)
    async def contact_erase(request: Request) -> Response:
        fields = await posted(request)
        if isinstance(fields, Response):
            return fields
        cookie = request.cookies.get(COOKIE) or ""
        address = (_first(fields, "address") or "").strip()
        typed = (_first(fields, "confirm") or "").strip()
        if not address or typed.lower() != address.lower():
            return await contact_page(cookie, address, words["erase_mismatch"])
        from winback.compliance.gdpr import erase_person

        await run_in_threadpool(erase_person, workspace, address, now=server.clock())
        return await contact_page(cookie, None, words["erased"], good=True)

    return router


def _person(workspace: Any, address: str) -> dict[str, Any] | None:
    from winback.compliance.gdpr import export_person

    try:
        return export_person(workspace, address)
    except NotFoundError:  # no such contact, or not an email or phone at all
        return None


def _timeline(person: Mapping[str, Any], t: Mapping[str, str]) -> list[dict[str, Any]]:
    """The person's events, messages, stage changes and journeys, newest first."""
    items: list[dict[str, Any]] = []
    for event in person["events"]:
        items.append(
            {"at": str(event["occurred_at"]), "what": event["type"], "detail": event["channel"]}
        )
    for message in person["messages"]:
        items.append(
            {"at": str(message.get("sent_at") or message.get("created_at")),
             "what": t["messages"], "detail": message.get("subject") or message.get("step_id")}
        )  # fmt: skip
    for change in person["stage_history"]:
        items.append(
            {"at": str(change["on"]), "what": t["stage"],
             "detail": f"{change['from'] or '—'} → {change['to']}"}
        )  # fmt: skip
    for enrollment in person["enrollments"]:
        items.append(
            {"at": str(enrollment["enrolled_at"]), "what": t["journey"],
             "detail": f"{enrollment['journey']}: {enrollment['status']}"}
        )  # fmt: skip
    return sorted(items, key=lambda item: item["at"], reverse=True)


def _first(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None
