"""A user creates a workspace, edits its file, and gets clear errors when it is wrong."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from typer.testing import CliRunner

from winback.cli import app
from winback.config import PROFILES, load_config
from winback.errors import ConfigError, WorkspaceError
from winback.store import metadata
from winback.workspace import Workspace


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_init_writes_the_profile_policy(tmp_path: Path, profile: str, cli: CliRunner) -> None:
    result = cli.invoke(app, ["init", str(tmp_path / "ws"), "--profile", profile])
    assert result.exit_code == 0, result.output
    config = load_config(tmp_path / "ws" / "winback.toml")
    expected = PROFILES[profile]
    assert config.policy.profile == profile
    assert config.policy.dormant_after == expected["dormant_after"]
    assert [str(kind) for kind in config.policy.customer_activity] == expected["customer_activity"]
    assert config.policy.protect_subscribers == expected["protect_subscribers"]
    assert (tmp_path / "ws" / "winback.db").exists()


def test_the_file_overrides_the_profile(tmp_path: Path) -> None:
    Workspace.init(tmp_path, "travel")
    path = tmp_path / "winback.toml"
    path.write_text(path.read_text().replace("dormant_after = 365", "dormant_after = 400"))
    config = load_config(path)
    assert config.policy.dormant_after == 400
    assert config.policy.lost_after == 730


def test_a_misspelt_key_is_named_with_the_file(tmp_path: Path) -> None:
    Workspace.init(tmp_path)
    path = tmp_path / "winback.toml"
    path.write_text(path.read_text().replace("dormant_after =", "dormant_aftr ="))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert f"{path}: policy.dormant_aftr: unknown key" in str(error.value)


def test_a_bad_value_is_named_with_the_file(tmp_path: Path) -> None:
    Workspace.init(tmp_path)
    path = tmp_path / "winback.toml"
    path.write_text(path.read_text().replace('timezone = "UTC"', 'timezone = "Mars/Olympus"'))
    with pytest.raises(ConfigError, match=r"workspace\.timezone: unknown time zone 'Mars/Olympus'"):
        load_config(path)


def test_thresholds_must_grow(tmp_path: Path) -> None:
    Workspace.init(tmp_path)
    path = tmp_path / "winback.toml"
    path.write_text(path.read_text().replace("lost_after = 365", "lost_after = 100"))
    with pytest.raises(ConfigError, match="at_risk_after < dormant_after < lost_after"):
        load_config(path)


def test_a_toml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    Workspace.init(tmp_path)
    path = tmp_path / "winback.toml"
    path.write_text(path.read_text() + "\n[policy\n")
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line"):
        load_config(path)


def test_a_folder_that_is_not_a_workspace(tmp_path: Path, cli: CliRunner) -> None:
    with pytest.raises(WorkspaceError, match="winback init"):
        Workspace.open(tmp_path)
    result = cli.invoke(app, ["import", "contacts", "x.csv", "-w", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not a winback workspace" in result.output


def test_init_refuses_to_overwrite(tmp_path: Path, cli: CliRunner) -> None:
    assert cli.invoke(app, ["init", str(tmp_path)]).exit_code == 0
    result = cli.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 2
    assert "already exists" in result.output


def test_migrations_build_the_schema_the_code_declares(workspace: Workspace) -> None:
    with workspace.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    tables = set(inspect(workspace.engine).get_table_names())
    assert set(metadata.tables) <= tables


@pytest.mark.parametrize("secret", [bytes(range(32)), b"k" * 64, b"long secret " * 10])
def test_keyed_hash_is_hmac_sha256_of_the_address(tmp_path: Path, secret: bytes) -> None:
    # Suppression hashes stored by earlier versions (hmac.new) must still match.
    workspace = Workspace.init(tmp_path / "ws", "ecommerce")
    keyed = Workspace(
        path=workspace.path,
        config=workspace.config,
        database_url=workspace.database_url,
        secret=secret,
    )
    for address in ["person@example.com", "+33612345678", "élodie@exemple.fr", ""]:
        expected = hmac.new(secret, address.encode("utf-8"), hashlib.sha256).hexdigest()
        assert keyed.keyed_hash(address) == expected
