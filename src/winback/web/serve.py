"""Running the app with uvicorn: ``winback serve``."""

from __future__ import annotations

import gc
import importlib.util

import uvicorn

from winback.web.app import create_app
from winback.workspace import Workspace


def serve(workspace: Workspace, *, host: str = "127.0.0.1", port: int = 8025) -> None:
    """Serve the workspace's app until SIGTERM or Ctrl-C; the shutdown writes every hit
    still queued. uvloop and httptools are used when installed (they are dependencies:
    the open pixel and the click links are the hot path)."""
    fast = importlib.util.find_spec("uvloop") is not None
    parser = importlib.util.find_spec("httptools") is not None
    app = create_app(workspace)
    # The modules and the app live as long as the process: frozen, they are not walked
    # by the collector's full passes, which otherwise stall every request in flight for
    # tens of milliseconds (about 170,000 objects; see bench/tracking.py).
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
