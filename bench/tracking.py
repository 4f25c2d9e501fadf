"""Tracking server benchmark (issue 5): opens and clicks against ``winback serve`` on
loopback, 30 seconds per run, with two load generators at 8 and at 32 connections.

    .venv/bin/python bench/tracking.py                          # 4 runs of 30 s
    .venv/bin/python bench/tracking.py --seconds 10 --connections 8 --clients wrk

1. A fresh SQLite workspace gets ``--messages`` sent messages (one contact each) in the
   outbox, and their signed open-pixel and click links (three opens for one click).
2. ``winback serve`` starts in its own process (uvicorn, uvloop and httptools), a new
   one for every run. Its hit journal is on, as always: each hit is answered once it is
   fsynced (``fdatasync``) to the journal, in groups (``winback.web.journal``), so a
   connection waits one sync per request and the rate of a few connections is bound
   by the disk's sync time (about 6 ms on the reference machine: some 1,300 requests/s
   at 8 connections, whatever the CPU).
3. A load generator keeps ``--connections`` keep-alive connections busy for
   ``--seconds``, each sending the next request as soon as the last answer came:
   - ``asyncio``: a small HTTP/1.1 client on asyncio streams in another process (httpx
     spends more CPU per request than the server does, so on two cores it would measure
     itself). It stops sending at the deadline and waits for the answers in flight, so
     "sent" is exact.
   - ``wrk`` (Debian's wrk 4.1, when installed), with a Lua script that picks the same
     paths. It stops at its deadline without reading the answers in flight, so
     "recorded" may exceed its count by up to the number of connections.
4. The server is stopped with SIGTERM (it writes what is queued), and the events in the
   store are counted against the hits the server acknowledged.

Latency percentiles are those wrk prints: wrk corrects for coordinated omission (a
client that waits for each answer sends nothing during a stall, so the stall hides in
one slow sample per connection; wrk adds the samples a steady sender would have seen,
``latency - k * interval``). The asyncio client's percentiles get the same correction so
both rows compare, and its uncorrected p99 is shown beside them: a large gap between the
two means the server stalls now and then (garbage collection, a writer holding the GIL).

Why 8 and 32 connections: mail clients fetch the pixel and follow links on short
connections of their own, each independent of the others, so what the server sees at
once is the arrival rate times the answer time (Little's law): at the 2,000 hits/s of
the target and a few milliseconds an answer, under 10 requests in flight, hence 8.
Behind a reverse proxy, the proxy's keep-alive pool to the server is what it sees, some
tens of connections at a burst after a large send, hence 32. Both run flat out (each
connection sends again as soon as answered), several times the target rate: a stress
test, not a replay of a real day.

The server and the generators share the machine's two cores: the figures are a floor.
Prints one table of every run against the targets (>= 2,000 requests/s, p99 < 50 ms,
recorded = sent), with the load average before and after each run, and the disk's
fdatasync time (the floor of every hit's answer).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import func, insert, select

from winback.clock import to_db
from winback.links import Links
from winback.store.schema import contacts, events, outbox
from winback.workspace import Workspace

OUT = Path(__file__).parent / "out" / "tracking"
SENT = datetime(2026, 11, 2, 9, tzinfo=UTC)
AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
console = Console(width=130)


def build(path: Path, messages: int) -> tuple[Workspace, list[str]]:
    """A workspace with ``messages`` sent emails, and the paths of their tracked links."""
    shutil.rmtree(path, ignore_errors=True)
    workspace = Workspace.init(path, "ecommerce")
    links = Links.of(workspace)
    created = to_db(SENT)
    paths = []
    with workspace.engine.begin() as connection:
        connection.execute(
            insert(contacts),
            [
                {
                    "id": n + 1,
                    "email": f"person{n}@example.com",
                    "email_status": "subscribed",
                    "created_at": created,
                    "updated_at": created,
                }
                for n in range(messages)
            ],
        )
        rows = []
        for n in range(messages):
            message_id = f"<bench.{n}@news.example.com>"
            rows.append(
                {
                    "idempotency_key": f"bench:{n}",
                    "contact_id": n + 1,
                    "journey": "bench",
                    "step_id": "one",
                    "channel": "email",
                    "status": "sent",
                    "message_id": message_id,
                    "created_at": created,
                    "due_at": created,
                    "sent_at": created,
                }
            )
            opened = links.open_url(message_id).removeprefix(links.base)
            clicked = links.click_url(message_id, f"https://shop.example.com/p/{n}")
            paths += [opened, opened, opened, clicked.removeprefix(links.base)]
        connection.execute(insert(outbox), rows)
    return workspace, paths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(workspace: Workspace, port: int, warm_up: str) -> subprocess.Popen[bytes]:
    """``winback serve`` on ``port``, once it has recorded one hit (``warm_up``): its
    hit recorder, a process of its own, is then running and the load measures only the
    serving. The warm-up hit is the one event in the store before the load."""
    log = (workspace.path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "winback", "serve", "-w", str(workspace.path), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    asked = False
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if not asked:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(f"GET {warm_up} HTTP/1.0\r\n\r\n".encode())
                    sock.recv(1024)
                asked = True
            if recorded(workspace) == 1:
                return process
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"winback serve did not start: see {workspace.path / 'serve.log'}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)


def recorded(workspace: Workspace) -> int:
    with workspace.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(events)).scalar_one())


# -- the load generator (runs in its own process) ---------------------------------------

_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


async def _connection(
    port: int, paths: list[str], deadline: float, latencies: list[float], counts: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    pick = random.Random(len(latencies))
    try:
        while time.perf_counter() < deadline:
            path = paths[pick.randrange(len(paths))]
            started = time.perf_counter()
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {AGENT}\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(head)
            if length and int(length.group(1)):
                await reader.readexactly(int(length.group(1)))
            latencies.append(time.perf_counter() - started)
            status = int(head[9:12])
            counts[status] = counts.get(status, 0) + 1
    finally:
        writer.close()


def _generate(port: int, paths: list[str], seconds: float, connections: int, out: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    latencies: list[float] = []
    counts: dict[int, int] = {}

    async def main() -> float:
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(_connection(port, paths, deadline, latencies, counts) for _ in range(connections))
        )
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    out.put({"latencies": latencies, "counts": counts, "elapsed": elapsed})


def generate(port: int, paths: list[str], seconds: float, connections: int) -> dict[str, Any]:
    results: Any = multiprocessing.Queue()
    process = multiprocessing.Process(
        target=_generate, args=(port, paths, seconds, connections, results)
    )
    process.start()
    found = results.get(timeout=seconds + 120)
    process.join()
    return dict(found)


def sync_latency(directory: Path, syncs: int = 200) -> tuple[float, float]:
    """The disk's p50 and p99 time to append a group of hits and ``fdatasync`` it, in
    ms: what every hit waits for at least, since the journal syncs before the answer."""
    path = directory / "sync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    times = []
    try:
        for _ in range(syncs):
            started = time.perf_counter()
            os.write(fd, b"x" * 4096)
            os.fdatasync(fd)
            times.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    return percentile(times, 0.5) * 1000, percentile(times, 0.99) * 1000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def corrected(latencies: list[float], elapsed: float, connections: int) -> list[float]:
    """The latencies with wrk's correction for coordinated omission (its
    ``stats_correct``): a sample of at least twice the interval between two requests of
    one connection stands for the requests that connection did not send meanwhile,
    ``latency - k * interval`` for k = 1, 2, ... while that exceeds the interval."""
    interval = elapsed / (len(latencies) // connections)
    added = []
    for latency in latencies:
        if latency >= 2 * interval:
            missed = latency - interval
            while missed > interval:
                added.append(missed)
                missed -= interval
    return latencies + added


def run_asyncio(port: int, paths: list[str], seconds: float, connections: int) -> dict[str, Any]:
    """One run of the asyncio client; its percentiles corrected as wrk's are."""
    result = generate(port, paths, seconds, connections)
    latencies = result["latencies"]
    seen = corrected(latencies, result["elapsed"], connections)
    return {
        "sent": len(latencies),
        "acknowledged": sum(n for status, n in result["counts"].items() if status in (200, 302)),
        "rate": len(latencies) / result["elapsed"],
        "p50": percentile(seen, 0.50) * 1000,
        "p99": percentile(seen, 0.99) * 1000,
        "p99 uncorrected": percentile(latencies, 0.99) * 1000,
    }


def run_wrk(port: int, paths: list[str], seconds: float, connections: int) -> dict[str, Any]:
    """One run of wrk with a Lua script that picks the same paths at random."""
    listing = OUT / "paths.txt"
    listing.write_text("\n".join(paths) + "\n", encoding="ascii")
    script = OUT / "mix.lua"
    script.write_text(
        f"""
local paths = {{}}
for line in io.lines("{listing}") do paths[#paths + 1] = line end
wrk.headers["User-Agent"] = "{AGENT}"
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
""",
        encoding="ascii",
    )
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    def number(pattern: str) -> float:
        found = re.search(pattern, output)
        return float(found.group(1)) if found else 0.0

    def millis(label: str) -> float:
        found = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", output)
        if not found:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
        return float(found.group(1)) * scale

    sent = int(number(r"(\d+) requests in"))
    return {
        "sent": sent,
        "acknowledged": sent - int(number(r"Non-2xx or 3xx responses: (\d+)")),
        "rate": number(r"Requests/sec:\s+([\d.]+)"),
        "p50": millis("50"),
        "p99": millis("99"),
    }


CLIENTS = {"asyncio": run_asyncio, "wrk": run_wrk}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--connections", default="8,32", help="comma-separated: one run per count and client"
    )
    parser.add_argument("--clients", default="asyncio,wrk", help="asyncio, wrk or both")
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    counts = [int(count) for count in args.connections.split(",")]
    clients = [name.strip() for name in args.clients.split(",")]
    if unknown := set(clients) - set(CLIENTS):
        raise SystemExit(f"unknown client {', '.join(sorted(unknown))}: use asyncio or wrk")
    if "wrk" in clients and shutil.which("wrk") is None:
        console.print("wrk is not installed (apt-get install wrk): its runs are skipped")
        clients.remove("wrk")

    OUT.mkdir(parents=True, exist_ok=True)
    table = Table(title=f"winback serve, {args.seconds:.0f} s per run, {args.messages:,} messages")
    for column in ("client", "connections", "requests/s", "p50 ms", "p99 ms",
                   "p99 ms uncorrected", "sent", "acknowledged", "recorded",
                   "load avg (1 min)"):  # fmt: skip
        table.add_column(column, justify="right")
    runs = [(count, client) for count in counts for client in clients]
    with Progress(console=console) as progress:
        task = progress.add_task("runs", total=len(runs))
        for count, client in runs:
            progress.update(task, description=f"{client}, {count} connections")
            workspace, paths = build(OUT / "workspace", args.messages)
            port = free_port()
            server = start_server(workspace, port, paths[0])
            load_before = os.getloadavg()
            found = CLIENTS[client](port, paths, args.seconds, count)
            load_after = os.getloadavg()
            stop_server(server)
            uncorrected = found.get("p99 uncorrected")
            table.add_row(
                client,
                str(count),
                f"{found['rate']:,.0f}",
                f"{found['p50']:.1f}",
                f"{found['p99']:.1f}",
                "" if uncorrected is None else f"{uncorrected:.1f}",
                f"{found['sent']:,}",
                f"{found['acknowledged']:,}",
                f"{recorded(workspace) - 1:,}",  # the warm-up hit is not counted
                f"{load_before[0]:.2f} → {load_after[0]:.2f}",
            )
            progress.advance(task)
    console.print(table)
    p50, p99 = sync_latency(OUT)
    console.print(f"the disk's fdatasync of a 4 KiB append: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    console.print(
        "targets: >= 2,000 requests/s, p99 < 50 ms, recorded = acknowledged (wrk: up to "
        "the connection count more, the answers it left unread at its deadline).\n"
        "Percentiles with wrk's correction for coordinated omission (see the docstring)."
    )


if __name__ == "__main__":
    main()
