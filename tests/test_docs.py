"""Documentation as tests: every command has help text and is in the reference, the
reference pages say what the code says, the tutorial's commands run, and the README's
quick start works."""

from __future__ import annotations

import os
import re
import runpy
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from winback.cli import COMMANDS, app, load_command, walk_commands

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ROOT / "docs"


def commands() -> list[tuple[str, object]]:
    return [(name.removeprefix("winback "), command) for name, command in walk_commands()]


@pytest.mark.parametrize(("name", "command"), commands(), ids=[name for name, _ in commands()])
def test_every_command_has_help_and_is_documented(name: str, command: object) -> None:
    assert (getattr(command, "help", None) or "").strip(), f"winback {name} has no help text"
    reference = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    assert f"## `winback {name}`" in reference, f"winback {name} is not in the reference"


def test_the_readme_quick_start_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in re.findall(r"^make (\w+)", README, flags=re.MULTILINE):
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), target
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_demo_runs(tmp_path: Path, cli: CliRunner) -> None:
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


def test_version_and_help_answer(cli: CliRunner) -> None:
    from importlib.metadata import version

    result = cli.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"winback {version('winback')}"
    listed = cli.invoke(app, ["--help"])
    assert listed.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in listed.output


def test_the_reference_pages_say_what_the_code_says() -> None:
    """docs/reference/ is generated from the code: a new command, option or config key
    without `make docs` fails here."""
    generator = runpy.run_path(str(DOCS / "gen_reference.py"))
    for name, text in generator["pages"]().items():
        committed = (DOCS / name).read_text(encoding="utf-8")
        assert committed == text, f"docs/{name} is stale: run `make docs`"


def test_every_config_key_says_what_it_means() -> None:
    generator = runpy.run_path(str(DOCS / "gen_reference.py"))
    meanings = generator["template_comments"]()
    keys = [key for key, _, _ in generator["config_keys"]()]
    missing = [key for key in keys if not meanings.get(key)]
    assert not missing, f"winback.toml keys with no comment in the template: {missing}"


def tutorial_commands() -> list[list[str]]:
    text = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line:
                words = shlex.split(line)
                assert words[0] == "winback", line
                commands.append(words[1:])
    return commands


def test_the_tutorial_runs(tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command of the tutorial, in order, in a folder with its two files."""
    monkeypatch.delenv("WINBACK_DATABASE_URL", raising=False)
    for name in ("contacts.csv", "events.csv"):
        shutil.copy(DOCS / "tutorial" / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    outputs = {}
    for words in tutorial_commands():
        result = cli.invoke(app, words)
        assert result.exit_code == 0, f"winback {' '.join(words)}: {result.output}"
        outputs[" ".join(words[:2])] = result.output
    assert "dormant" in outputs["status -w"]
    assert "reactivations" in outputs["simulate winback"]
    assert "miss-you" in outputs["journey show"]
    assert list((tmp_path / "shop" / "outbox-files").rglob("*.eml"))


@pytest.mark.slow
def test_the_site_builds_with_every_link_resolved(tmp_path: Path) -> None:
    """`mkdocs build --strict`: a broken link or a page missing from the nav fails."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tutorial" / "index.html").exists() or (tmp_path / "tutorial.html").exists()
