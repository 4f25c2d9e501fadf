"""A workspace: a folder with ``winback.toml``, a secret, the SQLite database (unless
``WINBACK_DATABASE_URL`` points elsewhere), the quarantine and the user's templates.

Every command opens one with :func:`Workspace.open`; tests and scripts do the same.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from winback.errors import WorkspaceError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from winback.config import Config
    from winback.domain import Profile

# The config (pydantic) and the store (SQLAlchemy) are imported when a workspace is
# opened, not with this module: the command line names ENV_WORKSPACE in every command's
# options, and its --help should not pay for them.

DATABASE_FILE = "winback.db"
SECRET_FILE = "secret.key"
ENV_WORKSPACE = "WINBACK_WORKSPACE"
ENV_DATABASE_URL = "WINBACK_DATABASE_URL"
# The files SQLite keeps beside a database while it is open or after a crash.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def default_workspace_dir() -> Path:
    """``WINBACK_WORKSPACE`` when set, else the current directory."""
    return Path(os.environ.get(ENV_WORKSPACE) or ".")


@dataclass
class Workspace:
    path: Path
    config: Config
    database_url: str
    secret: bytes = field(repr=False)

    @classmethod
    def init(cls, path: Path, profile: Profile = "ecommerce", *, force: bool = False) -> Workspace:
        """Create ``path/winback.toml`` for ``profile``, a secret, and the database."""
        from winback.config import CONFIG_FILE, render_config
        from winback.store import migrate

        path.mkdir(parents=True, exist_ok=True)
        config_file = path / CONFIG_FILE
        if config_file.exists() and not force:
            raise WorkspaceError(
                f"{config_file} already exists: this folder is a workspace already "
                "(pass --force to overwrite its winback.toml)"
            )
        config_file.write_text(render_config(profile, path.resolve().name), encoding="utf-8")
        secret_file = path / SECRET_FILE
        if not secret_file.exists():
            secret_file.write_text(secrets.token_hex(32) + "\n", encoding="ascii")
            secret_file.chmod(0o600)
        workspace = cls.open(path, check=False)
        migrate(workspace.engine)
        return workspace

    @classmethod
    def open(cls, path: Path | None = None, *, check: bool = True) -> Workspace:
        """Open an existing workspace; ``check`` verifies the database schema is current."""
        from winback.config import CONFIG_FILE, load_config
        from winback.store import check_schema

        path = path if path is not None else default_workspace_dir()
        config_file = path / CONFIG_FILE
        if not config_file.exists():
            raise WorkspaceError(
                f"{path.resolve()} is not a winback workspace (no {CONFIG_FILE}): run "
                f"`winback init {path}` first, or pass -w/--workspace DIR or set {ENV_WORKSPACE}"
            )
        config = load_config(config_file)
        secret_file = path / SECRET_FILE
        try:
            secret = bytes.fromhex(secret_file.read_text(encoding="ascii").strip())
        except (FileNotFoundError, ValueError):
            raise WorkspaceError(
                f"{secret_file} is missing or damaged: it keys the suppression hashes and "
                "signed links; restore it from a backup (a new one would orphan them)"
            ) from None
        url = os.environ.get(ENV_DATABASE_URL) or f"sqlite:///{(path / DATABASE_FILE).resolve()}"
        workspace = cls(path=path, config=config, database_url=url, secret=secret)
        if check:
            check_schema(workspace.engine)
        return workspace

    @cached_property
    def engine(self) -> Engine:
        from winback.store import open_engine

        return open_engine(self.database_url)

    def own_files(self) -> list[Path]:
        """The files no output may overwrite: the config, the secret and, on SQLite, the
        database with its write-ahead log, shared memory and rollback journal."""
        from sqlalchemy import make_url

        from winback.config import CONFIG_FILE
        from winback.store.engine import normalise_url

        files = [self.path / CONFIG_FILE, self.path / SECRET_FILE]
        url = make_url(normalise_url(self.database_url))
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            database = Path(url.database)
            files += [database, *(Path(f"{database}{end}") for end in SQLITE_SIDE_FILES)]
        return files

    @property
    def quarantine_dir(self) -> Path:
        return self.path / "quarantine"

    @property
    def templates_dir(self) -> Path:
        return self.path / "templates"

    @property
    def journeys_dir(self) -> Path:
        return self.path / "journeys"

    def keyed_hash(self, value: str) -> str:
        """HMAC-SHA256 of a normalised address with the workspace secret, hex: how an
        address is remembered once the person's data is gone.

        HMAC (RFC 2104) spelled out over two keyed SHA-256 states computed once: copying
        hashlib states costs less than half of copying an ``hmac.HMAC``, and enrolment
        hashes every address of its audience (a million on a large base)."""
        inner_keyed, outer_keyed = self._keyed
        inner = inner_keyed.copy()
        inner.update(value.encode("utf-8"))
        outer = outer_keyed.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    @cached_property
    def _keyed(self) -> tuple[hashlib._Hash, hashlib._Hash]:
        block = hashlib.sha256().block_size
        key = self.secret if len(self.secret) <= block else hashlib.sha256(self.secret).digest()
        key = key.ljust(block, b"\0")
        inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in key))
        outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in key))
        return inner, outer

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
