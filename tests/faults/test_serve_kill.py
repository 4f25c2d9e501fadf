"""Fault campaign: ``winback serve`` killed with SIGKILL under load, at 8, 32 and 128
connections from a client on loopback. Every hit the server acknowledged (a 200 pixel
or a 302 redirect the client read whole) is in the store once the server is started
again, its recorder having replayed the journal; the hit recorder of the killed server
exits, and the forkserver and resource tracker with it (no process of the killed
server's session is left)."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.channels.smtp_server import free_port
from tests.web.conftest import CHROME, recorded_events, tracked_messages
from winback.web.journal import journal_directory
from winback.workspace import Workspace

SENT = datetime(2025, 6, 1, tzinfo=UTC)
# The load's bounds: killed after this many acknowledged hits, or this many seconds.
KILL_AFTER_HITS = 1500
LOAD_SECONDS = 30


def start_server(workspace: Workspace, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "winback",
                "serve",
                "-w",
                str(workspace.path),
                "--port",
                str(port),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a session of its own: its processes can be found
        )


def wait_for(check: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def session_processes(session: int) -> list[str]:
    """The living (not zombie) processes of a session, as their command lines."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, sid = fields[0], int(fields[3])
        if sid == session and state != "Z":
            found.append(command)
    return found


_STATUS = re.compile(rb"HTTP/1\.1 (\d{3})")
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


async def _client(port: int, paths: list[str], start: int, acked: list[int], stop: float) -> None:
    """One keep-alive connection: a request as soon as the last answer is read whole;
    an answer is counted once read whole (a 200 or a 302), never before."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    index = start
    try:
        while time.monotonic() < stop:
            path = paths[index % len(paths)]
            index += 7
            writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nUser-Agent: {CHROME}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(head)
            if length:
                await reader.readexactly(int(length.group(1)))
            status = _STATUS.match(head)
            assert status is not None and status.group(1) in (b"200", b"302"), head
            acked[0] += 1
    except (OSError, asyncio.IncompleteReadError):
        return  # killed: what was not read whole was not acknowledged
    finally:
        writer.close()


def load(port: int, paths: list[str], connections: int, acked: list[int], stop: float) -> None:
    async def main() -> None:
        await asyncio.gather(*(_client(port, paths, n, acked, stop) for n in range(connections)))

    asyncio.run(main())


@pytest.mark.slow
@pytest.mark.parametrize("connections", [8, 32, 128])
def test_sigkill_under_load_loses_no_acknowledged_hit(
    sqlite_workspace: Workspace, connections: int
) -> None:
    workspace = sqlite_workspace
    paths = tracked_messages(workspace, 50, SENT)
    log = workspace.path / "serve.log"
    port = free_port()
    server = start_server(workspace, port, log)
    # One hit, recorded: the hit recorder's process is up and working.
    acked = [0]
    wait_for(lambda: _one(port, paths[0]), 60, "the server to answer")
    wait_for(lambda: recorded_events(workspace) == 1, 60, "the recorder to start")

    stop = time.monotonic() + LOAD_SECONDS
    client = threading.Thread(target=load, args=(port, paths, connections, acked, stop))
    client.start()
    wait_for(lambda: acked[0] >= KILL_AFTER_HITS or not client.is_alive(), 60, "the load")
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)
    client.join(timeout=60)
    acknowledged = 1 + acked[0]
    assert acknowledged > KILL_AFTER_HITS // 2, "the load hardly ran"

    # The recorder records what it can, then exits; the forkserver and resource
    # tracker follow: nothing of the killed server is left.
    wait_for(lambda: not session_processes(server.pid), 30, "the killed server's processes")

    restarted = start_server(workspace, port, log)
    try:
        wait_for(lambda: recorded_events(workspace) >= acknowledged, 120, "the replay")
        killed_journal = f"hits-*-{server.pid}.jsonl"
        wait_for(
            lambda: not any(journal_directory(workspace.path).glob(killed_journal)),
            30,
            "the replayed journal to be deleted",
        )
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=60)
    # Hits in flight at the kill may have been journaled without their answer being
    # read: at most one per connection.
    assert acknowledged <= recorded_events(workspace) <= acknowledged + connections
    assert list(journal_directory(workspace.path).iterdir()) == []
    assert "Traceback" not in log.read_text()


def _one(port: int, path: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nUser-Agent: {CHROME}\r\n\r\n".encode())
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
