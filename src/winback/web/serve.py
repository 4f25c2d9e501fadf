"""Running the app with uvicorn: ``winback serve``.

uvicorn closes a keep-alive connection that stays idle between requests
(``timeout_keep_alive``), but it has no limit on the time a request's head takes to
arrive: a client that sends one header line every few seconds holds its connection
forever, and a few thousand of them hold the server's file descriptors and memory (the
"slowloris" attack). :class:`HeadersDeadline` closes a connection whose request line and
headers are not all in within :data:`HEADERS_SECONDS` of their first byte (or of the
connection, when nothing comes)."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import sys

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from winback.web.app import create_app
from winback.workspace import Workspace

SWITCH_INTERVAL = 0.0005
# The longest a request's head may take to arrive: a browser or an image proxy sends
# it in one packet; a reverse proxy, at once.
HEADERS_SECONDS = 10.0


class HeadersDeadline:
    """A mixin for uvicorn's HTTP protocols: the connection is closed unless the head
    of the request now expected is complete within :attr:`headers_seconds`.

    The deadline is armed when the connection opens and when the first byte of a new
    request arrives, and disarmed once its headers are complete (the body, if any, is
    the app's to bound); between requests uvicorn's keep-alive timeout applies."""

    headers_seconds = HEADERS_SECONDS
    _headers_deadline: asyncio.TimerHandle | None = None
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def _arm_headers_deadline(self) -> None:
        if self._headers_deadline is None:
            self._headers_deadline = self.loop.call_later(self.headers_seconds, self._headers_late)

    def _disarm_headers_deadline(self) -> None:
        if self._headers_deadline is not None:
            self._headers_deadline.cancel()
            self._headers_deadline = None

    def _headers_late(self) -> None:
        self._headers_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_headers_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_headers_deadline()
        super().connection_lost(exc)  # type: ignore[misc]


class H11HeadersDeadline(HeadersDeadline, H11Protocol):
    """h11's protocol with the deadline: h11 says, after each read, whether the client
    is still sending a request's head (its state ``IDLE``)."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm_headers_deadline()
        else:
            self._disarm_headers_deadline()


def _protocols() -> tuple[type[asyncio.Protocol], ...]:
    """The protocol classes with the deadline: httptools' when it is installed (the
    fast parser), then h11's."""
    found: list[type[asyncio.Protocol]] = []
    if importlib.util.find_spec("httptools") is not None:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        class HttpToolsHeadersDeadline(HeadersDeadline, HttpToolsProtocol):
            """httptools' protocol with the deadline, from its parser's callbacks."""

            def on_message_begin(self) -> None:
                self._arm_headers_deadline()
                super().on_message_begin()

            def on_headers_complete(self) -> None:
                self._disarm_headers_deadline()
                super().on_headers_complete()

        found.append(HttpToolsHeadersDeadline)
    found.append(H11HeadersDeadline)
    return tuple(found)


PROTOCOLS = _protocols()


def serve(workspace: Workspace, *, host: str = "127.0.0.1", port: int = 8025) -> None:
    """Serve the workspace's app until SIGTERM or Ctrl-C; the shutdown writes every hit
    still queued. uvloop and httptools are used when installed (they are dependencies:
    the open pixel and the click links are the hot path)."""
    # Hits are recorded in a process of their own (winback.web.writer), but threads
    # remain: the recorder queue's feeder (it pickles each batch), the jobs' thread, the
    # pool that reads for the pages. By default one of them keeps the GIL for a long
    # switch interval while requests wait (longer when the OS preempts it); handing it
    # over more often gave a lower tail latency (bench/tracking.py; bench/RESULTS.md).
    sys.setswitchinterval(SWITCH_INTERVAL)
    fast = importlib.util.find_spec("uvloop") is not None
    app = create_app(workspace)
    # The modules and the app live as long as the process: frozen, their 170,000 objects
    # are not walked by the collector's full passes, each of which otherwise stalled
    # every request in flight (see bench/RESULTS.md).
    gc.freeze()
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop" if fast else "asyncio",
        access_log=False,
        log_level="info",
        server_header=False,
        http=PROTOCOLS[0],
    )
