"""How long the command line takes to answer before it does any work.

Runs each command ``--runs`` times in a fresh process (the way a user or cron starts it)
and prints the median and the slowest wall time, and the median CPU time (user + system,
what a busy machine does not inflate), beside ``python -c pass``, the floor any Python
command pays: ``--version``, ``--help``, the ``--help`` of every command and
subcommand (from :func:`winback.cli.walk_commands`), and ``winback init`` in a new
temporary folder each run (it writes a config and creates the database). The target of
issue 18 is under 0.3 s for every line but ``init``. Usage: ``python bench/cli.py [--runs
20] [--only journey]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import winback
from winback.cli import walk_commands

WINBACK = [sys.executable, "-m", "winback"]
# The runs happen in scratch folders: they must import the winback this script imported.
ENV = {**os.environ, "PYTHONPATH": str(Path(winback.__file__).parents[1])}
TARGET = 0.3


def commands() -> list[tuple[str, Callable[[Path], list[str]]]]:
    """(label, the command line in a given scratch folder) of every line of the table."""
    fixed = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("winback --version", [*WINBACK, "--version"]),
        ("winback --help", [*WINBACK, "--help"]),
    ]
    helps = [
        (f"{name} --help", [*WINBACK, *name.split()[1:], "--help"]) for name, _ in walk_commands()
    ]
    lines: list[tuple[str, Callable[[Path], list[str]]]] = [
        (label, lambda _, argv=argv: argv) for label, argv in fixed + helps
    ]
    lines.append(("winback init DIR", lambda scratch: [*WINBACK, "init", str(scratch / "ws")]))
    return lines


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: Callable[[Path], list[str]], runs: int) -> tuple[list[float], list[float]]:
    """The wall and CPU seconds of each run."""
    wall, cpu = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as scratch:
            argv = command(Path(scratch))
            start, used = time.perf_counter(), _children_cpu()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=scratch, env=ENV)
            wall.append(time.perf_counter() - start)
            cpu.append(_children_cpu() - used)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--only", help="Only the lines whose label holds this text.")
    args = parser.parse_args()
    print(f"load average before: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| command | median s | max s | CPU s | target |")
    print("| --- | --- | --- | --- | --- |")
    over = 0
    for label, command in commands():
        if args.only and args.only not in label and label != "python -c pass":
            continue
        seconds, cpu = timed(command, args.runs)
        median = statistics.median(seconds)
        aimed = label.startswith("winback") and label != "winback init DIR"
        over += aimed and median >= TARGET
        target = f"< {TARGET}" if aimed else ""
        print(
            f"| `{label}` | {median:.3f} | {max(seconds):.3f} | {statistics.median(cpu):.3f} "
            f"| {target} |"
        )
    print(f"load average after: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{over} lines over the target")


if __name__ == "__main__":
    main()
