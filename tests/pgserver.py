"""A throwaway PostgreSQL server for the tests, started from the binaries Debian's
``postgresql`` package installs (``.ci/run`` installs it). The server listens on a free
loopback port and its data lives in a temporary folder; it is stopped at the end.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
``postgres`` user the package creates.

``bench/score.py --start-postgres DIR`` starts its server with this class too, in a folder
of its choice and with the settings of a benchmark (fsync on) instead of the tests' ones."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def find_bindir() -> Path | None:
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The tests' data is thrown away: durability would only slow them down.
TEST_SETTINGS = {"fsync": "off", "full_page_writes": "off"}


class PostgresServer:
    def __init__(
        self, bindir: Path, root: Path | None = None, settings: dict[str, str] | None = None
    ) -> None:
        """A server to be, in ``root`` (a new temporary folder when None; created when
        missing), started with ``settings`` (``-c name=value``; the tests' by default)."""
        self.bindir = bindir
        self.port = free_port()
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="winback-pg-"))
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.settings = TEST_SETTINGS if settings is None else settings
        self.data = self.root / "data"
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> None:
        command = list(args)
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.root)

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "winback",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        )
        settings = " ".join(f"-c {name}={value}" for name, value in self.settings.items())
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} {settings}"
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://winback@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
