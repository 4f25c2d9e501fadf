"""Running the app with uvicorn: ``winback serve``."""

from __future__ import annotations

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
