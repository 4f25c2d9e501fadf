"""Running the app with uvicorn: ``winback serve``."""

from __future__ import annotations

import gc
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
    # Hits are recorded in a process of their own (winback.web.writer), but threads
    # remain: the recorder queue's feeder (it pickles each batch), the jobs' thread, the
    # pool that reads for the pages. By default one of them keeps the GIL for up to 5 ms
    # while requests wait (longer when the OS preempts it on a busy machine); handing it
    # over every 0.5 ms gave a lower p99 in six A/B runs of six (bench/tracking.py, wrk).
    sys.setswitchinterval(SWITCH_INTERVAL)
    fast = importlib.util.find_spec("uvloop") is not None
    parser = importlib.util.find_spec("httptools") is not None
    app = create_app(workspace)
    # The modules and the app live as long as the process: frozen, their 170,000 objects
    # are not walked by the collector's full passes, each of which otherwise stalled
    # every request in flight (0.1 to 0.7 s under wrk on a busy two-core machine).
    gc.freeze()
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop" if fast else "asyncio",
        http="httptools" if parser else "h11",
        access_log=False,
        log_level="info",
        server_header=False,
    )
