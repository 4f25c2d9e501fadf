"""Documentation as tests: every command has help text and appears in the README, and
the README's quick start works."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.main import get_command

from winback.cli import app

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands() -> list[tuple[str, object]]:
    found = []

    def walk(prefix: str, command: object) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(f"{prefix} {name}".strip(), sub)
        else:
            found.append((prefix, command))

    walk("", get_command(app))
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
