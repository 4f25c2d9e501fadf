"""The open pixel and the click links, answered in plain ASGI by :class:`WinbackApp` in
front of the FastAPI app that serves everything else (:func:`winback.web.app.create_app`).
The pixel answers its GIF whatever happens, even for a broken token, so a mail client
never shows a broken image; a click goes only to the URL its signed token carries. A hit
is journaled by the server's writer and answered once it is on disk.
"""

from __future__ import annotations

import base64
import logging
from datetime import datetime
from urllib.parse import quote

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from winback.domain import EventType
from winback.links import BadToken
from winback.web.server import NO_CACHE, Server
from winback.web.writer import WriterClosed

log = logging.getLogger("winback.web")

# The smallest transparent GIF: 1×1, one colour, transparent.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_RAW_NO_CACHE = [(name.lower().encode(), value.encode()) for name, value in NO_CACHE.items()]
_PIXEL_HEADERS = [
    (b"content-type", b"image/gif"),
    (b"content-length", str(len(PIXEL)).encode()),
    *_RAW_NO_CACHE,
]
_REDIRECT_HEADERS = [(b"content-length", b"0"), *_RAW_NO_CACHE]
# What Starlette's RedirectResponse leaves unquoted in a Location header.
_URL_SAFE = ":/%#?=@[]!$&'()*+,;"


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
