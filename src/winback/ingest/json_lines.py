"""One line of a JSON Lines file, read safely: an object, or the reason it is none (not
JSON, not an object, an integer longer than Python converts, nesting deeper than any
field needs). Such a row is quarantined with its reason, never a traceback."""

from __future__ import annotations

import json
from typing import Any

# A JSON Lines value nested deeper than this is refused: no contact or event field
# needs it, and deeper values overflow the recursion of what stores them.
MAX_JSON_DEPTH = 32


def json_object(line: str) -> dict[str, Any] | Unreadable:
    """One line of JSON Lines as an object, or the reason it is none."""
    nested = line.count("{") + line.count("[") > MAX_JSON_DEPTH
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return Unreadable(f"not valid JSON: {exc.msg}")
    except ValueError as exc:  # an integer of more digits than Python converts
        return Unreadable(f"not valid JSON: {exc}")
    except RecursionError:
        return Unreadable(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(record, dict):
        return Unreadable("not a JSON object")
    if nested and deeper_than(record, MAX_JSON_DEPTH):
        return Unreadable(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return record


def deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and objects more than ``limit`` levels deep."""
    level = [value]
    for _ in range(limit):
        level = [
            item
            for container in level
            for item in (container.values() if isinstance(container, dict) else container)
            if isinstance(item, dict | list)
        ]
        if not level:
            return False
    return True


class Unreadable(str):
    """A row that could not be parsed at all; the importers quarantine it with this text."""


def unreadable_reason(values: list[Any]) -> str | None:
    """The reason a row from :func:`open_source` could not be parsed, if it could not."""
    if len(values) == 1 and isinstance(values[0], Unreadable):
        return str(values[0])
    return None
