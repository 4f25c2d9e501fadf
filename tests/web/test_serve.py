"""The real server: ``winback serve`` under uvicorn on a free loopback port, talked to
over HTTP, and stopped with SIGTERM in the middle of a load: every hit it acknowledged
is in the store afterwards. The signal goes to the whole process group, as a service
manager or Ctrl-C sends it: the hit recorder's process gets it too, and must finish its
work all the same."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.channels.smtp_server import free_port
from tests.web.conftest import CHROME, recorded_events, tracked_messages
from winback.workspace import Workspace

SENT = datetime(2025, 6, 1, tzinfo=UTC)


def start_server(workspace: Workspace, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "winback", "serve", "-w", str(workspace.path)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, to signal as a whole
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/o/ready").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
        if process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"winback serve did not start:\n{log.read_text()}")


@pytest.mark.slow
def test_sigterm_mid_load_loses_no_acknowledged_hit(sqlite_workspace: Workspace) -> None:
    workspace = sqlite_workspace
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    urls = [base + path for path in tracked_messages(workspace, 40, SENT)]
    process = start_server(workspace, port, workspace.path / "serve.log")
    # One hit, written: the hit recorder's process is up (it boots while the server
    # already answers), so the signal reaches it mid-work.
    assert httpx.get(urls[0], headers={"User-Agent": CHROME}).status_code == 200
    deadline = time.monotonic() + 60
    while recorded_events(workspace) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert recorded_events(workspace) == 1

    acknowledged = [0] * 8
    stop_at = time.monotonic() + 60  # the loop's bound, whatever happens

    def load(worker: int) -> None:
        with httpx.Client(headers={"User-Agent": CHROME}, timeout=5) as client:
            index = worker
            while time.monotonic() < stop_at:
                try:
                    answer = client.get(urls[index % len(urls)])
                except httpx.TransportError:
                    if process.poll() is not None:
                        return  # the server is gone: nothing more can be acknowledged
                    continue
                assert answer.status_code in (200, 302)
                acknowledged[worker] += 1
                index += len(acknowledged)

    workers = [threading.Thread(target=load, args=(n,)) for n in range(len(acknowledged))]
    for worker in workers:
        worker.start()
    while sum(acknowledged) < 600 and time.monotonic() < stop_at:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal: exit status -SIGTERM.
    assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    for worker in workers:
        worker.join()

    assert "Application shutdown complete" in (workspace.path / "serve.log").read_text()
    assert sum(acknowledged) >= 600
    assert recorded_events(workspace) == 1 + sum(acknowledged)


def test_serve_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "winback", "serve", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
        check=True,
    )
    assert "--host" in result.stdout and "--port" in result.stdout
