"""Named segments: saved expressions over the scored base, counted and exported.

A segment is one expression of the segment language
(:mod:`winback.scoring.segment_language`), stored as text in ``segments.expression``::

    stage in (dormant, at_risk) and (p_alive < 0.3 or days_inactive > 365)
    and not tags contains "vip" and last_purchase_at < 180 days ago and country = "FR"

It is evaluated at a moment (``now``), because inactivity, ages and relative dates move
with time; :mod:`winback.scoring.segment_sql` compiles it to SQLAlchemy, values bound as
parameters. Segments saved as JSON filters before the language still load.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, TextIO

from sqlalchemy import Connection, Select, delete, func, insert, select, update

from winback.clock import from_db, to_db
from winback.errors import NotFoundError
from winback.safe_output import csv_writer
from winback.scoring.segment_conditions import (
    EVERYONE,
    Expression,
    SegmentError,
    conjunction,
    field_spec,
    render,
)
from winback.scoring.segment_language import from_filters, parse_conditions, parse_expression
from winback.scoring.segment_sql import SegmentCompiler
from winback.store.schema import contact_scores, contacts, segments


def segment_query(expression: Expression, now: datetime, timezone: str) -> Select[Any]:
    """The contacts (``contacts.id`` as ``contact_id``) matching ``expression`` at
    ``now``: scored, not erased. Journeys narrow their audience with it."""
    compiler = SegmentCompiler(now, timezone)
    return _matching(compiler, expression, [contacts.c.id.label("contact_id")])


def _matching(
    compiler: SegmentCompiler, expression: Expression, columns: Sequence[Any]
) -> Select[Any]:
    return (
        select(*columns)
        .select_from(contacts.join(contact_scores, contact_scores.c.contact_id == contacts.c.id))
        .where(contacts.c.erased_at.is_(None), compiler.condition(expression))
    )


def save_segment(
    connection: Connection,
    name: str,
    expression: Expression,
    now: datetime,
    *,
    replace: bool = False,
) -> str:
    """Store ``expression`` under ``name`` (an existing name needs ``replace``); returns
    the expression as stored."""
    if not name.strip():
        raise SegmentError("a segment needs a name")
    if expression == EVERYONE:
        raise SegmentError("a segment needs a condition: pass --where EXPRESSION")
    text = render(expression)
    existing = connection.execute(
        select(segments.c.name).where(segments.c.name == name)
    ).scalar_one_or_none()
    if existing is not None and not replace:
        raise SegmentError(f"a segment named {name!r} exists already (pass --replace)")
    values = {"expression": text, "filters": None, "updated_at": to_db(now)}
    if existing is not None:
        connection.execute(update(segments).where(segments.c.name == name).values(**values))
    else:
        connection.execute(insert(segments).values(name=name, created_at=to_db(now), **values))
    return text


def load_segment(connection: Connection, name: str) -> Expression:
    row = connection.execute(
        select(segments.c.expression, segments.c.filters).where(segments.c.name == name)
    ).first()
    if row is None:
        known = connection.execute(select(segments.c.name).order_by(segments.c.name)).scalars()
        raise NotFoundError(
            f"no segment named {name!r} (saved segments: {', '.join(known) or 'none'})"
        )
    try:
        if row.expression is not None:
            return parse_expression(row.expression)
        return from_filters(row.filters or {})
    except SegmentError as exc:
        raise SegmentError(f"the saved segment {name!r} cannot be read: {exc}") from None


def segment_expression(
    connection: Connection, name: str | None, conditions: Iterable[str] = ()
) -> Expression:
    """The saved segment ``name`` (everyone when None) narrowed by the ad hoc
    ``conditions`` (``--where`` texts): all of them must hold."""
    saved = load_segment(connection, name) if name else EVERYONE
    return conjunction([saved, parse_conditions(conditions)])


def list_segments(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(select(segments).order_by(segments.c.name)).mappings()
    return [
        {
            "name": row["name"],
            "where": row["expression"] or render(from_filters(row["filters"] or {})),
            "created_at": from_db(row["created_at"]).isoformat(),
            "updated_at": from_db(row["updated_at"]).isoformat(),
        }
        for row in rows
    ]


def delete_segment(connection: Connection, name: str) -> None:
    load_segment(connection, name)
    connection.execute(delete(segments).where(segments.c.name == name))


def count_segment(
    connection: Connection, expression: Expression, now: datetime, timezone: str
) -> int:
    query = segment_query(expression, now, timezone).subquery()
    return int(connection.execute(select(func.count()).select_from(query)).scalar_one())


EXPORT_COLUMNS = (
    "contact_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "country",
    "language",
    "email_status",
    "sms_status",
    "tags",
    "stage",
    "days_inactive",
    "recency_score",
    "frequency_score",
    "monetary_score",
    "spend_level",
    "purchases",
    "total_spend",
    "p_alive",
    "expected_value_12m",
)


def export_columns(extra: Iterable[str] = ()) -> list[str]:
    """The exported columns: :data:`EXPORT_COLUMNS` then any other field of the segment
    language named in ``extra`` (``--columns``)."""
    columns = list(EXPORT_COLUMNS)
    for name in extra:
        if name not in columns:
            field_spec(name)
            columns.append(name)
    return columns


def export_segment(
    connection: Connection,
    expression: Expression,
    now: datetime,
    timezone: str,
    out: TextIO,
    columns: Sequence[str] = EXPORT_COLUMNS,
) -> int:
    """Write the matching contacts to ``out`` as CSV (header row, one contact a row, by
    id); returns the count. Times are ISO 8601 in UTC, lists comma-separated, and a
    text cell that a spreadsheet would take for a formula starts with ``'``."""
    compiler = SegmentCompiler(now, timezone)
    selected = [
        contacts.c.id if name == "contact_id" else compiler.column(name).label(name)
        for name in columns
    ]
    query = _matching(compiler, expression, selected).order_by(contacts.c.id)
    writer = csv_writer(out)
    writer.writerow(columns)
    count = 0
    for row in connection.execute(query):
        writer.writerow([_cell(value) for value in row])
        count += 1
    return count


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return from_db(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        value = ",".join(str(item) for item in value)
    elif isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False)
    return value


__all__ = [
    "EXPORT_COLUMNS",
    "SegmentError",
    "count_segment",
    "delete_segment",
    "export_columns",
    "export_segment",
    "list_segments",
    "load_segment",
    "parse_conditions",
    "save_segment",
    "segment_expression",
    "segment_query",
]
