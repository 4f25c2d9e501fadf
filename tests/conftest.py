"""Fixtures shared by the suites: workspaces on SQLite and PostgreSQL, the CLI, and a
real SMTP server on loopback."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from tests.channels.smtp_server import CountingController, RecordingHandler
from tests.pgserver import PostgresServer, find_bindir
from winback.channels import ENV_SMTP_URL
from winback.workspace import ENV_DATABASE_URL, Workspace

_database_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session; skipped locally when the binaries are
    missing, failed under ``WINBACK_REQUIRE_PG=1`` (as CI sets it)."""
    bindir = find_bindir()
    if bindir is None:
        message = "PostgreSQL binaries not found (apt-get install postgresql)"
        if os.environ.get("WINBACK_REQUIRE_PG") == "1":
            pytest.fail(message + " and WINBACK_REQUIRE_PG=1")
        pytest.skip(message)
    server = PostgresServer(bindir)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server."""
    name = f"winback_test_{os.getpid()}_{next(_database_numbers)}"
    admin = create_engine(pg_server.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield pg_server.url(name)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def backend(request: pytest.FixtureRequest) -> str:
    """Run a test once on each database engine."""
    return str(request.param)


@pytest.fixture
def workspace(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    """A new ecommerce workspace in a temporary folder, on the engine of ``backend``."""
    monkeypatch.delenv(ENV_DATABASE_URL, raising=False)
    if backend == "postgresql":
        monkeypatch.setenv(ENV_DATABASE_URL, request.getfixturevalue("pg_url"))
    ws = Workspace.init(tmp_path / "ws", "ecommerce")
    yield ws
    ws.close()


@pytest.fixture
def sqlite_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A new ecommerce workspace on SQLite only, for tests about one engine's behaviour."""
    monkeypatch.delenv(ENV_DATABASE_URL, raising=False)
    ws = Workspace.init(tmp_path / "ws", "ecommerce")
    yield ws
    ws.close()


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingHandler]:
    """A real SMTP server on loopback, which the workspace's email channel points at."""
    handler = RecordingHandler()
    controller = CountingController(handler)
    controller.start()
    monkeypatch.setenv(ENV_SMTP_URL, f"smtp://127.0.0.1:{controller.port}")
    yield handler
    controller.stop()
