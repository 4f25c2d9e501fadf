"""Slow clients (slowloris): a connection whose request head trickles in, a line every
few seconds, or never comes, is closed by the server once the head is late; a client that
sends its head at once is served, and may keep its connection between requests."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from tests.channels.smtp_server import free_port
from winback.web.serve import PROTOCOLS

DEADLINE = 1.0  # seconds: the server's HEADERS_SECONDS, shortened for the test


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(params=PROTOCOLS, ids=lambda protocol: protocol.__name__)
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    """uvicorn on a free loopback port with one of the server's protocols."""
    protocol = type("Short", (request.param,), {"headers_seconds": DEADLINE})
    port = free_port()
    config = uvicorn.Config(
        hello, host="127.0.0.1", port=port, http=protocol, lifespan="off", log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield port
    server.should_exit = True
    thread.join()


def closed_by_server(sock: socket.socket, lines: list[bytes], every: float) -> bool:
    """Send ``lines`` one every ``every`` seconds; True once the server closed the
    connection (a read gives EOF or a reset), False when every line went through and
    the connection is still open 3 deadlines later."""
    sock.settimeout(every)
    for line in lines:
        try:
            sock.sendall(line)
            if sock.recv(1024) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionError:
            return True
    sock.settimeout(3 * DEADLINE)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False


def test_a_head_sent_a_line_at_a_time_is_cut(port: int) -> None:
    trickle = [b"GET /o/x HTTP/1.1\r\n"] + [b"X-Pad: %d\r\n" % n for n in range(20)]
    with socket.create_connection(("127.0.0.1", port)) as sock:
        assert closed_by_server(sock, trickle, DEADLINE / 4)


def test_many_silent_connections_are_all_closed(port: int) -> None:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
    try:
        for sock in socks:
            sock.settimeout(5 * DEADLINE)
            assert sock.recv(1024) == b""
    finally:
        for sock in socks:
            sock.close()


def test_a_prompt_client_is_served_and_kept_between_requests(port: int) -> None:
    request = b"GET /o/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(5)
        for _ in range(2):
            sock.sendall(request)
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
            # Under the keep-alive timeout (5 s) but past the head's deadline: the
            # deadline applies to a request being received, not to an idle connection.
            time.sleep(DEADLINE * 1.5)


@pytest.mark.anyio
async def test_a_head_split_in_packets_within_the_deadline_is_served(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for part in (b"GET /o/x HT", b"TP/1.1\r\nHost: 127.0.0.1\r\n", b"\r\n"):
        writer.write(part)
        await writer.drain()
        await asyncio.sleep(DEADLINE / 5)
    assert (await reader.read(1024)).startswith(b"HTTP/1.1 200")
    writer.close()
