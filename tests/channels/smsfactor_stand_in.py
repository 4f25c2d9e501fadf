"""A stand-in for the SMSFactor API on loopback: a real HTTP/1.1 server (stdlib) that
speaks the documented ``POST /send`` JSON request and answer (dev.smsfactor.com, "Send
SMS > Campaign"), checks the bearer token, and keeps every request it receives."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Scripted:
    """A forced answer: an HTTP status and JSON body, or ``hang_up`` to close the
    connection once the request is read, without any answer."""

    http_status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang_up: bool = False


@dataclass
class SmsFactorState:
    token: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0
    invalid_numbers: set[str] = field(default_factory=set)
    blacklisted_numbers: set[str] = field(default_factory=set)
    script: deque[Scripted] = field(default_factory=deque)
    credits: int = 1000

    def answer(self, request: dict[str, Any]) -> Scripted:
        if self.script:
            return self.script.popleft()
        recipients = request["sms"]["recipients"]["gsm"]
        counts = {"total": len(recipients), "sent": 0, "blacklisted": 0, "duplicated": 0}
        counts.update({"invalid": 0, "npai": 0, "not_allowed": 0, "flood": 0})
        for recipient in recipients:
            number = recipient["value"]
            if number in self.blacklisted_numbers:
                counts["blacklisted"] += 1
            elif number in self.invalid_numbers or not number.isdigit():
                counts["invalid"] += 1
            else:
                counts["sent"] += 1
        self.credits -= counts["sent"]
        body = {
            "status": 1,
            "message": "OK",
            "ticket": str(14672467 + len(self.requests)),
            "cost": counts["sent"],
            "credits": self.credits,
            **counts,
        }
        return Scripted(body=body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.state.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the state, not the log."""

    def _reply(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        if self.path != "/send":
            self._reply(404, {"status": -99, "message": "Not found"}, {})
            return
        if self.headers.get("Authorization") != f"Bearer {state.token}":
            self._reply(401, {"status": -1, "message": "Authentication error"}, {})
            return
        request = json.loads(raw)
        state.requests.append(request)
        answer = state.answer(request)
        if answer.hang_up:
            self.close_connection = True
            return
        self._reply(answer.http_status, answer.body or {}, answer.headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: SmsFactorState


class SmsFactorStandIn:
    def __init__(self, token: str) -> None:
        self.state = SmsFactorState(token=token)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
