"""One path writes events: :func:`winback.events.record_events` (and its bulk form),
which stores them and then applies the refusals among them. No other module of the
library inserts into ``events`` by itself, so no writer can store an unsubscribe and
forget to act on it."""

from __future__ import annotations

import re
from pathlib import Path

import winback

SOURCE = Path(winback.__file__).parent
# The store spells the insert; winback.events is the one caller allowed to use it.
ALLOWED = {SOURCE / "events.py", SOURCE / "store" / "contacts.py"}
WRITES = re.compile(r"\binsert_events\(|\binsert_event_rows\(|\binsert\(events(_table)?\b")


def test_only_the_event_writer_inserts_events() -> None:
    writers = sorted(
        f"{path.relative_to(SOURCE)}:{number}: {line.strip()}"
        for path in SOURCE.rglob("*.py")
        if path not in ALLOWED and "migrations" not in path.parts
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if WRITES.search(line)
    )
    assert writers == []
