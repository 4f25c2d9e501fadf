"""How long the command line takes to answer before it does any work.

Runs each command ``--runs`` times in a fresh process (the way a user or cron starts it)
and prints the median and the slowest wall time beside ``python -c pass``, the floor any
Python command pays. Usage: ``python bench/cli.py [--runs 20]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS: list[tuple[str, list[str]]] = [
    ("python -c pass", [sys.executable, "-c", "pass"]),
    ("winback --version", [sys.executable, "-m", "winback", "--version"]),
    ("winback --help", [sys.executable, "-m", "winback", "--help"]),
    ("winback import --help", [sys.executable, "-m", "winback", "import", "--help"]),
    ("winback score --help", [sys.executable, "-m", "winback", "score", "--help"]),
]


def timed(command: list[str], runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print(f"load average before: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'command':<24} {'median s':>9} {'max s':>7}  target")
    for label, command in COMMANDS:
        seconds = timed(command, args.runs)
        target = "< 0.3" if label in ("winback --version", "winback --help") else ""
        print(f"{label:<24} {statistics.median(seconds):>9.3f} {max(seconds):>7.3f}  {target}")
    print(f"load average after: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
