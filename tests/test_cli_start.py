"""What keeps the command line quick to answer: ``--help`` of every command and
``--version`` build the Typer app without importing the library's heavy dependencies
(their import is what took seconds; ``bench/cli.py`` measures the time itself)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from winback.cli import walk_commands

HEAVY = ("sqlalchemy", "alembic", "pandas", "pyarrow", "numpy", "scipy", "duckdb", "fastapi")

# Runs each command line in turn in one fresh interpreter, and after each one names the
# heavy modules that were imported by then: the first line that names one is the culprit.
PROBE = """
import contextlib, io, json, sys
from winback.cli import app
heavy, found = json.loads(sys.argv[1]), {}
for argv in json.loads(sys.argv[2]):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            app(argv, prog_name="winback")
        except SystemExit:
            pass
    found[" ".join(argv)] = [name for name in heavy if name in sys.modules]
print(json.dumps(found))
"""


def test_help_of_every_command_imports_no_heavy_library() -> None:
    lines = [["--version"], ["--help"]]
    for name, _ in walk_commands():
        words = name.split()[1:]
        lines += [[*words[:1], "--help"], [*words, "--help"]]
    src = str(Path(__file__).parent.parent / "src")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY), json.dumps(lines)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
    )
    found = json.loads(done.stdout)
    assert len(found) == len({" ".join(line) for line in lines})
    first = next(((line, names) for line, names in found.items() if names), None)
    assert first is None, f"`winback {first[0]}` imports {', '.join(first[1])}"
