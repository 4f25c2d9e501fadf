"""Running the app with uvicorn: ``winback serve``."""

from __future__ import annotations

import importlib.util
import sys

import uvicorn

from winback.web.app import create_app
from winback.workspace import Workspace

SWITCH_INTERVAL = 0.0005


def serve(workspace: Workspace, *, host: str = "127.0.0.1", port: int = 8025) -> None:
    """Serve the workspace's app until SIGTERM or Ctrl-C; the shutdown writes every hit
    still queued. uvloop and httptools are used when installed (they are dependencies:
    the open pixel and the click links are the hot path)."""
    # The writer thread is busy in Python between its database calls; by default it would
    # keep the GIL for up to 5 ms at a time while requests wait. Handing it over every
    # 0.5 ms keeps the event loop's latency low at the same throughput.
    sys.setswitchinterval(SWITCH_INTERVAL)
    fast = importlib.util.find_spec("uvloop") is not None
    parser = importlib.util.find_spec("httptools") is not None
    uvicorn.run(
        create_app(workspace),
        host=host,
        port=port,
        loop="uvloop" if fast else "asyncio",
        http="httptools" if parser else "h11",
        access_log=False,
        log_level="info",
        server_header=False,
    )
