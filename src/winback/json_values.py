"""JSON, made in one place: a stored value as JSON carries it, and a document as text.

- :func:`json_value`: a value read from the store, as the exports and ``--json`` give it:
  a stored time (naive UTC) as ISO 8601 in UTC, a date as ``YYYY-MM-DD``, bytes (a
  dedup key, a hash) in base64; any other value as it is.
- :func:`json_record`: an operation's result (a dataclass) as a JSON object, its fields
  in order, each by :func:`json_value`: what its ``as_dict()`` gives ``--json``.
- :func:`json_document`: data as an indented JSON document, non-ASCII kept as written,
  and a value JSON has no form for (a path, an aware time) by its ``str``.

>>> from datetime import datetime
>>> json_value(datetime(2026, 3, 1, 9, 30)), json_value(b"\\x00\\xff")
('2026-03-01T09:30:00+00:00', 'AP8=')
>>> print(json_document({"city": "Orléans", "n": 2}))
{
  "city": "Orléans",
  "n": 2
}
"""

from __future__ import annotations

import base64
import json
from dataclasses import fields
from datetime import date, datetime
from typing import Any

from winback.clock import from_db


def json_value(value: Any) -> Any:
    """``value``, read from the store, as a JSON document carries it."""
    if isinstance(value, datetime):
        return from_db(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def json_record(record: Any) -> dict[str, Any]:
    """A dataclass instance as a JSON object: each field, in order, by :func:`json_value`
    (a tuple becomes a list, a mapping an object)."""
    return {item.name: _json_field(getattr(record, item.name)) for item in fields(record)}


def _json_field(value: Any) -> Any:
    if isinstance(value, tuple):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        return dict(value)
    return json_value(value)


def json_document(data: Any) -> str:
    """``data`` as an indented JSON document, for a file or standard output."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)
