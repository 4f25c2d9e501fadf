"""Documentation as tests: every command has help text and appears in the README, and
the README's quick start works."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command

from winback.cli import COMMANDS, app, load_command

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands() -> list[tuple[str, object]]:
    found = []
    top = get_command(app)

    def walk(prefix: str, command: Any, ctx: typer.Context) -> None:
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, f"winback {prefix} {name} cannot be loaded"
                walk(f"{prefix} {name}".strip(), sub, typer.Context(sub, parent=ctx))
        else:
            found.append((prefix, command))

    walk("", top, typer.Context(top))
    return found


@pytest.mark.parametrize(("name", "command"), commands(), ids=[name for name, _ in commands()])
def test_every_command_has_help_and_is_documented(name: str, command: object) -> None:
    assert (getattr(command, "help", None) or "").strip(), f"winback {name} has no help text"
    assert f"winback {name}" in README, f"winback {name} is not in the README"


def test_the_readme_quick_start_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in re.findall(r"^make (\w+)", README, flags=re.MULTILINE):
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), target
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_demo_runs(tmp_path: Path, cli) -> None:
    result = cli.invoke(app, ["demo", str(tmp_path / "demo"), "--contacts", "300"])
    assert result.exit_code == 0, result.output
    assert "Import of events" in result.output
    follow = re.search(r"winback contact show (\S+) -w", result.output)
    assert follow is not None
    shown = cli.invoke(app, ["contact", "show", follow.group(1), "-w", str(tmp_path / "demo")])
    assert shown.exit_code == 0, shown.output


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_command_list_says_what_each_command_says(name: str) -> None:
    """``winback --help`` lists the commands without importing them: its table must say
    what each command's own help says."""
    assert COMMANDS[name][1] == load_command(name).get_short_help_str(limit=1000)


def test_version_and_help_answer(cli) -> None:
    from importlib.metadata import version

    result = cli.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"winback {version('winback')}"
    listed = cli.invoke(app, ["--help"])
    assert listed.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in listed.output
